"""The simulated ROM is as strict on the wire as silicon (AN3155, AN4221)."""

from __future__ import annotations

from functools import reduce
from operator import xor

import pytest

from transports.chips import ChipDatabase
from transports.sim import SimChip
from transports.sim.bootloader import BUSY, BootloaderCore, Link, bootloader_profile
from transports.sim.bootloader_stream import StreamBootloader

ACK, NACK = b"\x79", b"\x1f"


def rom(chips: ChipDatabase, part: str, link: Link = Link.USART, rdp: int = 0,
        **quirks: object) -> StreamBootloader:
    chip = chips.part(part)
    core = BootloaderCore(SimChip(chip, rdp_level=rdp), bootloader_profile(chip, link, quirks))
    stream = StreamBootloader(core, link)
    if link is Link.USART:
        stream.feed(b"\x7f")
        assert stream.take() == ACK
    return stream


def with_xor(data: bytes) -> bytes:
    return data + bytes([reduce(xor, data, 0)])


def test_bytes_before_sync_are_ignored(chips: ChipDatabase) -> None:
    chip = chips.part("stm32f103cb")
    stream = StreamBootloader(BootloaderCore(SimChip(chip), bootloader_profile(
        chip, Link.USART, {})), Link.USART)
    stream.feed(b"\x00\xff\x7f")
    assert stream.take() == ACK


def test_bad_complement_is_nacked(chips: ChipDatabase) -> None:
    stream = rom(chips, "stm32f103cb")
    stream.feed(b"\x00\xfe")
    assert stream.take() == NACK


def test_unlisted_command_is_nacked(chips: ChipDatabase) -> None:
    stream = rom(chips, "stm32f103cb")  # v2.2: Erase 0x43, not Extended Erase 0x44
    stream.feed(b"\x44\xbb")
    assert stream.take() == NACK


def test_get_lists_version_and_commands(chips: ChipDatabase) -> None:
    stream = rom(chips, "stm32f103cb")
    stream.feed(b"\x00\xff")
    assert stream.take().hex() == "790b22000102112131436373829279"


def test_bad_address_checksum_aborts_the_command(chips: ChipDatabase) -> None:
    stream = rom(chips, "stm32f103cb")
    stream.feed(b"\x11\xee\x08\x00\x00\x00\x00")
    assert stream.take() == ACK + NACK
    stream.feed(b"\x02\xfd")  # back at the command prompt
    assert stream.take() == ACK + b"\x01\x04\x10" + ACK


def test_write_with_count_off_by_one_is_nacked(chips: ChipDatabase) -> None:
    # The forum example of AN4221: N = 8 for eight bytes is wrong; N is count - 1.
    stream = rom(chips, "stm32g071rb")
    stream.feed(b"\x31\xce" + with_xor(b"\x08\x00\x00\x00"))
    stream.feed(with_xor(b"\x08" + bytes(range(0x11, 0x99, 0x11))))
    assert stream.take() == ACK + ACK  # still waiting for the ninth byte and checksum
    stream.feed(b"\x00")
    assert stream.take() == NACK
    assert stream.core.sim.flash[:8] == b"\xff" * 8


def test_read_protection_nacks_read_on_the_command_byte(chips: ChipDatabase) -> None:
    stream = rom(chips, "stm32f411re", rdp=1)
    stream.feed(b"\x11\xee")
    assert stream.take() == NACK
    stream.feed(b"\x02\xfd")
    assert stream.take()[:1] == ACK


def test_readout_unprotect_erases_and_resets_to_sync(chips: ChipDatabase) -> None:
    stream = rom(chips, "stm32f411re", rdp=1)
    stream.feed(b"\x92\x6d")
    assert stream.take() == ACK + ACK
    assert stream.core.sim.rdp_level == 0
    stream.feed(b"\x02\xfd")
    assert stream.take() == b""  # rebooted: waiting for 0x7F again
    stream.feed(b"\x7f")
    assert stream.take() == ACK


def test_extended_erase_special_code_needs_its_xor(chips: ChipDatabase) -> None:
    stream = rom(chips, "stm32f411re")
    stream.feed(b"\x44\xbb\xff\xff\x01")
    assert stream.take() == ACK + NACK
    stream.feed(b"\x44\xbb\xff\xff\x00")
    assert stream.take() == ACK + ACK


def test_bank_erase_is_refused_on_single_bank_parts(chips: ChipDatabase) -> None:
    stream = rom(chips, "stm32f411re")
    stream.feed(b"\x44\xbb\xff\xfe\x01")
    assert stream.take() == ACK + NACK


def test_i2c_get_version_is_one_byte(chips: ChipDatabase) -> None:
    stream = rom(chips, "stm32g071rb", Link.I2C)
    stream.feed(b"\x01\xfe")
    assert stream.take() == ACK + b"\x12" + ACK


def test_i2c_extended_erase_checks_the_count_apart(chips: ChipDatabase) -> None:
    stream = rom(chips, "stm32g071rb", Link.I2C)
    stream.feed(b"\x45\xba" + with_xor(b"\x00\x01"))
    assert stream.take() == ACK + ACK
    stream.feed(with_xor(b"\x00\x00\x00\x01"))
    assert stream.busy_polls == 1
    assert stream.take() == ACK
    assert stream.core.sim.stats.blocks_erased == 2


def test_i2c_v1_2_lists_no_stretch_commands_and_checksum(chips: ChipDatabase) -> None:
    stream = rom(chips, "stm32g071rb", Link.I2C)
    stream.feed(b"\x00\xff")
    reply = stream.take()
    assert reply[1] == 18 and reply[2] == 0x12
    assert {0x32, 0x45, 0xA1} <= set(reply[3:-1])
    assert BUSY == 0x76


def test_go_leaves_the_bootloader(chips: ChipDatabase) -> None:
    stream = rom(chips, "stm32f103cb")
    stream.feed(b"\x21\xde" + with_xor(b"\x08\x00\x00\x00"))
    assert stream.take() == ACK + ACK
    assert not stream.core.active
    stream.feed(b"\x02\xfd")
    assert stream.take() == b""


@pytest.mark.parametrize("address", [0x1FFFF000 - 4, 0x40000000])
def test_go_to_non_executable_memory_is_refused(chips: ChipDatabase, address: int) -> None:
    stream = rom(chips, "stm32f103cb")
    stream.feed(b"\x21\xde" + with_xor(address.to_bytes(4, "big")))
    assert stream.take() == ACK + NACK
