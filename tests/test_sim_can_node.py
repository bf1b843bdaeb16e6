"""The simulated CAN ROM node, driven with raw python-can frames as AN3154 lays them out.

Every frame's identifier is the command code, ACK/NACK are 1-byte frames
(0x79/0x1F), and there are no checksums (AN3154, §3 of our reference notes);
nothing goes through the CAN driver.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import can
import pytest

from transports.chips import Chip, ChipDatabase
from transports.sim.bootloader import BootloaderCore, Link, bootloader_profile
from transports.sim.canbus import CanBootloaderNode
from transports.sim.chip import SimChip

ACK, NACK, SYNC = 0x79, 0x1F, 0x79
GET, GET_ID, READ, WRITE = 0x00, 0x02, 0x11, 0x31


class Host:
    def __init__(self, bus: can.BusABC) -> None:
        self.bus = bus

    def send(self, ident: int, data: bytes = b"") -> None:
        self.bus.send(can.Message(arbitration_id=ident, is_extended_id=False, data=data))

    def frame(self) -> tuple[int, bytes]:
        message = self.bus.recv(timeout=5.0)
        assert message is not None, "the node did not answer"
        return message.arbitration_id, bytes(message.data)

    def frames(self, count: int) -> list[tuple[int, bytes]]:
        return [self.frame() for _ in range(count)]


@contextmanager
def synced_node(sim: SimChip) -> Iterator[Host]:
    """A ROM node over ``sim`` on its own virtual channel, and a host that has synced."""
    node = CanBootloaderNode(BootloaderCore(sim, bootloader_profile(sim.chip, Link.CAN, {})),
                             f"raw-frames-{id(sim):x}")
    bus = can.Bus(interface="virtual", channel=node.channel, receive_own_messages=False)
    host = Host(bus)
    try:
        host.send(SYNC)   # AN3154: ID 0x79, no data; the node answers ACK with that ID
        assert host.frame() == (SYNC, bytes([ACK]))
        yield host
    finally:
        bus.shutdown()
        node.stop()


@pytest.fixture
def f105(chips: ChipDatabase) -> Iterator[tuple[Chip, SimChip, Host]]:
    chip = chips.part("stm32f105rc")
    sim = SimChip(chip)
    with synced_node(sim) as host:
        yield chip, sim, host


def test_get_answers_one_code_per_frame_with_the_command_id(
        f105: tuple[Chip, SimChip, Host]) -> None:
    _, _, host = f105
    host.send(GET)
    assert host.frame() == (GET, bytes([ACK]))
    (ident, count), (_, version) = host.frames(2)
    assert ident == GET and len(count) == 1 and len(version) == 1
    codes = host.frames(count[0])
    assert all(ident == GET and len(data) == 1 for ident, data in codes)
    # A CAN ROM lists Speed and the legacy Erase, never Extended Erase (AN3154).
    assert {0x00, 0x01, 0x02, 0x03, 0x11, 0x21, 0x31, 0x43} <= {d[0] for _, d in codes}
    assert 0x44 not in {d[0] for _, d in codes}
    assert host.frame() == (GET, bytes([ACK]))


def test_get_id_is_one_two_byte_frame(f105: tuple[Chip, SimChip, Host]) -> None:
    chip, _, host = f105
    host.send(GET_ID)
    assert host.frames(3) == [(GET_ID, bytes([ACK])),
                              (GET_ID, chip.dev_id.to_bytes(2, "big")),
                              (GET_ID, bytes([ACK]))]


def test_write_memory_acks_every_data_frame_then_programs(
        f105: tuple[Chip, SimChip, Host]) -> None:
    _, sim, host = f105
    data = bytes(range(0x40, 0x54))   # 20 bytes: frames of 8, 8 and 4
    host.send(WRITE, bytes([0x08, 0x00, 0x00, 0x00, len(data) - 1]))
    assert host.frame() == (WRITE, bytes([ACK]))
    for at in range(0, len(data), 8):
        host.send(0x04, data[at:at + 8])   # data frames: any ID, 0x04 recommended
        assert host.frame() == (WRITE, bytes([ACK]))
    assert host.frame() == (WRITE, bytes([ACK]))   # programmed
    assert sim.read_flash(0x08000000, len(data)) == data


def test_read_memory_streams_the_bytes_then_acks(f105: tuple[Chip, SimChip, Host]) -> None:
    _, sim, host = f105
    sim.program(0x08000200, bytes(range(20)))
    host.send(READ, bytes([0x08, 0x00, 0x02, 0x00, 19]))
    assert host.frame() == (READ, bytes([ACK]))
    received = b""
    while len(received) < 20:
        ident, data = host.frame()
        assert ident == READ and 1 <= len(data) <= 8
        received += data
    assert received == bytes(range(20))
    assert host.frame() == (READ, bytes([ACK]))


def test_read_protection_refuses_read_memory(chips: ChipDatabase) -> None:
    with synced_node(SimChip(chips.part("stm32f105rc"), rdp_level=1)) as host:
        host.send(READ, bytes([0x08, 0x00, 0x00, 0x00, 3]))
        assert host.frame() == (READ, bytes([NACK]))
