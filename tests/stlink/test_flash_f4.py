"""F4 flash through the probe: sectors, PSIZE, sequence errors, option bytes."""

from __future__ import annotations

import os

import pytest

from runner.errors import ReadProtected, Refused, WriteError
from tests.conftest import set_option_byte
from tests.stlink.conftest import Open
from transports.base import OptionBytesChange
from transports.sim import SimulationWorld

FLASH = 0x08000000
FLASH_REGS = 0x40023C00
KEYR, SR, CR = FLASH_REGS + 0x04, FLASH_REGS + 0x0C, FLASH_REGS + 0x10
PGPERR, PGSERR = 1 << 6, 1 << 7


def unlock(link: object) -> None:
    link.write_word(KEYR, 0x45670123)  # type: ignore[attr-defined]
    link.write_word(KEYR, 0xCDEF89AB)  # type: ignore[attr-defined]


def test_sectors_are_erased_and_written_with_word_parallelism(
        open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32f411re")
    data = os.urandom(40 * 1024)
    blocks = session.chip.flash.blocks_covering(FLASH, len(data))
    assert [b.size for b in blocks] == [16384] * 3
    session.erase(blocks)
    session.write(FLASH, data)
    assert session.read(FLASH, len(data)) == data
    assert world.chips["board"].stats.blocks_erased == 3


def test_a_write_whose_width_differs_from_psize_sets_pgperr(
        open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32f411re")
    link = session.link
    assert link is not None
    unlock(link)
    link.write_word(CR, 1 | (0 << 8))  # PG, PSIZE x8
    link.write_word(FLASH, 0x11223344)  # a 32-bit bus write
    assert link.read_word(SR) & PGPERR
    assert world.chips["board"].flash[:4] == b"\xff" * 4


def test_a_write_without_pg_sets_pgserr(open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32f411re")
    link = session.link
    assert link is not None
    unlock(link)
    link.write_word(FLASH, 0x11223344)
    assert link.read_word(SR) & PGSERR
    assert world.chips["board"].flash[:4] == b"\xff" * 4


def test_errors_left_by_an_earlier_sequence_are_cleared_before_programming(
        open_session: Open) -> None:
    session = open_session("stm32f411re")
    link = session.link
    assert link is not None
    session.erase(session.chip.flash.blocks[:1])
    unlock(link)
    link.write_word(CR, 1)
    link.write_word(FLASH, 0x11223344)  # PSIZE x8 with a word: PGPERR stays set
    session.write(FLASH + 16, b"\x01\x02\x03\x04" * 4)
    assert session.read(FLASH + 16, 4) == b"\x01\x02\x03\x04"


def test_low_voltage_programs_byte_by_byte(open_session: Open,
                                           world: SimulationWorld) -> None:
    session = open_session("stm32f411re", quirks={"target-voltage": 2.0})
    assert session.driver is not None and session.driver.psize_bytes == 1  # type: ignore
    data = os.urandom(512)
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, data)
    assert session.read(FLASH, len(data)) == data


def test_f4_writes_over_data_corrupt_as_silicon_does(open_session: Open) -> None:
    """F4 has no not-erased check: bits only clear, and verify is what catches it."""
    session = open_session("stm32f411re")
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, b"\x0f\x0f\x0f\x0f")
    session.write(FLASH, b"\xf0\xff\xff\xff")
    assert session.read(FLASH, 4) == b"\x00\x0f\x0f\x0f"


def test_mass_erase(open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32f411re")
    session.erase(())
    assert world.chips["board"].stats.mass_erases == 1


def test_rdp_round_trip_on_f4(open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32f411re")
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, b"\x12\x34\x56\x78")
    session.write_option_bytes(OptionBytesChange(rdp_level=1))
    with pytest.raises(ReadProtected):
        session.read(FLASH, 4)
    with pytest.raises(ReadProtected):
        session.write(FLASH + 4, b"\x00\x00\x00\x00")
    session.write_option_bytes(OptionBytesChange(rdp_level=0))
    assert session.read(FLASH, 4) == b"\xff" * 4


def test_rdp_change_keeps_the_user_and_bor_option_byte(open_session: Open,
                                                       world: SimulationWorld) -> None:
    session = open_session("stm32f411re")
    sim = world.chips["board"]
    set_option_byte(sim, 0, 0x4C)  # USER: nRST_STDBY and WDG_SW cleared
    session.write_option_bytes(OptionBytesChange(rdp_level=1))
    assert sim.rdp_level == 1
    assert sim.option_bytes[0] == 0x4C
    assert session.read_option_bytes().fields["user"] == 0x4C >> 5


def test_user_option_field_is_programmed_into_byte_0(open_session: Open,
                                                     world: SimulationWorld) -> None:
    session = open_session("stm32f411re")
    session.write_option_bytes(OptionBytesChange(fields={"bor_lev": 1}))
    sim = world.chips["board"]
    assert sim.option_bytes[:2] == bytes([0xE4, 0xAA])  # BOR_LEV 3:2 = 01, RDP still 0
    assert sim.rdp_level == 0


def test_rdp_level_2_needs_confirmation(open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32f411re")
    with pytest.raises(Refused, match="confirm: irreversible"):
        session.write_option_bytes(OptionBytesChange(rdp_level=2))
    assert world.chips["board"].rdp_level == 0
    session.write_option_bytes(OptionBytesChange(rdp_level=2, confirmed_irreversible=True))
    assert world.chips["board"].rdp_level == 2


def test_unaligned_write_is_refused_before_touching_flash(open_session: Open) -> None:
    session = open_session("stm32f411re")
    with pytest.raises(WriteError, match="not aligned"):
        session.write(FLASH + 2, b"\x00" * 4)
