"""Benchmark: flashrunner against stm32flash, 64 KiB erase + write + verify over USART.

What runs: the commands a user types. ``python -m runner run line.yaml``
(a ``kind: uart`` link whose port is the simulator's pty, not simulate mode,
so the run is the hardware code path end to end, start-up included) and
``stm32flash -w image.bin -v``, alternated, each against a fresh simulated
chip behind a pty.

What is simulated: the chip and its ROM bootloader (our pty simulator), paced
in real time at 115200 baud and 11 bits per byte, as 8E1 would be on a real
port (a pty keeps no parity bit, so both tools open it 8N1), and the chip's
page erase and program times from the chip database.

Bounds: the wire floor is the payload alone at 11 bits per byte (64 KiB each
way for write + read-back, one way when the ROM's Get Checksum verifies);
stm32flash always verifies by reading back. Figures are wall-clock seconds
from process start to exit, with the CPU seconds of each tool's process beside
them (the simulator runs in this process, so neither tool is charged for it).

As on a production line, where every board runs the same manifest, the
manifest has been validated before each timed run (``flashrunner validate``,
untimed): its passed schema check is remembered, so the run skips it.

Through an FT232R: USB-serial converters hold a short reply until their
latency timer expires (16 ms on an FTDI unless the host asks otherwise,
AN232B-04), and nearly every reply of the ROM is one ACK byte. flashrunner
asks the driver for ASYNC_LOW_LATENCY (Linux ftdi_sio then sets the timer to
1 ms); stm32flash never does (its serial_posix.c sets termios only). A pty
cannot take that ioctl, so the simulator holds each reply as the converter
would, with the timer each tool would have got on hardware: 1 ms for
flashrunner, 16 ms for stm32flash (transports/sim/latency.py).

Run: python tests/bench/bench_usart_peer.py [runs]
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
from transports.sim.clock import SimClock  # noqa: E402
from transports.sim.usart import PtyBootloader  # noqa: E402

SIZE = 64 * 1024
BAUD = 115200
BITS = 11
BASE = 0x08000000

MANIFEST = """\
manifest: 1
name: usart-bench
images:
  app: {{file: {image}, address: 0x08000000}}
transports:
  port: {{kind: uart, port: {port}, baud: {baud}, parity: none}}
recipes:
  std:
    - erase: {{scope: used}}
    - write: [app]
    - verify: {{}}
devices:
  dut: {{chip: {part}, transport: port, recipe: std}}
"""


def _target(part: str, latency_s: float | None) -> tuple[SimChip, PtyBootloader]:
    chip = chip_database().part(part)
    sim = SimChip(chip, clock=SimClock(time_scale=1.0))
    core = BootloaderCore(sim, bootloader_profile(chip, Link.USART, {}))
    return sim, PtyBootloader(StreamBootloader(core, Link.USART), bits_per_byte=BITS,
                              latency_timer_s=latency_s)


#: The children's environment: from bytecode, as an installed package runs.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(ROOT)


#: Per tool: (replies the converter held, simulated seconds they waited) of each run.
HELD: dict[str, list[tuple[int, float]]] = {"flashrunner": [], "stm32flash": []}


def _count_held(tool: str, pty: PtyBootloader) -> None:
    if pty.latency is not None:
        HELD[tool].append((pty.latency.held, pty.latency.waited_s))


def timed(argv: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[bytes]]:
    """Wall and CPU seconds of one child process, and what it did."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=ENV, cwd=cwd, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done


def flashrunner(part: str, image: Path, folder: Path,
                latency_s: float | None) -> tuple[float, float]:
    sim, pty = _target(part, latency_s)
    with pty:
        manifest = folder / "line.yaml"
        manifest.write_text(MANIFEST.format(image=image, port=pty.path, baud=BAUD, part=part))
        subprocess.run([sys.executable, "-m", "runner", "validate", str(manifest)],
                       capture_output=True, env=ENV, cwd=folder, check=True)
        wall, cpu, done = timed([sys.executable, "-m", "runner", "run", str(manifest)], folder)
    _count_held("flashrunner", pty)
    if done.returncode != 0:
        raise SystemExit(f"flashrunner failed:\n{done.stdout.decode()}{done.stderr.decode()}")
    assert bytes(sim.flash[:SIZE]) == image.read_bytes()
    return wall, cpu


