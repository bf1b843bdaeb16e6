"""Benchmark: does a rehearsal keep pace with the real run it stands for?

What runs: ``flashrunner run`` (the CLI, as a child process) on generated
manifests with ``simulate: true`` and ``time-scale: 1`` (simulated time is
slept for real, so a rehearsal should last as long as the real run), every
device on its own link and all at once (``max-parallel`` = devices):

* ST-Link/V2 + STM32F103 (the real ST-Link driver against the simulated
  probe and flash controller), 8 KiB each: 1, 16 and 64 devices;
* ``kind: sim`` devices (no protocol, 16 kB/s), 8 KiB each: 1 and 256.

The bound is one device's own duration (T, the one-device run of the same
kind): N devices on N links could finish in T. Printed per size: the run's
duration (from its summary), T, their ratio beside the target, the child's
CPU seconds and wall seconds (start-up included) and the console output's
size, and how many processes ran the devices (a large rehearsal runs in worker
processes, two per core: docs/architecture.md, "Rehearsals on more than one
core"). Targets: 64 ST-Link devices within 1.5 T, 256 sim devices within 1.2 T.

Run: python tests/bench/bench_rehearsal.py
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
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


#: (link kind, devices) → the ratio to T the run must stay within
TARGETS = {("stlink", 64): 1.5, ("sim", 256): 1.2}


def rehearse(folder: Path, kind: str, devices: int) -> tuple[float, float, float, int, int]:
    """The run's duration (s), the child's CPU and wall time (s) (its workers' included),
    the console's bytes and the processes the devices ran in (run.started ``workers``)."""
    manifest = write_manifest(folder, kind, devices)
    log = folder / f"{kind}-{devices}.jsonl"
    for old in folder.glob(f"{log.name}*"):
        old.unlink()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "runner", "run", "--json", str(manifest),
                           "--log-file", str(log)],
                          env=ENV, cwd=folder,
                          capture_output=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{kind} x{devices}: the rehearsal failed (exit {done.returncode}):\n"
                         f"{done.stderr.decode()[-2000:]}")
    records = [json.loads(line) for line in done.stdout.decode().splitlines()
               if '"run.finished"' in line or '"run.started"' in line]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    workers = int(records[0].get("workers", 1))
    return records[-1]["duration_ms"] / 1000, cpu, wall, len(done.stderr), workers


def main() -> None:
    print(f"rehearsals at time scale 1; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'link':<8} {'devices':>7} {'duration':>9} {'T':>7} {'ratio':>6} {'target':>7} "
          f"{'met':>4} {'CPU':>7} {'wall':>7} {'console':>10} {'workers':>8}")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "app.bin").write_bytes(os.urandom(8 * 1024))
        for kind, counts in (("stlink", (1, 16, 64)), ("sim", (1, 256))):
            single = 0.0
            for devices in counts:
                duration, cpu, wall, console, workers = rehearse(folder, kind, devices)
                single = single or duration
                ratio = duration / single
                target = TARGETS.get((kind, devices))
                bound = f"{target:.1f}" if target else "-"
                met = ("yes" if ratio <= target else "no") if target else ""
                print(f"{kind:<8} {devices:>7} {duration:>8.2f}s {single:>6.2f}s {ratio:>6.2f} "
                      f"{bound:>7} {met:>4} {cpu:>6.2f}s {wall:>6.2f}s {console:>8} B "
                      f"{workers:>8}")


if __name__ == "__main__":
    main()
