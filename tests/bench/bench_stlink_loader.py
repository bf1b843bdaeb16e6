#!/usr/bin/env python3
"""ST-Link: the host's register path against the RAM flash loader, per family.

Everything is simulated: the probe's USB timing (full speed: 0.125 ms per bulk
transfer and 1 MB/s; V3 high speed), SWD time per bus cycle at the set clock,
the target's core executing the loader at its reset clock, and the flash's
program/erase times from the chip database (datasheet figures). The session
is the product's own ``StLinkTransport`` through the real pyusb layer.

Per case: KiB/s and USB transfers per KiB for the write (erase excluded), and
for the verify (read-back on the register path, the loader's on-target CRC-32
on the loader path), next to the chip's programming limit: the datasheet's
program time per unit with no link cost at all. The loader can approach that
bound because USB transfers of the next block overlap programming; what is
left is the per-block run control and the loader's own loop at the reset
clock. Run: ``python tests/bench/bench_stlink_loader.py``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from transports.chips import chip_database  # noqa: E402
from transports.sim import SimulationWorld  # noqa: E402
from transports.sim.endpoints import simulated_request  # noqa: E402
from transports.sim.usb import SimUsbBackend  # noqa: E402
from transports.sim.world import DeviceProfile  # noqa: E402
from transports.stlink import StLinkTransport  # noqa: E402

CASES = (
    # label, part, KiB, probe, clock kHz
    ("F103 / V2", "stm32f103c8", 32, "v2", 4000),
    ("F103 / V1", "stm32f103c8", 32, "v1", 1800),
    ("F411 / V2-1", "stm32f411re", 64, "v2-1", 4000),
    ("G071 / V2-1", "stm32g071rb", 64, "v2-1", 4000),
    ("L476 / V2-1", "stm32l476rg", 64, "v2-1", 4000),
    ("H743 / V3", "stm32h743zi", 128, "v3", 24000),
)


@dataclass
class Figures:
    write_kib_s: float
    write_tr_kib: float
    verify_kib_s: float
    verify_tr_kib: float


def measure(part: str, kib: int, probe: str, khz: int, mode: str) -> Figures | None:
    chip = chip_database().part(part)
    world = SimulationWorld(profiles={"dut": DeviceProfile(quirks={"probe": probe})})
    options: dict[str, Any] = {"clock-khz": khz, "write-mode": mode}
    session = StLinkTransport.open(simulated_request(world, device="dut", link="probe",
                                                     kind="stlink", options=options, chip=chip))
    try:
        session.connect()
    except Exception as error:  # the register path cannot write an F1 behind a V1
        world.close()
        print(f"  ({part} {probe} {mode}: {error})")
        return None
    backend = world.shared("usb", SimUsbBackend)
    clock = world.chips["dut"].clock
    data = bytes((i * 131 + 7) & 0xFF for i in range(kib * 1024))
    base = chip.flash.base
    session.erase(chip.flash.blocks_covering(base, len(data)))

    def timed(action: Any) -> tuple[float, int, Any]:
        transfers, start = backend.counts().total, clock.elapsed
        result = action()
        return clock.elapsed - start, backend.counts().total - transfers, result

    w_s, w_tr, _ = timed(lambda: session.write(base, data))
    if mode == "loader":
        v_s, v_tr, _ = timed(lambda: session.checksum(base, len(data)))
    else:
        v_s, v_tr, back = timed(lambda: session.read(base, len(data)))
        assert back == data
    ok = world.chips["dut"].flash[:len(data)] == data
    session.close()
    world.close()
    if not ok:
        raise SystemExit(f"{part} {mode}: the flash differs: the benchmark's path is broken")
    return Figures(kib / w_s, w_tr / kib, kib / v_s, v_tr / kib)


def main() -> None:
    print(f"{'case':12} {'KiB':>4} | {'register path':^29} | {'RAM loader':^29} | "
          f"{'chip limit':>10} {'loader':>7}")
    print(f"{'':12} {'':4} | {'KiB/s':>7} {'tr/KiB':>6} {'verify':>7} {'tr/KiB':>6} | "
          f"{'KiB/s':>7} {'tr/KiB':>6} {'CRC':>7} {'tr/KiB':>6} | {'KiB/s':>10} "
          f"{'of lim':>7}")
    print("-" * 98)
    for label, part, kib, probe, khz in CASES:
        chip = chip_database().part(part)
        limit = 1024 / (chip.timing.program_us / 1e6 * (1024 / chip.flash.write_unit)) / 1024
        register = measure(part, kib, probe, khz, "fast")
        loader = measure(part, kib, probe, khz, "loader")
        assert loader is not None
        left = (f"{register.write_kib_s:7.1f} {register.write_tr_kib:6.2f} "
                f"{register.verify_kib_s:7.1f} {register.verify_tr_kib:6.2f}"
                if register is not None else f"{'cannot write (no 16-bit access)':29}")
        print(f"{label:12} {kib:4d} | {left} | {loader.write_kib_s:7.1f} "
              f"{loader.write_tr_kib:6.2f} {loader.verify_kib_s:7.1f} "
              f"{loader.verify_tr_kib:6.2f} | {limit:10.1f} "
              f"{loader.write_kib_s / limit:6.0%}")
    print("\ntr = USB bulk transfers (command, data and reply phases each count once)."
          "\nverify: read-back on the register path, on-target CRC-32 on the loader path."
          "\nchip limit = KiB/s the datasheet's program time per unit allows with no link"
          " cost; the loader's\nremaining gap is per-block run control and its own loop at"
          " the reset clock (HSI/MSI).")


if __name__ == "__main__":
    main()
