"""USB DFU throughput on the simulated ROM: erase, download, upload of 256 KiB.

Run: ``python tests/bench/bench_dfu.py``. Figures are *simulated* time (the
chip's SimClock), so they are deterministic; wall time is shown for scale.

The USB model (``transports.sim.dfu.control_transfer_seconds``): USB 2.0 full
speed, 12 Mbit/s, 1 ms frames; each control transfer costs one frame (setup
and status stages scheduled frame by frame) plus ~51 us per 64-byte data
packet (77 bytes on the bus with sync, PID, CRC and handshake). The limit
printed beside our figures is that model with no flash time at all: one
wTransferSize block per control transfer, back to back. Chip times (sector
erase, word programming) come from the chip database (DS10314 for the F411).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from transports.chips import chip_database  # noqa: E402
from transports.dfu import DfuTransport  # noqa: E402
from transports.sim import SimulationWorld  # noqa: E402
from transports.sim.dfu import control_transfer_seconds  # noqa: E402
from transports.sim.endpoints import simulated_request  # noqa: E402
from transports.sim.usb import SimUsbBackend  # noqa: E402

SIZE = 256 * 1024
BASE = 0x08000000


def main() -> None:
    chip = chip_database().part("stm32f411re")
    image = bytes((i * 31 + 7) & 0xFF for i in range(SIZE))
    with SimulationWorld(seed="bench") as world:
        request = simulated_request(world, device="board", link="dfu", kind="dfu", options={},
                                    chip=chip)
        link = DfuTransport.open(request)
        link.connect()
        block = link.identify().details["transfer_size"]
        sim = world.chips["board"]
        backend = world.shared("usb", SimUsbBackend)
        blocks = chip.flash.blocks_covering(BASE, SIZE)
        rows = []
        for name, action in (("erase", lambda: link.erase(blocks)),
                             ("download", lambda: link.write(BASE, image)),
                             ("upload", lambda: link.read(BASE, SIZE))):
            transfers, clock, wall = backend.counts().control, sim.clock.elapsed, \
                time.perf_counter()
            result = action()
            assert result is None or result == image
            rows.append((name, sim.clock.elapsed - clock, backend.counts().control - transfers,
                         time.perf_counter() - wall))
        link.close()

    limit = block / control_transfer_seconds(block) / 1024
    print(f"STM32F411RE ROM DFU, 256 KiB image, wTransferSize {block}, "
          f"{len(blocks)} sectors ({', '.join(str(b.size // 1024) for b in blocks)} KiB)")
    print(f"{'phase':<10}{'sim s':>9}{'KiB/s':>10}{'ctrl xfers':>12}{'xfers/KiB':>11}"
          f"{'wall s':>9}   limit (USB FS control, no flash time)")
    for name, seconds, transfers, wall in rows:
        kib_s = SIZE / 1024 / seconds
        bound = "-" if name == "erase" else f"{limit:7.0f} KiB/s"
        print(f"{name:<10}{seconds:9.3f}{kib_s:10.1f}{transfers:12d}{transfers / 256:11.2f}"
              f"{wall:9.3f}   {bound}")
    per_block = 3  # DNLOAD + GETSTATUS (dfuDNBUSY) + GETSTATUS (done)
    print(f"download sequence: {per_block} control transfers per {block} B block plus one "
          f"set-address; dfu-util sets the address before every block "
          f"({2 * per_block} per block, counted from its sequence, not run): "
          f"{2 * per_block * 1024 / block:.2f} xfers/KiB")
    erase_s = sum(chip.timing.erase_seconds(b.size) for b in blocks)
    print(f"erase: datasheet sector erase time for these sectors {erase_s:.3f} s "
          f"(DS10314 typical), honoured through bwPollTimeout")


if __name__ == "__main__":
    main()
