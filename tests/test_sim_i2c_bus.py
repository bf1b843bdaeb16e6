"""The simulated I2C bus and its ROM, driven with raw smbus2 messages as AN4221 frames them.

Every step is its own transaction (AN4221 §2 in our reference notes: host frames
are writes, each ACK/NACK/BUSY a 1-byte read, multi-byte replies one read of the
exact length); nothing goes through the I2C driver.
"""

from __future__ import annotations

import errno
from functools import reduce
from operator import xor

import pytest
from smbus2 import i2c_msg

from transports.chips import Chip, ChipDatabase
from transports.sim.bootloader import BootloaderCore, Link, bootloader_profile
from transports.sim.bootloader_stream import StreamBootloader
from transports.sim.chip import SimChip
from transports.sim.smbus import SimI2cBus

ACK, NACK, BUSY = 0x79, 0x1F, 0x76
ADDRESS = 0x56   # the G0's ROM address (AN2606); any 7-bit address works on the simulated bus


class Host:
    """What a test needs from an I2C host: write transactions and exact-length reads."""

    def __init__(self, bus: SimI2cBus) -> None:
        self.bus = bus

    def write(self, *data: int) -> None:
        self.bus.i2c_rdwr(i2c_msg.write(ADDRESS, bytes(data)))

    def read(self, length: int) -> bytes:
        message = i2c_msg.read(ADDRESS, length)
        self.bus.i2c_rdwr(message)
        return bytes(message)

    def status(self) -> int:
        return self.read(1)[0]

    def status_after_busy(self) -> tuple[int, int]:
        """Poll 1-byte status reads until not BUSY; (final status, BUSY answers seen)."""
        for polls in range(10_000):
            answer = self.status()
            if answer != BUSY:
                return answer, polls
        raise AssertionError("BUSY forever")


def framed(*values: int) -> tuple[int, ...]:
    return (*values, reduce(xor, values, 0))


@pytest.fixture
def g0(chips: ChipDatabase) -> tuple[Chip, SimChip, Host]:
    chip = chips.part("stm32g071rb")
    sim = SimChip(chip)
    bus = SimI2cBus()
    bus.attach(ADDRESS, StreamBootloader(BootloaderCore(
        sim, bootloader_profile(chip, Link.I2C, {})), Link.I2C))
    return chip, sim, Host(bus)


#: AN4221: how many commands Get lists per protocol version (the host must know the length).
GET_COUNT = {0x10: 11, 0x11: 17, 0x12: 18}


def test_get_lists_the_commands_its_version_promises(g0: tuple[Chip, SimChip, Host]) -> None:
    _, _, host = g0
    host.write(0x01, 0xFE)
    assert host.status() == ACK
    version = host.read(1)[0]
    assert host.status() == ACK
    count = GET_COUNT[version]
    host.write(0x00, 0xFF)
    assert host.status() == ACK
    reply = host.read(count + 2)   # N, version, N codes: one transaction
    assert reply[:2] == bytes([count, version])
    codes = set(reply[2:])
    assert len(codes) == count
    assert {0x00, 0x01, 0x02, 0x11, 0x21, 0x31, 0x44, 0x32, 0x45} <= codes
    assert host.status() == ACK


def test_get_id_is_a_three_byte_reply(g0: tuple[Chip, SimChip, Host]) -> None:
    chip, _, host = g0
    host.write(0x02, 0xFD)
    assert host.status() == ACK
    assert host.read(3) == bytes([0x01, chip.dev_id >> 8, chip.dev_id & 0xFF])
    assert host.status() == ACK


def test_no_stretch_write_answers_busy_then_ack_and_programs(
        g0: tuple[Chip, SimChip, Host]) -> None:
    _, sim, host = g0
    data = bytes([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
    host.write(0x32, 0xCD)
    assert host.status() == ACK
    host.write(*framed(0x08, 0x00, 0x00, 0x00))
    assert host.status() == ACK
    host.write(*framed(len(data) - 1, *data))   # N = count - 1
    status, _ = host.status_after_busy()
    assert status == ACK
    assert sim.read_flash(0x08000000, 8) == data


def test_read_memory_takes_the_count_with_its_complement(g0: tuple[Chip, SimChip,
                                                                   Host]) -> None:
    _, sim, host = g0
    sim.program(0x08000100, bytes(range(16)))
    host.write(0x11, 0xEE)
    assert host.status() == ACK
    host.write(*framed(0x08, 0x00, 0x01, 0x00))
    assert host.status() == ACK
    host.write(15, 15 ^ 0xFF)
    assert host.status() == ACK
    assert host.read(16) == bytes(range(16))


def test_a_bad_checksum_is_nacked_and_aborts_the_command(g0: tuple[Chip, SimChip,
                                                                   Host]) -> None:
    _, _, host = g0
    host.write(0x11, 0xEE)
    assert host.status() == ACK
    host.write(0x08, 0x00, 0x00, 0x00, 0x00)   # XOR should be 0x08
    assert host.status() == NACK
    host.write(0x02, 0xFD)   # the ROM waits for a new command
    assert host.status() == ACK


def test_an_address_nobody_answers_is_a_remote_io_error(g0: tuple[Chip, SimChip,
                                                                  Host]) -> None:
    _, _, host = g0
    with pytest.raises(OSError) as info:
        host.bus.i2c_rdwr(i2c_msg.write(ADDRESS + 1, b"\x00\xff"))
    assert info.value.errno == errno.EREMOTEIO
