"""The simulated STM32H5 flash controller, driven by register accesses as RM0481 §7 says.

Nothing here goes through the ST-Link driver or its flash algorithms: the register
offsets, bits and keys are written out below from the reference manual, and the
test is the sequence a programmer's reference would use, so the driver and the
simulator cannot share a misreading.
"""

from __future__ import annotations

import pytest

from transports.chips import ChipDatabase
from transports.sim.chip import SimChip
from transports.sim.stlink.controller import BusFault
from transports.sim.stlink.flash_h5 import SimH5Controller

# RM0481 §7.11: non-secure register offsets from FLASH base (0x40022000).
NSKEYR, OPTKEYR, OPTCR, NSSR, NSCR, NSCCR, OPTSR_CUR, OPTSR_PRG = (
    0x04, 0x0C, 0x1C, 0x20, 0x28, 0x30, 0x50, 0x54)
KEY1, KEY2 = 0x45670123, 0xCDEF89AB
OPTKEY1, OPTKEY2 = 0x08192A3B, 0x4C5D6E7F
# FLASH_NSSR
BSY, WBNE, EOP, PGSERR, INCERR, OPTCHANGEERR = 1 << 0, 1 << 1, 1 << 16, 1 << 18, 1 << 20, 1 << 23
# FLASH_NSCR
LOCK, PG, SER, STRT, BKSEL = 1 << 0, 1 << 1, 1 << 2, 1 << 5, 1 << 31
# FLASH_OPTCR
OPTLOCK, OPTSTRT = 1 << 0, 1 << 1
OPEN, CLOSED = 0xED, 0x72   # PRODUCT_STATE, OPTSR bits 15:8
BANK1, BANK2, SECTOR = 0x08000000, 0x08100000, 8192


@pytest.fixture
def h5(chips: ChipDatabase) -> tuple[SimChip, SimH5Controller]:
    sim = SimChip(chips.part("stm32h563zi"))
    return sim, SimH5Controller(sim)


def unlock(flash: SimH5Controller) -> None:
    flash.write_register(NSKEYR, KEY1)
    flash.write_register(NSKEYR, KEY2)


def wait_ready(sim: SimChip, flash: SimH5Controller) -> int:
    """Poll NSSR as firmware would, letting simulated time pass while BSY is set."""
    for _ in range(100):
        status = flash.read_register(NSSR)
        if not status & BSY:
            return status
        sim.clock.advance(0.001)
    raise AssertionError("BSY never cleared")


def program_quad_word(flash: SimH5Controller, address: int, data: bytes) -> None:
    for offset in range(0, 16, 4):
        flash.write_flash(address + offset, data[offset:offset + 4])


def test_nscr_stays_locked_until_both_keys_are_written(h5: tuple[SimChip,
                                                                 SimH5Controller]) -> None:
    _, flash = h5
    assert flash.read_register(NSCR) & LOCK
    flash.write_register(NSCR, PG)   # ignored while locked
    assert flash.read_register(NSCR) == LOCK
    unlock(flash)
    assert not flash.read_register(NSCR) & LOCK
    flash.write_register(NSCR, LOCK)
    assert flash.read_register(NSCR) & LOCK


def test_a_wrong_key_faults_and_blocks_the_key_register_until_reset(
        h5: tuple[SimChip, SimH5Controller]) -> None:
    _, flash = h5
    with pytest.raises(BusFault):
        flash.write_register(NSKEYR, KEY2)
    with pytest.raises(BusFault):
        unlock(flash)
    flash.system_reset()
    unlock(flash)
    assert not flash.read_register(NSCR) & LOCK


def test_a_quad_word_is_programmed_once_its_fourth_word_arrives(
        h5: tuple[SimChip, SimH5Controller]) -> None:
    sim, flash = h5
    unlock(flash)
    flash.write_register(NSCR, PG)
    data = bytes(range(16))
    for offset in range(0, 12, 4):
        flash.write_flash(BANK1 + offset, data[offset:offset + 4])
        assert flash.read_register(NSSR) & WBNE   # the write buffer is not empty
    assert sim.read_flash(BANK1, 16) == b"\xff" * 16
    flash.write_flash(BANK1 + 12, data[12:])
    status = wait_ready(sim, flash)
    assert status & EOP and not status & WBNE
    assert sim.read_flash(BANK1, 16) == data
    flash.write_register(NSCCR, EOP)
    assert not flash.read_register(NSSR) & EOP


def test_a_write_into_another_quad_word_is_an_inconsistency_error(
        h5: tuple[SimChip, SimH5Controller]) -> None:
    sim, flash = h5
    unlock(flash)
    flash.write_register(NSCR, PG)
    flash.write_flash(BANK1, b"\x01\x02\x03\x04")
    flash.write_flash(BANK1 + 16, b"\x05\x06\x07\x08")
    assert flash.read_register(NSSR) & INCERR
    assert sim.read_flash(BANK1, 32) == b"\xff" * 32


def test_programming_without_pg_is_a_sequence_error(h5: tuple[SimChip,
                                                              SimH5Controller]) -> None:
    sim, flash = h5
    unlock(flash)
    program_quad_word(flash, BANK1, bytes(16))
    assert flash.read_register(NSSR) & PGSERR
    assert sim.read_flash(BANK1, 16) == b"\xff" * 16


def test_a_sector_erase_selects_its_bank_with_bksel(h5: tuple[SimChip,
                                                              SimH5Controller]) -> None:
    sim, flash = h5
    for bank in (BANK1, BANK2):
        sim.program(bank + 3 * SECTOR, b"\x00" * 16)
    unlock(flash)
    flash.write_register(NSCR, SER | BKSEL | (3 << 6) | STRT)   # bank 2, sector 3
    assert flash.read_register(NSSR) & BSY
    assert wait_ready(sim, flash) & EOP
    assert sim.read_flash(BANK2 + 3 * SECTOR, 16) == b"\xff" * 16
    assert sim.read_flash(BANK1 + 3 * SECTOR, 16) == b"\x00" * 16


def test_a_closed_product_state_cannot_be_reopened_by_option_bytes(
        h5: tuple[SimChip, SimH5Controller]) -> None:
    _, flash = h5
    assert (flash.read_register(OPTSR_CUR) >> 8) & 0xFF == OPEN
    assert flash.read_register(OPTCR) & OPTLOCK
    flash.write_register(OPTKEYR, OPTKEY1)
    flash.write_register(OPTKEYR, OPTKEY2)
    assert not flash.read_register(OPTCR) & OPTLOCK
    current = flash.read_register(OPTSR_PRG)
    flash.write_register(OPTSR_PRG, (current & ~0xFF00) | CLOSED << 8)
    flash.write_register(OPTCR, OPTSTRT)
    assert (flash.read_register(OPTSR_CUR) >> 8) & 0xFF == CLOSED
    flash.write_register(OPTSR_PRG, (current & ~0xFF00) | OPEN << 8)
    flash.write_register(OPTCR, OPTSTRT)   # regression needs debug authentication
    assert flash.read_register(NSSR) & OPTCHANGEERR
    assert (flash.read_register(OPTSR_CUR) >> 8) & 0xFF == CLOSED
