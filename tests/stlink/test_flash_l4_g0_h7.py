"""Double-word (L4, G0) and flash-word (H7) controllers through the probe."""

from __future__ import annotations

import os

import pytest

from runner.errors import ReadProtected, WriteError
from tests.stlink.conftest import Open
from transports.base import OptionBytesChange
from transports.sim import SimulationWorld

FLASH = 0x08000000
L4_REGS = 0x40022000
L4_SR, L4_CR = L4_REGS + 0x10, L4_REGS + 0x14
PGAERR, PGSERR = 1 << 5, 1 << 7
H7_REGS = 0x52002000


def unlock_l4(link: object) -> None:
    link.write_word(L4_REGS + 0x08, 0x45670123)  # type: ignore[attr-defined]
    link.write_word(L4_REGS + 0x08, 0xCDEF89AB)  # type: ignore[attr-defined]


@pytest.mark.parametrize("part", ["stm32g071rb", "stm32l476rg"])
def test_double_words_are_programmed_and_read_back(open_session: Open, part: str) -> None:
    session = open_session(part)
    data = os.urandom(6 * 1024)
    session.erase(session.chip.flash.blocks_covering(FLASH, len(data)))
    session.write(FLASH, data)
    assert session.read(FLASH, len(data)) == data


def test_l4_bank_2_pages_are_erased_with_bker(open_session: Open,
                                              world: SimulationWorld) -> None:
    session = open_session("stm32l476rg")
    bank2 = session.chip.flash.bank2_base
    assert bank2 == 0x08080000
    world.chips["board"].program(bank2, b"\x00" * 16, timed=False)
    block = session.chip.flash.block_at(bank2)
    assert (block.bank, block.index_in_bank) == (2, 0)
    session.erase([block])
    session.write(bank2, b"\xa5" * 16)
    assert session.read(bank2, 16) == b"\xa5" * 16
    assert world.chips["board"].flash[:16] == b"\xff" * 16  # bank 1 page 0 untouched


def test_programming_a_written_double_word_fails_with_progerr(open_session: Open) -> None:
    session = open_session("stm32g071rb")
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, b"\x01" * 8)
    with pytest.raises(WriteError, match="PROGERR") as info:
        session.write(FLASH, b"\x00" * 8)
    assert info.value.address == FLASH


def test_a_misaligned_first_word_sets_pgaerr(open_session: Open,
                                             world: SimulationWorld) -> None:
    session = open_session("stm32g071rb")
    link = session.link
    assert link is not None
    unlock_l4(link)
    link.write_word(L4_CR, 1)
    link.write_word(FLASH + 4, 0)
    assert link.read_word(L4_SR) & PGAERR
    assert world.chips["board"].flash[:8] == b"\xff" * 8


def test_a_write_with_pg_clear_sets_pgserr(open_session: Open) -> None:
    session = open_session("stm32l476rg")
    link = session.link
    assert link is not None
    unlock_l4(link)
    link.write_word(FLASH, 0)
    assert link.read_word(L4_SR) & PGSERR


def test_the_safe_path_writes_double_words_one_by_one(open_session: Open) -> None:
    session = open_session("stm32g071rb", options={"write-mode": "safe"})
    data = os.urandom(256)
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, data)
    assert session.read(FLASH, len(data)) == data


def test_l4_rdp_round_trip_mass_erases_on_regression(open_session: Open,
                                                     world: SimulationWorld) -> None:
    session = open_session("stm32l476rg")
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, b"\x42" * 8)
    session.write_option_bytes(OptionBytesChange(rdp_level=1))
    assert session.read_option_bytes().rdp_level == 1
    with pytest.raises(ReadProtected):
        session.read(FLASH, 8)
    session.write_option_bytes(OptionBytesChange(rdp_level=0))
    assert session.read_option_bytes().rdp_level == 0
    assert session.read(FLASH, 8) == b"\xff" * 8
    assert world.chips["board"].stats.mass_erases == 1


