"""Benchmark: ``flashrunner validate`` and ``flashrunner plan`` on a large production line.

What runs: the CLI a user types, as a child process, on a generated YAML
manifest of 2,000, 10,000 and 50,000 devices (four chip families, 200 links
on 40 shared buses, three shared images in two write steps, chained
``after`` groups of ten). Nothing is simulated: validate and plan touch no
link. Each command runs three times per size (median printed).

Printed per size and command: wall and CPU seconds of the child; its peak
memory (max RSS) and Python's own peak (tracemalloc, a separate run); and the
memory per device beyond what does not grow with the line: the same command
on a 10-device line of the same shape (start-up, the chip database, the
schema, the images). Beside them the issue's targets: 50,000 devices
validated and planned (both commands, one after the other) in under 10 s,
under 1 KiB per device. The RSS per device over a bare ``flashrunner
--version`` is printed too (it counts the fixed cost of loading a manifest
at all).

Run: python tests/bench/bench_compile.py [sizes...]
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHIPS = ("stm32g071rb", "stm32f103cb", "stm32f411re", "stm32l476rg")
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(ROOT)
RUNS = 3
#: The line whose memory does not count per device.
SMALL = 10
TARGET_S = 10.0
TARGET_KIB = 1.0
COMMANDS = (("validate", ["validate"]), ("plan --format json", ["plan", "--format", "json"]))


def write_manifest(folder: Path, devices: int) -> Path:
    for name, size in (("boot", 16 * 1024), ("app", 40_000), ("cal", 512)):
        (folder / f"{name}.bin").write_bytes(bytes((i * 13 + len(name)) % 256
                                                   for i in range(size)))
    lines = ["manifest: 1", "name: line", "simulate: true", "images:",
             "  boot: {file: boot.bin, address: 0x08000000}",
             "  app: {file: app.bin, address: 0x08004000}",
             "  cal: {file: cal.bin, address: 0x0801E000}", "transports:"]
    lines += [f"  bus-{i}: {{kind: sim, bus: line-{i % 40}}}" for i in range(200)]
    lines += ["recipes:", "  std:", "    - erase: {scope: used}", "    - write: [boot, app]",
              "    - write: [cal]", "    - verify: {}", "    - reset: {}",
              "recovery:", "  default: {retries: 1}", "execution: {max-parallel: 16}",
              "devices:"]
    for i in range(devices):
        after = f", after: [dev-{i - 1}]" if i % 10 else ""
        lines.append(f"  dev-{i}: {{chip: {CHIPS[i % 4]}, transport: bus-{i % 200}, "
                     f"recipe: std{after}}}")
    path = folder / f"line-{devices}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


_CHILD = """\
import atexit, resource, runpy, sys, tracemalloc

def report():   # at exit: the CLI leaves through os._exit, after the atexit handlers
    traced = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, traced, file=sys.stderr)

atexit.register(report)
sys.argv = ['flashrunner', *sys.argv[1:]]
runpy.run_module('runner', run_name='__main__')
"""


def child(argv: list[str], *, traced: bool = False) -> tuple[float, float, float, float]:
    """Wall seconds, CPU seconds, peak RSS MiB and tracemalloc peak MiB of the CLI."""
    env = {**ENV, "PYTHONTRACEMALLOC": "1"} if traced else ENV
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, *argv], env=env, cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss_kib, traced_bytes = (int(v) for v in done.stderr.decode().strip().splitlines()[-1]
                             .split())
    return wall, cpu, rss_kib / 1024, traced_bytes / 2**20


def measured(argv: list[str]) -> tuple[float, float, float, float]:
    """Medians of :data:`RUNS` runs (wall, CPU, RSS), and one traced run's Python peak."""
    runs = [child(argv) for _ in range(RUNS)]
    _, _, _, traced = child(argv, traced=True)
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
            statistics.median(r[2] for r in runs), traced)


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [2000, 10000, 50000]
    child(["--version"])
    _, _, bare, _ = measured(["--version"])
    print(f"CLI on a generated line; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; `--version` peak {bare:.0f} MiB; medians of {RUNS} runs")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        small = str(write_manifest(folder, SMALL))
        fixed = {label: measured([*argv, small]) for label, argv in COMMANDS}
        print(f"fixed cost ({SMALL}-device line): " + ", ".join(
            f"{label} {rss:.0f} MiB RSS / {traced:.1f} MiB traced"
            for label, (_, _, rss, traced) in fixed.items()))
        print(f"{'devices':>8} {'command':<20} {'wall':>7} {'CPU':>7} {'RSS':>8} "
              f"{'per device':>10} {'traced':>8} {'per device':>10} {'over --version':>14}")
        for devices in sizes:
            manifest = str(write_manifest(folder, devices))
            total = 0.0
            for label, argv in COMMANDS:
                wall, cpu, rss, traced = measured([*argv, manifest])
                total += wall
                _, _, fixed_rss, fixed_traced = fixed[label]
                per_rss = (rss - fixed_rss) * 1024 / (devices - SMALL)
                per_traced = (traced - fixed_traced) * 1024 / (devices - SMALL)
                print(f"{devices:>8} {label:<20} {wall:>6.2f}s {cpu:>6.2f}s {rss:>4.0f} MiB "
                      f"{per_rss:>6.2f} KiB {traced:>4.0f} MiB {per_traced:>6.2f} KiB "
                      f"{(rss - bare) * 1024 / devices:>10.2f} KiB")
            print(f"{devices:>8} {'validate, then plan':<20} {total:>6.2f}s  (target at 50,000: "
                  f"< {TARGET_S:.0f} s; memory < {TARGET_KIB:.0f} KiB per device)")


if __name__ == "__main__":
    main()
