"""Every chip line whose ROM offers DFU: identify, erase, write and read back."""

from __future__ import annotations

import pytest

from tests.dfu.conftest import OpenLink, make_world
from transports.chips import Chip, chip_database


def _one_part_per_dfu_line() -> list[Chip]:
    lines: dict[str, Chip] = {}
    for chip in chip_database():
        if "dfu" in chip.bootloader.interfaces:
            lines.setdefault(chip.line, chip)
    return list(lines.values())


@pytest.mark.parametrize("chip", _one_part_per_dfu_line(), ids=lambda chip: chip.part)
def test_rom_dfu_session_on_every_line(chip: Chip, open_link: OpenLink) -> None:
    block = chip.flash.blocks[1]
    data = bytes((i * 13 + 1) & 0xFF for i in range(512))
    with make_world() as world:
        link = open_link(world, chip)
        identity = link.identify()
        sim = world.chips["board"]
        assert identity.uid == sim.uid_hex
        assert identity.flash_size == chip.flash.size
        link.erase([block])
        link.write(block.address, data)
        assert link.read(block.address, len(data)) == data
        assert link.read_option_bytes().raw == sim.option_bytes
