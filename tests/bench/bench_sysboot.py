"""Benchmark: write + verify 64 KiB through the ROM bootloader over USART, I2C and CAN.

Durations are *simulated* seconds from the chip's clock (wire time at the
configured rate plus the chip's program time), so the figures are
deterministic and independent of this machine; the host CPU each run cost
(driver and simulator together, in one process) is printed beside them.
Every ROM is as the chip database describes it: Get Checksum only where the
ROM lists it (the H7's USART ROM). Each line is printed beside
the physical limit of the wire (raw payload rate with no protocol at all) and
the overhead ratio; where stm32flash is installed it runs the same job on the
pty simulator as a peer.

Run: python tests/bench/bench_sysboot.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from transports.base import Capability  # noqa: E402
from transports.can import CanTransport  # noqa: E402
from transports.checksums import stm32_crc32  # noqa: E402
from transports.chips import chip_database  # noqa: E402
from transports.i2c import I2cTransport  # noqa: E402
from transports.sim import SimChip, SimulationWorld  # noqa: E402
from transports.sim.bootloader import BootloaderCore, Link, bootloader_profile  # noqa: E402
from transports.sim.bootloader_stream import StreamBootloader  # noqa: E402
from transports.sim.canbus import frame_bits  # noqa: E402
from transports.sim.endpoints import simulated_request  # noqa: E402
from transports.sim.usart import PtyBootloader  # noqa: E402
from transports.sysboot.transport import BootloaderSession  # noqa: E402
from transports.uart import UsartTransport  # noqa: E402

SIZE = 64 * 1024
BASE = 0x08000000
IMAGE = os.urandom(SIZE)
KIB = 1024.0


def run(klass: type[BootloaderSession], part: str, options: Mapping[str, Any],
        quirks: Mapping[str, Any] | None = None) -> tuple[float, str, float]:
    """Simulated seconds for write + verify (after an erase that is not counted)."""
    from transports.sim.world import DeviceProfile

    profile = DeviceProfile(quirks=dict(quirks or {}))
    with SimulationWorld(time_scale=0.0, profiles={"dut": profile}) as world:
        chip = chip_database().part(part)
        session = klass.open(simulated_request(world, device="dut", link="bench", kind=klass.kind,
                                         options=options, chip=chip))
        session.connect()
        session.erase(chip.flash.blocks_covering(BASE, SIZE))
        clock = world.chips["dut"].clock
        start = clock.elapsed
        cpu = time.process_time()
        session.write(BASE, IMAGE)
        if Capability.CHECKSUM in session.capabilities:
            method = "checksum"
            assert session.checksum(BASE, SIZE).value == stm32_crc32(IMAGE)
        else:
            method = "read-back"
            assert session.read(BASE, SIZE) == IMAGE
        elapsed = clock.elapsed - start
        cpu = time.process_time() - cpu
        session.close()
        assert world.chips["dut"].flash[:SIZE] == IMAGE
        return elapsed, method, cpu


def stm32flash_peer(baud: int) -> float | None:
    """The same job by stm32flash on the pty simulator, in simulated seconds."""
    if shutil.which("stm32flash") is None:
        return None
    chip = chip_database().part("stm32f103cb")
    sim = SimChip(chip)
    core = BootloaderCore(sim, bootloader_profile(chip, Link.USART, {}))
    with tempfile.TemporaryDirectory() as folder, \
            PtyBootloader(StreamBootloader(core, Link.USART)) as pty:
        image = Path(folder) / "image.bin"
        image.write_bytes(IMAGE)
        # Erase first (not counted), then write + verify, as above.
        subprocess.run(["stm32flash", "-b", str(baud), "-m", "8n1", "-o", pty.path],
                       capture_output=True, check=True)
        start = sim.clock.elapsed
        subprocess.run(["stm32flash", "-b", str(baud), "-m", "8n1", "-e", "0", "-w",
                        str(image), "-v", pty.path], capture_output=True, check=True)
        assert sim.flash[:SIZE] == IMAGE
        return sim.clock.elapsed - start


def main() -> None:
    rows: list[tuple[str, float, float, str, float]] = []
    for baud in (115200, 921600):
        elapsed, method, cpu = run(UsartTransport, "stm32f103cb", {"port": "sim", "baud": baud})
        rows.append((f"USART {baud} 8E1 (F103, v2.2)", SIZE / KIB / elapsed,
                     baud / 11 / KIB, method, cpu))
    elapsed, method, cpu = run(UsartTransport, "stm32h743zi", {"port": "sim", "baud": 921600})
    rows.append(("USART 921600 8E1 (H743, 0xA1)", SIZE / KIB / elapsed, 921600 / 11 / KIB,
                 method, cpu))
    elapsed, method, cpu = run(I2cTransport, "stm32g071rb", {"bus": 1, "clock": 400000})
    rows.append(("I2C 400 kHz (G071, v1.2)", SIZE / KIB / elapsed, 400000 / 9 / KIB, method,
                 cpu))
    elapsed, method, cpu = run(CanTransport, "stm32l476rg",
                               {"interface": "virtual", "channel": "bench", "bitrate": 125000})
    rows.append(("CAN 125 kbit/s (L476)", SIZE / KIB / elapsed,
                 125000 / frame_bits(8) * 8 / KIB, method, cpu))
    elapsed, method, cpu = run(CanTransport, "stm32l476rg",
                               {"interface": "virtual", "channel": "bench", "bitrate": 1000000})
    rows.append(("CAN 1 Mbit/s after Speed (L476)", SIZE / KIB / elapsed,
                 1000000 / frame_bits(8) * 8 / KIB, method, cpu))
    for baud in (115200, 921600):
        peer = stm32flash_peer(baud)
        if peer is not None:
            # stm32flash's pty has no parity bit to keep: paced at 10 bits per byte.
            rows.append((f"stm32flash {baud} (F103, peer)", SIZE / KIB / peer,
                         baud / 10 / KIB, "read-back", float("nan")))
    print(f"write + verify of {SIZE // 1024} KiB, simulated time (wire + chip program time)")
    print(f"{'link':<34} {'achieved':>10} {'wire limit':>11} {'overhead':>9} {'host CPU':>9}"
          f"  verify")
    for name, achieved, limit, method, cpu in rows:
        host = "" if cpu != cpu else f"{cpu:7.2f} s"
        print(f"{name:<34} {achieved:>6.2f} KiB/s {limit:>6.2f} KiB/s {limit / achieved:>8.2f}x"
              f" {host:>9}  {method}")
    print("wire limit: raw payload rate of the wire with no protocol (USART 11 bits/byte, "
          "so 115200 8E1 = 10.47 kB/s = 10.23 KiB/s; I2C 9 bits/byte; CAN 8 bytes per "
          "worst-case stuffed frame); overhead counts both the write and the verify pass "
          "against one pass at that limit. Wall-clock figures against stm32flash: "
          "bench_usart_peer.py.")


if __name__ == "__main__":
    main()
