"""The simulated CAN ROM's Erase answers, frame by frame, as AN3154 draws the flow.

AN3154 / AN2662 "Erase Memory command via CAN" (host side): send ID 0x43 with
0xFF, wait for ACK or NACK, the device erases, wait for ACK or NACK — two
frames. ST's open bootloader adds a final third ACK; that dialect stays
available as the ``open-bootloader`` quirk.
"""

from __future__ import annotations

from collections.abc import Iterator

import can
import pytest

from transports.chips import ChipDatabase
from transports.sim import SimChip
from transports.sim.bootloader import ACK, BootloaderCore, Link, bootloader_profile
from transports.sim.canbus import CanBootloaderNode

ERASE = 0x43
SYNC = 0x79


def _frames(bus: can.BusABC, quiet: float = 0.3) -> list[tuple[int, bytes]]:
    """Every frame that arrives until the bus stays quiet for ``quiet`` seconds."""
    frames = []
    while (message := bus.recv(timeout=quiet)) is not None:
        frames.append((message.arbitration_id, bytes(message.data)))
    return frames


@pytest.fixture(params=["an3154", "open-bootloader"])
def host(request: pytest.FixtureRequest, chips: ChipDatabase) -> Iterator[
        tuple[can.BusABC, SimChip, str]]:
    chip = chips.part("stm32f105rc")
    sim = SimChip(chip)
    core = BootloaderCore(sim, bootloader_profile(chip, Link.CAN, {}))
    node = CanBootloaderNode(core, f"erase-{request.param}-{id(sim):x}",
                             erase_style=request.param)
    bus = can.Bus(interface="virtual", channel=node.channel, receive_own_messages=False)
    try:
        bus.send(can.Message(arbitration_id=SYNC, is_extended_id=False, data=b""))
        assert _frames(bus) == [(SYNC, bytes([ACK]))]
        yield bus, sim, request.param
    finally:
        bus.shutdown()
        node.stop()


def test_mass_erase_answers_the_frames_its_dialect_records(
        host: tuple[can.BusABC, SimChip, str]) -> None:
    bus, sim, style = host
    sim.program(0x08000000, b"\x00" * 8)
    bus.send(can.Message(arbitration_id=ERASE, is_extended_id=False, data=b"\xff"))
    expected = 2 if style == "an3154" else 3
    assert _frames(bus) == [(ERASE, bytes([ACK]))] * expected
    assert sim.flash[:8] == b"\xff" * 8
