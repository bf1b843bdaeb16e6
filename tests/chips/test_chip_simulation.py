"""Every line's data is usable by the simulated chip: identity words and erased flash."""

from __future__ import annotations

import pytest

from transports.chips import Chip, ChipDatabase
from transports.sim.chip import SimChip


@pytest.fixture(scope="module")
def largest_parts(chips: ChipDatabase) -> list[Chip]:
    return [max(chips.by_dev_id(dev_id), key=lambda chip: chip.flash.size)
            for dev_id in sorted(chips.dev_ids)]


def test_uid_words_and_flash_size_word_do_not_overlap(largest_parts: list[Chip]) -> None:
    for chip in largest_parts:
        uid_bytes = {chip.uid_address + offset + i for offset in chip.uid_offsets
                     for i in range(4)}
        size_bytes = {chip.flash_size_address, chip.flash_size_address + 1}
        assert not uid_bytes & size_bytes, chip.line


def test_simulated_chip_reports_its_flash_size_and_uid(largest_parts: list[Chip]) -> None:
    for chip in largest_parts:
        sim = SimChip(chip)
        size = sim.read_memory(chip.flash_size_address, 2)
        assert int.from_bytes(size, "little") == chip.flash_kib, chip.line
        words = b"".join(sim.read_memory(chip.uid_address + offset, 4)
                         for offset in chip.uid_offsets)
        assert words == sim.uid, chip.line


def test_simulated_flash_starts_erased_in_every_unit(largest_parts: list[Chip]) -> None:
    for chip in largest_parts:
        sim = SimChip(chip)
        for block in (chip.flash.blocks[0], chip.flash.blocks[-1]):
            assert sim.read_flash(block.address, 4) == bytes([chip.flash.erased]) * 4