def test_h7_writes_both_banks(open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32h743zi")
    bank2 = session.chip.flash.bank2_base
    assert bank2 is not None
    data = os.urandom(2048)
    blocks = [session.chip.flash.block_at(FLASH), session.chip.flash.block_at(bank2)]
    session.erase(blocks)
    session.write(FLASH, data)
    session.write(bank2, data)
    assert session.read(FLASH, len(data)) == data
    assert session.read(bank2, len(data)) == data


def test_h7_a_write_into_another_flash_word_before_completion_sets_incerr(
        open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32h743zi")
    link = session.link
    assert link is not None
    link.write_word(H7_REGS + 0x04, 0x45670123)
    link.write_word(H7_REGS + 0x04, 0xCDEF89AB)
    link.write_word(H7_REGS + 0x0C, (1 << 1) | (3 << 4))
    link.write_word(FLASH, 0)
    link.write_word(FLASH + 64, 0)
    assert link.read_word(H7_REGS + 0x10) & (1 << 21)
    assert world.chips["board"].flash[:32] == b"\xff" * 32


def test_h7_rdp_round_trip(open_session: Open) -> None:
    session = open_session("stm32h743zi")
    session.write_option_bytes(OptionBytesChange(rdp_level=1))
    assert session.read_option_bytes().rdp_level == 1
    session.write_option_bytes(OptionBytesChange(rdp_level=0))
    assert session.read_option_bytes().rdp_level == 0


def test_l0_half_page_is_written_in_one_command_and_reads_back(open_session: Open,
                                                               world: SimulationWorld) -> None:
    session = open_session("stm32l073rz")
    data = os.urandom(64 * 3 + 8)
    session.erase(session.chip.flash.blocks_covering(FLASH + 56, len(data)))
    session.write(FLASH + 56, data)  # a word-mode head, three half pages, a word tail
    assert session.read(FLASH + 56, len(data)) == data


def test_l0_a_read_between_half_page_words_aborts_the_half_page(
        open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32l073rz")
    link = session.link
    assert link is not None
    regs = session.chip.flash_controller_address
    assert regs is not None
    session.driver.unlock()  # type: ignore[union-attr]
    link.write_word(regs + 0x04, (1 << 10) | (1 << 3))  # FPRG | PROG
    link.write_word(FLASH, 0x11111111)
    link.read_word(FLASH + 0x100)  # any flash access in between
    link.write_word(FLASH + 4, 0x22222222)
    assert link.read_word(regs + 0x18) & ((1 << 10) | (1 << 9))  # SIZERR or PGAERR
    assert world.chips["board"].flash[:8] == b"\x00" * 8


def test_l0_writing_over_data_fails_with_notzeroerr(open_session: Open) -> None:
    session = open_session("stm32l073rz", options={"write-mode": "safe"})
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, b"\x01\x00\x00\x00")
    with pytest.raises(WriteError, match="NOTZEROERR") as info:
        session.write(FLASH, b"\x02\x00\x00\x00")
    assert info.value.address == FLASH


@pytest.mark.parametrize("part", ["stm32h743zi", "stm32l476rg", "stm32f429zi", "stm32f103zg"])
def test_a_wholly_covered_bank_is_erased_in_one_operation(open_session: Open,
                                                          world: SimulationWorld,
                                                          part: str) -> None:
    from tests.stlink.conftest import probe_of

    session = open_session(part)
    flash = session.chip.flash
    sim = world.chips["board"]
    bank2 = [b for b in flash.blocks if b.bank == 2]
    sim.program(bank2[0].address, b"\x00" * 16, timed=False)
    sim.program(flash.base, b"\x00" * 16, timed=False)
    before = len(probe_of(world).commands)
    session.erase(bank2)
    used = len(probe_of(world).commands) - before
    assert used < 4 * len(bank2)  # an erase sequence per unit takes at least 4 commands
    assert sim.flash[bank2[0].address - flash.base:][:16] == b"\xff" * 16
    assert sim.flash[:16] == b"\x00" * 16  # bank 1 untouched
