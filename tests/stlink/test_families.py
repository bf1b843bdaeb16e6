"""One part of every supported controller kind: identify, erase, write, read, RDP."""

from __future__ import annotations

import os

import pytest

from tests.stlink.conftest import Open
from transports.base import OptionBytesChange
from transports.chips import Chip, chip_database
from transports.stlink.flash import DRIVERS


def representatives() -> list[Chip]:
    """The first part of each (controller kind, core, bank count) in the database."""
    seen: dict[tuple[str, str, int], Chip] = {}
    for chip in chip_database():
        key = (chip.controller, chip.core, chip.flash.banks)
        if chip.controller in DRIVERS and key not in seen:
            seen[key] = chip
    return list(seen.values())


@pytest.mark.parametrize("chip", representatives(), ids=lambda c: c.part)
def test_part_is_flashed_in_every_bank_and_protected_and_released(open_session: Open,
                                                                  chip: Chip) -> None:
    session = open_session(chip.part)
    assert session.identify().dev_id == chip.dev_id
    data = os.urandom(2048)
    starts = [chip.flash.base, chip.flash.blocks[-1].address]
    if chip.flash.bank2_base is not None:
        starts.append(chip.flash.bank2_base)
    for start in starts:
        size = min(len(data), chip.flash.end - start)
        session.erase(chip.flash.blocks_covering(start, size))
        session.write(start, data[:size])
        assert session.read(start, size) == data[:size]
    session.write_option_bytes(OptionBytesChange(rdp_level=1))
    assert session.read_option_bytes().rdp_level == 1
    if chip.controller == "h5":
        return  # reopening needs debug authentication: see test_h5_cannot_be_reopened
    session.write_option_bytes(OptionBytesChange(rdp_level=0))
    assert session.read_option_bytes().rdp_level == 0
    assert session.read(chip.flash.base, 16) == bytes([chip.flash.erased]) * 16


def test_h5_cannot_be_reopened_without_debug_authentication(open_session: Open) -> None:
    from runner.errors import Refused

    session = open_session("stm32h503rb")
    session.write_option_bytes(OptionBytesChange(rdp_level=1))
    with pytest.raises(Refused, match="debug authentication"):
        session.write_option_bytes(OptionBytesChange(rdp_level=0))


@pytest.mark.parametrize("chip", representatives(), ids=lambda c: c.part)
def test_a_write_starting_inside_a_memory_window_programs_every_byte(open_session: Open,
                                                                    chip: Chip) -> None:
    session = open_session(chip.part)
    # One flash word past the start: not aligned to the probe's MEM-AP window.
    start = chip.flash.base + max(chip.flash.write_unit, 4) * 4
    data = os.urandom(6144)
    session.erase(chip.flash.blocks_covering(start, len(data)))
    session.write(start, data)
    assert session.read(start, len(data)) == data
