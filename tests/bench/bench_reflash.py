"""Benchmark: reflashing an unchanged 256 KiB image, skip-unchanged against a full flash.

What runs: the public API end to end (``load_manifest`` → ``compile_plan`` →
``runner.launch.execute``) on a manifest per link, each in simulate mode (the
real protocol drivers against our simulated probe, ROM or DFU device). The
chip is first flashed once; then the same image is flashed again with
``erase: {scope: used}`` / ``write`` / ``verify`` (full) and with the write's
``skip-unchanged: true`` (skip), on the same chip.

Figures are *simulated* seconds (the chip's clock: wire or USB time plus the
chip's erase and program times from the chip database), deterministic and
independent of this machine; the host CPU of each run is printed beside them.
The reachable bound for a skip is the final verify alone, which still runs
(the comparison costs about as much again: by checksum where the link has one
(ST-Link: the on-target CRC routine or the RAM loader's CRC; USART: the ROM's
Get Checksum), else by read-back). Each speed-up is printed beside its target
(issue 14's benchmark list: >= 5x on ST-Link and DFU, >= 2x on USART by
read-back; "more" with a checksum).

Run: python tests/bench/bench_reflash.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from runner.compiler import compile_plan  # noqa: E402
from runner.events import CapturingSink  # noqa: E402
from runner.launch import execute  # noqa: E402
from runner.manifest import load_manifest  # noqa: E402
from transports.sim import SimulationWorld  # noqa: E402

SIZE = 256 * 1024

#: label → (part, link, the speed-up the issue asks for; 0: "more than read-back")
LINKS = {
    "ST-Link V2 F411, auto (register + CRC)": (
        "stm32f411re", "{kind: stlink, serial: BENCH}", 5.0),
    "ST-Link V2 F411, register, read-back": (
        "stm32f411re", "{kind: stlink, serial: BENCH, write-mode: fast, on-target-crc: false}",
        5.0),
    "ST-Link V2 F411, RAM loader": (
        "stm32f411re", "{kind: stlink, serial: BENCH, write-mode: loader}", 5.0),
    "ROM DFU F411": ("stm32f411re", "{kind: dfu}", 5.0),
    "USART 115200 F103RC, read-back": (
        "stm32f103rc", "{kind: uart, port: /dev/ttyBENCH}", 2.0),
    "USART 115200 H743, Get Checksum": (
        "stm32h743zi", "{kind: uart, port: /dev/ttyBENCH}", 0.0),
}

MANIFEST = """\
manifest: 1
name: reflash
simulate: true
simulation: {{time-scale: 0}}
images:
  app: {{file: app.bin, address: 0x08000000}}
transports:
  link: {link}
recipes:
  std:
    - erase: {{scope: used}}
    - write: {{images: [app], skip-unchanged: {skip}}}
    - verify: {{}}
devices:
  dut: {{chip: {part}, transport: link, recipe: std}}
"""


def flash(folder: Path, world: SimulationWorld, part: str, link: str,
          skip: bool) -> tuple[float, float, dict[str, object]]:
    """Simulated and CPU seconds of one run, and the write's step.finished."""
    path = folder / f"{'skip' if skip else 'full'}.yaml"
    path.write_text(MANIFEST.format(link=link, part=part, skip=str(skip).lower()))
    plan = compile_plan(load_manifest(path))
    sink = CapturingSink()
    clock_before = world.chips["dut"].clock.elapsed if "dut" in world.chips else 0.0
    cpu = time.process_time()
    result = execute(plan, world=world, events=sink)
    cpu = time.process_time() - cpu
    if result.exit_code != 0:
        raise SystemExit(f"{link}: the run failed")
    write = next(e for e in sink.named("step.finished") if e["action"] == "write")
    return world.chips["dut"].clock.elapsed - clock_before, cpu, write


def main() -> None:
    print(f"reflash of an unchanged {SIZE // 1024} KiB image: simulated seconds "
          f"(host CPU seconds)")
    print(f"{'link':<40} {'full':>16} {'skip-unchanged':>18} {'speed-up':>9} {'target':>7}"
          f"  compare")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "app.bin").write_bytes(os.urandom(SIZE))
        for label, (part, link, target) in LINKS.items():
            with SimulationWorld(time_scale=0.0, seed="reflash") as world:
                flash(folder, world, part, link, skip=False)          # the first flash
                full, full_cpu, _ = flash(folder, world, part, link, skip=False)
                skip, skip_cpu, write = flash(folder, world, part, link, skip=True)
            ratio = full / skip
            wanted = f">={target:.0f}x" if target else "more"
            met = "met" if ratio >= target else "NOT met"
            print(f"{label:<40} {full:>7.2f} s ({full_cpu:4.2f}) {skip:>9.2f} s "
                  f"({skip_cpu:4.2f}) {ratio:>8.1f}x {wanted:>7} {met:<7}  "
                  f"{write['compare_method']}, {write['units_skipped']}/{write['units']} "
                  f"units skipped")


if __name__ == "__main__":
    main()
