"""Benchmark: what a user waits for before anything happens.

Times, as wall clock and CPU of the child process (median of several runs):

* ``flashrunner --version``;
* ``flashrunner validate`` on the shipped USART example;
* a one-device run's time to first byte on the wire, and from its last byte to
  the process's exit: ``flashrunner run`` on a
  ``kind: uart`` link whose port is our pty simulator (the hardware code path,
  not simulate mode), from process start to the first byte the simulated ROM
  receives (the 0x7F that opens the session) — for a manifest run before
  (its passed schema check remembered, as on a line where every board runs the
  same manifest) and for its first run (an empty cache: jsonschema imported and
  the manifest checked).

The bound is the interpreter itself: ``python -c pass`` on the same machine.
stm32flash, a C program, starts in a few milliseconds; its start-up is printed
too for comparison. The environment's ``PYTHONDONTWRITEBYTECODE`` is removed so
that the child runs from compiled bytecode, as an installed package does
(one warm-up run writes it).

Run: python tests/bench/bench_startup.py [runs]
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from transports.chips import chip_database  # noqa: E402
from transports.sim import SimChip  # noqa: E402
from transports.sim.bootloader import BootloaderCore, Link, bootloader_profile  # noqa: E402
from transports.sim.bootloader_stream import StreamBootloader  # noqa: E402
from transports.sim.usart import PtyBootloader  # noqa: E402

ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(ROOT)

MANIFEST = """\
manifest: 1
name: first-byte
images:
  app: {{file: {image}, address: 0x08000000}}
transports:
  port: {{kind: uart, port: {port}, baud: 115200, parity: none}}
recipes:
  std:
    - erase: {{scope: used}}
    - write: [app]
devices:
  dut: {{chip: stm32f103cb, transport: port, recipe: std}}
"""


def timed(argv: list[str], cwd: Path = ROOT) -> tuple[float, float]:
    """Wall and CPU seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=ENV, cwd=cwd, capture_output=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_times(folder: Path, *, first_run: bool = False,
              peer: bool = False) -> tuple[float, float]:
    """Seconds from starting ``flashrunner run`` to the first byte on the simulated wire,
    and from the last byte the simulated ROM sent to the process's exit.

    ``first_run``: with an empty cache, as the first run of a manifest is.
    ``peer``: stm32flash writing the same image instead (its pages erased, no verify).
    """
    chip = chip_database().part("stm32f103cb")
    sim = SimChip(chip)
    stream = StreamBootloader(BootloaderCore(sim, bootloader_profile(chip, Link.USART, {})),
                              Link.USART)
    arrived: list[float] = []
    answered: list[float] = []
    feed, take = stream.feed, stream.take

    def noting(data: bytes) -> None:
        if not arrived:
            arrived.append(time.perf_counter())
        feed(data)

    def answering(limit: int | None = None) -> bytes:
        data = take(limit)
        if data:
            answered[:] = [time.perf_counter()]
        return data

    stream.feed = noting  # type: ignore[method-assign]
    stream.take = answering  # type: ignore[method-assign]
    with PtyBootloader(stream) as pty:
        manifest = folder / "line.yaml"
        manifest.write_text(MANIFEST.format(image=folder / "app.bin", port=pty.path))
        env = ENV
        if first_run:
            env = {**ENV, "XDG_CACHE_HOME": tempfile.mkdtemp(dir=folder)}
        argv = ["stm32flash", "-b", "115200", "-m", "8n1", "-w", str(folder / "app.bin"),
                "-S", "0x08000000", pty.path] if peer else \
            [sys.executable, "-m", "runner", "run", "--quiet", str(manifest)]
        start = time.perf_counter()
        child = subprocess.Popen(argv, env=env, cwd=folder, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        child.wait()
        end = time.perf_counter()
    if not arrived or not answered or child.returncode != 0:
        raise SystemExit(f"the run failed (exit {child.returncode})")
    return arrived[0] - start, end - answered[0]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    example = ROOT / "manifests" / "uart-f103.yaml"
    cases = {
        "python -c pass (the bound)": [sys.executable, "-c", "pass"],
        "flashrunner --version": [sys.executable, "-m", "runner", "--version"],
        "flashrunner validate uart-f103.yaml": [sys.executable, "-m", "runner", "validate",
                                                str(example)],
    }
    if shutil.which("stm32flash"):
        cases["stm32flash -h (C peer)"] = ["sh", "-c", "stm32flash -h >/dev/null 2>&1; true"]
    for argv in cases.values():
        timed(argv)   # warm-up: bytecode written, files in the page cache
    print(f"start-up, median of {runs} runs (wall / CPU of the child), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    for label, argv in cases.items():
        samples = [timed(argv) for _ in range(runs)]
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        print(f"  {label:<40} {wall * 1000:7.0f} ms wall {cpu * 1000:7.0f} ms CPU")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "app.bin").write_bytes(os.urandom(1024))
        run_times(folder)
        again = [run_times(folder) for _ in range(runs)]
        first = [run_times(folder, first_run=True) for _ in range(runs)]
        peer = [run_times(folder, peer=True) for _ in range(runs)] \
            if shutil.which("stm32flash") else []
    print(f"  {'run: process start to first byte on wire':<40} "
          f"{statistics.median(t for t, _ in again) * 1000:7.0f} ms wall (manifest run before)")
    print(f"  {'':<40} {statistics.median(t for t, _ in first) * 1000:7.0f} ms wall "
          f"(its first run)")
    print(f"  {'run: last byte on wire to exit':<40} "
          f"{statistics.median(t for _, t in again) * 1000:7.0f} ms wall (log, attestation "
          f"and ledger synced)")
    if peer:
        print(f"  {'stm32flash -w, same image':<40} "
              f"{statistics.median(t for t, _ in peer) * 1000:7.0f} ms to first byte, "
              f"{statistics.median(t for _, t in peer) * 1000:.0f} ms last byte to exit")


if __name__ == "__main__":
    main()
