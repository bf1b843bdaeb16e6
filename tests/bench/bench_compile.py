"""Benchmark: ``flashrunner validate`` and ``flashrunner plan`` on a large production line.

What runs: the CLI a user types, as a child process, on a generated YAML
manifest of 2,000, 10,000 and 50,000 devices (four chip families, 200 links
on 40 shared buses, three shared images in two write steps, chained
``after`` groups of ten). Nothing is simulated: validate and plan touch no
link. Printed per size: wall and CPU seconds of the child, its peak memory
(max RSS) and that memory per device beyond the start-up baseline (a
``flashrunner --version``, which loads no manifest). Targets: 50,000 devices
validated and planned in under 10 s, under 1 KiB per device.

Run: python tests/bench/bench_compile.py [sizes...]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHIPS = ("stm32g071rb", "stm32f103cb", "stm32f411re", "stm32l476rg")
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(ROOT)


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


def child(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak MiB of ``python -m runner argv``."""
    code = ("import resource, runpy, sys; sys.argv = ['flashrunner', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('runner', run_name='__main__')\n"
            "finally:\n    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "file=sys.stderr)")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *argv], env=ENV, cwd=ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kib = int(done.stderr.decode().strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, peak_kib / 1024


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [2000, 10000, 50000]
    child(["--version"])
    _, _, baseline = child(["--version"])
    print(f"CLI on a generated line; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; start-up baseline {baseline:.0f} MiB")
    print(f"{'devices':>8} {'command':<20} {'wall':>8} {'CPU':>8} {'peak':>9} {'per device':>11}")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for devices in sizes:
            manifest = str(write_manifest(folder, devices))
            for label, argv in (("validate", ["validate", manifest]),
                                ("plan --format json", ["plan", "--format", "json",
                                                        manifest])):
                wall, cpu, peak = child(argv)
                per = (peak - baseline) * 1024 / devices
                print(f"{devices:>8} {label:<20} {wall:>7.2f}s {cpu:>7.2f}s {peak:>6.0f} MiB "
                      f"{per:>7.2f} KiB")


if __name__ == "__main__":
    main()
