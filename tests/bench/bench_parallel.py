"""How well the executor runs devices side by side.

16 simulated devices (``kind: sim``, time scale 1.0: simulated time is slept
for real) each take T ≈ 1 s: connect, erase 8 pages, write 8 KiB at
16 kB/s plus the chip's programming time, verify by checksum. Wire and
flash time dominate, as on real links, so the host's own cost shows as the
ratio's excess over 1. Flashed one
at a time they would take 16 T; the physical limit with 16 links is T.

Run: ``python tests/bench/bench_parallel.py``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "executor"))

from executor_plans import FLASH, device, image, plan  # noqa: E402

from runner.launch import execute  # noqa: E402
from runner.plan import RunResult  # noqa: E402
from transports.sim import SimulationWorld  # noqa: E402

DEVICES = 16
IMAGE = image(8 * 1024)
RATE = 16_000.0


def run(count: int) -> tuple[float, RunResult]:
    devices = [device(f"board-{i:02d}", writes=((FLASH, IMAGE),), rate=RATE)
               for i in range(count)]
    with SimulationWorld(time_scale=1.0, seed="bench") as world:
        started = time.perf_counter()
        result = execute(plan(devices, max_parallel=DEVICES), world=world)
        elapsed = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"benchmark run failed: {result.counts()}")
    return elapsed, result


def main() -> None:
    single, _ = run(1)
    total, _ = run(DEVICES)
    print(f"{DEVICES} devices, max-parallel {DEVICES}: total {total:.2f} s, "
          f"T = {single:.2f} s, ratio {total / single:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