def stm32flash(part: str, image: Path, folder: Path,
               latency_s: float | None) -> tuple[float, float]:
    sim, pty = _target(part, latency_s)
    with pty:
        wall, cpu, done = timed(["stm32flash", "-b", str(BAUD), "-m", "8n1", "-w", str(image),
                                 "-v", "-S", f"0x{BASE:08X}", pty.path], folder)
    _count_held("stm32flash", pty)
    if done.returncode != 0:
        raise SystemExit(f"stm32flash failed:\n{done.stdout.decode()}{done.stderr.decode()}")
    assert bytes(sim.flash[:SIZE]) == image.read_bytes()
    return wall, cpu


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    if shutil.which("stm32flash") is None:
        raise SystemExit("stm32flash is not installed (apt-get install stm32flash)")
    wire = SIZE * BITS / BAUD
    # part, label, floor, latency timer (s) behind flashrunner's port and stm32flash's
    cases = (("stm32f103cb", "F103, ROM v2.2: read-back", 2 * wire, None, None),
             ("stm32h743zi", "H743, ROM v3.1: Get Checksum", wire, None, None),
             ("stm32f103cb", "F103 via FT232R: read-back", 2 * wire, 0.001, 0.016))
    print(f"{SIZE // 1024} KiB erase + write + verify, USART {BAUD} baud, {BITS} bits/byte, "
          f"wall-clock seconds, {runs} alternated runs each (median), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'target':<32} {'flashrunner':>12} {'stm32flash':>11} {'ratio':>6} "
          f"{'floor':>7} {'fr % floor':>10} {'s32f % floor':>12}")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        image = folder / "app.bin"
        image.write_bytes(os.urandom(SIZE))
        for part, label, floor, our_latency, peer_latency in cases:
            ours: list[tuple[float, float]] = []
            peer: list[tuple[float, float]] = []
            for _ in range(runs):
                ours.append(flashrunner(part, image, folder, our_latency))
                peer.append(stm32flash(part, image, folder, peer_latency))
            mine = statistics.median(wall for wall, _ in ours)
            theirs = statistics.median(wall for wall, _ in peer)
            print(f"{label:<32} {mine:>11.2f}s {theirs:>10.2f}s {mine / theirs:>6.3f} "
                  f"{floor:>6.2f}s {100 * floor / mine:>9.1f}% {100 * floor / theirs:>11.1f}%")
            print(f"{'':<32} runs: flashrunner {', '.join(f'{w:.2f}' for w, _ in ours)}; "
                  f"stm32flash {', '.join(f'{w:.2f}' for w, _ in peer)}")
            if our_latency is not None and peer_latency is not None:
                print(f"{'':<32} latency timer: flashrunner {our_latency * 1e3:.0f} ms "
                      f"(asks for low latency), stm32flash {peer_latency * 1e3:.0f} ms "
                      f"(the converter's default)")
                held = {tool: HELD[tool][-runs:] for tool in HELD}
                print(f"{'':<32} replies held per run, mean wait: " + "; ".join(
                    f"{tool} {statistics.median(n for n, _ in got):.0f}, "
                    f"{1e3 * sum(w for _, w in got) / sum(n for n, _ in got):.2f} ms"
                    for tool, got in held.items()))
            pairs = ", ".join(f"{a[0] / b[0]:.3f}" for a, b in zip(ours, peer, strict=True))
            print(f"{'':<32} ratio per pair: {pairs}; "
                  f"CPU s (median): flashrunner {statistics.median(c for _, c in ours):.2f}, "
                  f"stm32flash {statistics.median(c for _, c in peer):.2f}")


if __name__ == "__main__":
    main()
