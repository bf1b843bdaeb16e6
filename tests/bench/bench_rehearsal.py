"""Benchmark: does a rehearsal keep pace with the real run it stands for?

What runs: ``flashrunner run`` (the CLI, as a child process) on generated
manifests with ``simulate: true`` and ``time-scale: 1`` (simulated time is
slept for real, so a rehearsal should last as long as the real run), every
device on its own link and all at once (``max-parallel`` = devices):

* ST-Link/V2 + STM32F103 (the real ST-Link driver against the simulated
  probe and flash controller), 8 KiB each: 1, 16 and 64 devices;
* ``kind: sim`` devices (no protocol, 16 kB/s), 8 KiB each: 1 and 256.

The bound is one device's own duration (T): N devices on N links could
finish in T. Printed: the run's duration (from its summary), its ratio to T,
the child's CPU seconds and the console output's size. Targets: 64 ST-Link
devices within 1.5 T, 256 sim devices within 1.2 T.

Run: python tests/bench/bench_rehearsal.py
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(ROOT)


def write_manifest(folder: Path, kind: str, devices: int) -> Path:
    lines = ["manifest: 1", f"name: rehearsal-{kind}-{devices}", "simulate: true",
             "simulation: {time-scale: 1}", "images:",
             "  app: {file: app.bin, address: 0x08000000}", "transports:"]
    for i in range(devices):
        lines.append(f'  link-{i}: {{kind: stlink, serial: "SN{i:022d}"}}' if kind == "stlink"
                     else f"  link-{i}: {{kind: sim, rate: 16000}}")
    lines += ["recipes:", "  std:", "    - erase: {scope: used}", "    - write: [app]",
              "    - verify: {}", f"execution: {{max-parallel: {devices}}}", "devices:"]
    lines += [f"  dev-{i}: {{chip: stm32f103c8, transport: link-{i}, recipe: std}}"
              for i in range(devices)]
    path = folder / f"{kind}-{devices}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def rehearse(folder: Path, kind: str, devices: int) -> tuple[float, float, int]:
    """The run's duration (s), the child's CPU (s) and the console's bytes."""
    manifest = write_manifest(folder, kind, devices)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "runner", "run", "--json", str(manifest),
                           "--log-file", str(folder / f"{kind}-{devices}.jsonl")],
                          env=ENV, cwd=folder,
                          capture_output=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{kind} x{devices}: the rehearsal failed (exit {done.returncode}):\n"
                         f"{done.stderr.decode()[-2000:]}")
    finished = [json.loads(line) for line in done.stdout.decode().splitlines()
                if '"run.finished"' in line]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return finished[-1]["duration_ms"] / 1000, cpu, len(done.stderr)


def main() -> None:
    print(f"rehearsals at time scale 1; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'link':<22} {'devices':>7} {'duration':>9} {'ratio to T':>10} {'CPU':>7} "
          f"{'console':>10}")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "app.bin").write_bytes(os.urandom(8 * 1024))
        for kind, counts in (("stlink", (1, 16, 64)), ("sim", (1, 256))):
            single = 0.0
            for devices in counts:
                duration, cpu, console = rehearse(folder, kind, devices)
                single = single or duration
                print(f"{kind:<22} {devices:>7} {duration:>8.2f}s {duration / single:>10.2f} "
                      f"{cpu:>6.2f}s {console:>8} B")


if __name__ == "__main__":
    main()
