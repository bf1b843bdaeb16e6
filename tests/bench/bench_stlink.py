#!/usr/bin/env python3
"""ST-Link throughput per family under the simulator's USB and flash timing models.

Prints, per family and probe, USB transfers (each bulk transfer is one round
trip on the bus) and ST-Link commands per KiB for erase, write and verify
(read-back), and simulated KiB/s, side by side with the chip's own limit
(programming time from the datasheet) and the clone's safe path.

Targets on genuine parts: at most 4 transfers per KiB written on F1 and F4,
at most 1 per KiB read. Run: ``python tests/bench/bench_stlink.py``.
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
from transports.sim.stlink import SimStLinkProbe, probe_for  # noqa: E402
from transports.sim.stlink.target import SWD_CYCLES_PER_ACCESS  # noqa: E402
from transports.sim.usb import SimUsbBackend  # noqa: E402
from transports.sim.world import DeviceProfile  # noqa: E402
from transports.stlink import StLinkTransport  # noqa: E402
from transports.stlink.transport import DEFAULT_CLOCK_KHZ  # noqa: E402

CASES = (
    # label, part, image KiB, quirks, options
    ("F1 genuine", "stm32f103c8", 32, {}, {}),
    ("F1 APM32 clone (safe)", "stm32f103c8", 4, {"clone": "apm32"}, {}),
    ("F1 genuine, V3", "stm32f103c8", 32, {"probe": "v3"}, {"clock-khz": 8000}),
    ("F1 genuine, V1", "stm32f103c8", 32, {"probe": "v1"}, {}),
    ("F4 genuine", "stm32f411re", 64, {}, {"clock-khz": 4000}),
    ("F4 genuine (safe forced)", "stm32f411re", 16, {}, {"write-mode": "safe"}),
    ("F4 genuine, V3", "stm32f411re", 64, {"probe": "v3"}, {"clock-khz": 8000}),
    ("G0 genuine", "stm32g071rb", 32, {}, {"clock-khz": 4000}),
    ("L4 genuine", "stm32l476rg", 64, {}, {"clock-khz": 4000}),
    ("H7 genuine, V3", "stm32h743zi", 128, {"probe": "v3"}, {"clock-khz": 24000}),
    ("L0 genuine (half pages)", "stm32l073rz", 8, {}, {"clock-khz": 4000}),
    ("L0 genuine (words, safe)", "stm32l073rz", 2, {}, {"write-mode": "safe"}),
    ("L1 genuine (half pages)", "stm32l152re", 8, {}, {"clock-khz": 4000}),
    ("F1 XL dual bank", "stm32f103zg", 32, {}, {"clock-khz": 4000}),
    ("H5 genuine, V3", "stm32h503rb", 32, {"probe": "v3"}, {"clock-khz": 24000}),
    ("U5 genuine, V3", "stm32u575zi", 64, {"probe": "v3"}, {"clock-khz": 24000}),
)


@dataclass
class Phase:
    transfers: int
    commands: int
    seconds: float


def measure(part: str, kib: int, quirks: dict[str, Any], options: dict[str, Any]) -> \
        dict[str, Phase]:
    chip = chip_database().part(part)
    world = SimulationWorld(profiles={"dut": DeviceProfile(quirks=quirks)})
    session = StLinkTransport.open(simulated_request(world, device="dut", link="probe",
                                                     kind="stlink", options=options, chip=chip))
    session.connect()
    session.identify()
    backend = world.shared("usb", SimUsbBackend)
    probe: SimStLinkProbe = probe_for(world, "dut")
    clock = world.chips["dut"].clock
    data = bytes((i * 131 + 7) & 0xFF for i in range(kib * 1024))
    base = chip.flash.base
    phases: dict[str, Phase] = {}

    def run(name: str, action: Any) -> Any:
        transfers, commands, start = backend.counts().total, len(probe.commands), clock.elapsed
        result = action()
        phases[name] = Phase(backend.counts().total - transfers,
                             len(probe.commands) - commands, clock.elapsed - start)
        return result

    run("erase", lambda: session.erase(chip.flash.blocks_covering(base, len(data))))
    run("write", lambda: session.write(base, data))
    back = run("verify", lambda: session.read(base, len(data)))
    session.close()
    world.close()
    if back != data:
        raise SystemExit(f"{part}: read-back differs: the benchmark's write path is broken")
    return phases


def main() -> None:
    header = (f"{'case':28} {'KiB':>4} | {'write tr/KiB':>12} {'cmd/KiB':>7} {'KiB/s':>7} "
              f"{'chip limit':>10} | {'erase tr/KiB':>12} {'KiB/s':>7} | "
              f"{'verify tr/KiB':>13} {'KiB/s':>7}")
    print(header)
    print("-" * len(header))
    for label, part, kib, quirks, options in CASES:
        chip = chip_database().part(part)
        phases = measure(part, kib, quirks, options)
        # One program operation covers a write unit, or a half page on L0/L1's fast path.
        unit = chip.flash.write_unit
        if options.get("write-mode") != "safe" and chip.controller in ("l0", "l1"):
            unit = 64 if chip.controller == "l0" else 128
        # The register path's bound in the simulator's own model: per program operation,
        # the chip's program time plus one SWD bus access to issue it (USB time excluded,
        # so it is reachable only as transfers grow large). The datasheet's program time
        # alone is the limit of an SRAM loader, which issues no bus access per unit.
        khz = options.get("clock-khz", DEFAULT_CLOCK_KHZ)
        access_s = SWD_CYCLES_PER_ACCESS / (khz * 1000) * max(1, unit // 4)
        limit = 1024 / ((chip.timing.program_us / 1e6 + access_s) * (1024 / unit)) / 1024
        w, e, v = phases["write"], phases["erase"], phases["verify"]
        print(f"{label:28} {kib:4d} | {w.transfers / kib:12.2f} {w.commands / kib:7.2f} "
              f"{kib / w.seconds:7.1f} {limit:10.1f} | {e.transfers / kib:12.2f} "
              f"{kib / e.seconds:7.1f} | {v.transfers / kib:13.2f} {kib / v.seconds:7.1f}")
    print("\ntr = USB bulk transfers (command, data and reply phases each count once);"
          "\nchip limit = KiB/s the register path can reach in the simulator's model: the "
          "datasheet's\n  program time plus one SWD access per program operation, USB time "
          "excluded.\n  (All figures are simulated time from the probe's USB and SWD models "
          "and the chip's timing.)"
          "\nTargets on genuine parts: <= 4 tr/KiB written on F1 and F4, <= 1 tr/KiB read.")


if __name__ == "__main__":
    main()
