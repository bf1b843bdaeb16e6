"""ROM bootloader facts come from the chip data, read through one function."""

from __future__ import annotations

from typing import Any

import pytest

from runner.errors import PlanError
from transports.chips import ChipDatabase, chip_database, rom_bootloader


def test_family_versions_come_from_the_data() -> None:
    chips = chip_database()
    f103, f411, g071, h743 = (chips.part(p) for p in
                              ("stm32f103c8", "stm32f411re", "stm32g071rb", "stm32h743zi"))
    assert rom_bootloader(f103, "usart").version == 0x22
    assert not rom_bootloader(f103, "usart").extended_erase
    assert rom_bootloader(f411, "usart").version == 0x31
    assert rom_bootloader(g071, "i2c").checksum
    assert rom_bootloader(h743, "usart").checksum
    assert not rom_bootloader(f411, "usart").checksum
    assert rom_bootloader(f411, "can").speed


def test_a_line_version_overrides_the_family(documents: dict[str, dict[str, Any]]) -> None:
    line = documents["stm32f4.yaml"]["lines"][0]
    line["bootloader"]["usart-version"] = 0x30
    chips = ChipDatabase.from_documents(documents)
    part = next(iter(line["parts"]))
    assert rom_bootloader(chips.part(part), "usart").version == 0x30
    assert rom_bootloader(chips.part(part), "i2c").version == 0x11


def test_a_family_without_rom_facts_is_refused(documents: dict[str, dict[str, Any]]) -> None:
    del documents["stm32g0.yaml"]["rom"]
    with pytest.raises(PlanError, match="stm32g0.yaml.*rom"):
        ChipDatabase.from_documents(documents)


def test_an_unknown_interface_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="spi"):
        rom_bootloader(chip_database().part("stm32f411re"), "spi")
