"""The shipped chip database: it loads, it is complete, its geometry is coherent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from runner.errors import PlanError
from transports.chips import ChipDatabase, chip_database, family_file

KIB = 1024


def _line_flash_kib(line: Mapping[str, Any]) -> int:
    total: int = sum(region["count"] * region["size"] for region in line["flash"]["regions"])
    return total // KIB


def _line(documents: Mapping[str, Any], dev_id: int) -> Mapping[str, Any]:
    for document in documents.values():
        for line in document["lines"]:
            if line["dev_id"] == dev_id:
                found: Mapping[str, Any] = line
                return found
    raise AssertionError(f"no line 0x{dev_id:03X}")


def test_whole_database_loads_and_validates(documents: dict[str, Any]) -> None:
    database = ChipDatabase.from_documents(documents)
    assert len(database) == sum(len(line["parts"]) for doc in documents.values()
                                for line in doc["lines"])


def test_the_database_loaded_at_start_is_the_validated_one(documents: dict[str, Any]) -> None:
    # chip_database() trusts the shipped files' schema check, which is this test's.
    assert ChipDatabase.from_documents(documents).chips == chip_database().chips


def test_database_covers_at_least_sixty_dev_ids(chips: ChipDatabase) -> None:
    assert len(chips.dev_ids) >= 60


def test_each_dev_id_is_one_line(lines: list[tuple[str, Mapping[str, Any]]]) -> None:
    dev_ids = [line["dev_id"] for _, line in lines]
    assert len(dev_ids) == len(set(dev_ids))


def test_each_file_holds_one_family(documents: dict[str, Any]) -> None:
    for name, document in documents.items():
        assert name == f"stm32{document['family']}.yaml"


def test_regions_add_up_to_the_largest_part(lines: list[tuple[str, Mapping[str, Any]]]) -> None:
    for source, line in lines:
        largest = max(size["flash-kib"] for size in line["parts"].values())
        assert _line_flash_kib(line) == largest, (source, line["name"])


def test_every_part_fits_its_line(chips: ChipDatabase,
                                  lines: list[tuple[str, Mapping[str, Any]]]) -> None:
    for _, line in lines:
        for part, size in line["parts"].items():
            chip = chips.part(part)
            assert chip.flash.size == size["flash-kib"] * KIB
            assert chip.flash.size <= _line_flash_kib(line) * KIB
            assert chip.ram[1] <= line["ram"][1], part


def test_every_line_has_at_least_two_parts(lines: list[tuple[str, Mapping[str, Any]]]) -> None:
    assert [line["name"] for _, line in lines if len(line["parts"]) < 2] == []


def test_f40x_sector_map(chips: ChipDatabase) -> None:
    sizes = [block.size // KIB for block in chips.part("stm32f407vg").flash.blocks]
    assert sizes == [16] * 4 + [64] + [128] * 7


def test_f42x_two_mib_is_two_banks_of_the_f40x_map(chips: ChipDatabase) -> None:
    flash = chips.part("stm32f429zi").flash
    assert (flash.banks, flash.bank2_base) == (2, 0x08100000)
    bank1 = [b.size // KIB for b in flash.blocks if b.bank == 1]
    bank2 = [b.size // KIB for b in flash.blocks if b.bank == 2]
    assert bank1 == bank2 == [16] * 4 + [64] + [128] * 7
    first_of_bank2 = flash.block_at(0x08100000)
    assert (first_of_bank2.index, first_of_bank2.index_in_bank) == (12, 0)


def test_f42x_one_mib_part_is_single_bank(chips: ChipDatabase) -> None:
    flash = chips.part("stm32f429zg").flash
    assert (flash.banks, flash.bank2_base, len(flash.blocks)) == (1, None, 12)


def test_smaller_dual_bank_part_splits_at_half(chips: ChipDatabase) -> None:
    flash = chips.part("stm32l476re").flash
    assert flash.bank2_base == 0x08040000
    assert flash.block_at(0x08040000).index_in_bank == 0


def test_f1_xl_bank2_stays_at_512_kib_on_768_kib_parts(chips: ChipDatabase) -> None:
    flash = chips.part("stm32f103vf").flash
    assert flash.bank2_base == 0x08080000
    assert sum(b.size for b in flash.blocks if b.bank == 2) == 256 * KIB


def test_l0_category5_bank2_at_half_of_each_part(chips: ChipDatabase) -> None:
    assert chips.part("stm32l073rz").flash.bank2_base == 0x08018000
    assert chips.part("stm32l071kb").flash.bank2_base == 0x08010000


def test_by_dev_id_finds_every_part_of_a_line(chips: ChipDatabase) -> None:
    assert {chip.part for chip in chips.by_dev_id(0x410)} == {
        "stm32f103c8", "stm32f103cb", "stm32f103rb"}


def test_by_dev_id_of_unknown_pid_is_empty(chips: ChipDatabase) -> None:
    assert chips.by_dev_id(0xFFF) == ()


def test_existing_parts_are_kept(chips: ChipDatabase) -> None:
    for part in ("stm32f103c8", "stm32f103cb", "stm32f103rb", "stm32f411ce", "stm32f411re",
                 "stm32f411cc", "stm32g071rb", "stm32g071kb", "stm32g070rb", "stm32l476rg",
                 "stm32l476vg", "stm32l476re", "stm32h743zi", "stm32h743vi"):
        assert part in chips


@pytest.mark.parametrize("family", ["l0", "l1"])
def test_l0_and_l1_flash_erases_to_zero(chips: ChipDatabase, family: str) -> None:
    members = [chip for chip in chips if chip.family == family]
    assert members and {chip.flash.erased for chip in members} == {0}


def test_other_families_erase_to_ff(chips: ChipDatabase) -> None:
    assert {chip.flash.erased for chip in chips if chip.family not in ("l0", "l1")} == {0xFF}


def test_f1_has_no_rdp_level_2(chips: ChipDatabase) -> None:
    for chip in (c for c in chips if c.family == "f1"):
        ob = chip.option_bytes
        assert not ob.has_level2
        assert (ob.rdp_level(0xA5), ob.rdp_level(0xCC)) == (0, 1)


def test_f4_rdp_levels(chips: ChipDatabase) -> None:
    ob = chips.part("stm32f407vg").option_bytes
    assert [ob.rdp_level(b) for b in (0xAA, 0x00, 0xCC)] == [0, 1, 2]


@pytest.mark.parametrize(("family", "offset"), [
    ("f0", 0), ("f1", 0), ("f3", 0), ("l0", 0), ("l1", 0), ("l4", 0), ("g0", 0), ("g4", 0),
    ("wb", 0), ("wl", 0), ("c0", 0), ("l5", 0), ("u5", 0),
    ("f2", 1), ("f4", 1), ("f7", 1), ("h7", 1), ("h5", 1)])
def test_rdp_byte_offset_per_family(chips: ChipDatabase, family: str, offset: int) -> None:
    assert {chip.option_bytes.rdp_offset for chip in chips if chip.family == family} == {offset}


def test_f4_rdp_level_is_decoded_from_byte_1_of_the_option_word(chips: ChipDatabase) -> None:
    ob = chips.part("stm32f411re").option_bytes
    assert ob.level_of(b"\xaa\xcc" + b"\xff" * 14) == 2
    assert ob.level_of(b"\xcc\xaa" + b"\xff" * 14) == 0


def test_rdp_offset_outside_the_option_area_is_refused(documents: dict[str, Any]) -> None:
    _line(documents, 0x450)["option-bytes"]["rdp-offset"] = 4
    with pytest.raises(PlanError, match="rdp-offset 4 is outside"):
        ChipDatabase.from_documents(documents)


@pytest.mark.parametrize(("family", "unit"), [
    ("f0", 2), ("f1", 2), ("f3", 2), ("f2", 4), ("f4", 4), ("f7", 4), ("l0", 4), ("l1", 4),
    ("l4", 8), ("g0", 8), ("g4", 8), ("wb", 8), ("wl", 8), ("c0", 8), ("l5", 8), ("u5", 16),
    ("h5", 16)])
def test_write_unit_per_family(chips: ChipDatabase, family: str, unit: int) -> None:
    assert {chip.flash.write_unit for chip in chips if chip.family == family} == {unit}


def test_h7_write_units(chips: ChipDatabase) -> None:
    assert chips.part("stm32h743zi").flash.write_unit == 32
    assert chips.part("stm32h723zg").flash.write_unit == 32
    assert chips.part("stm32h7a3zi").flash.write_unit == 16


def test_no_mass_erase_flag_on_l0_and_l1(chips: ChipDatabase) -> None:
    for chip in chips:
        assert ("no-mass-erase" in chip.bootloader.flags) == (chip.family in ("l0", "l1"))


def test_duplicate_part_names_are_rejected(documents: dict[str, Any]) -> None:
    documents["stm32g0.yaml"]["lines"][0]["parts"]["stm32f103c8"] = {"flash-kib": 64}
    with pytest.raises(PlanError, match="stm32f103c8"):
        ChipDatabase.from_documents(documents)


def test_damaged_document_names_file_and_path(documents: dict[str, Any]) -> None:
    del _line(documents, 0x413)["registers"]["uid"]
    with pytest.raises(PlanError) as caught:
        ChipDatabase.from_documents(documents)
    assert "stm32f4.yaml" in caught.value.message
    assert "lines/0/registers" in caught.value.message
    assert "'uid' is a required property" in caught.value.message


def test_wrong_type_names_the_field(documents: dict[str, Any]) -> None:
    _line(documents, 0x460)["flash"]["write-unit"] = "eight"
    with pytest.raises(PlanError, match=r"stm32g0\.yaml: lines/\d+/flash/write-unit"):
        ChipDatabase.from_documents(documents)


def test_part_larger_than_its_line_names_file_and_part(documents: dict[str, Any]) -> None:
    _line(documents, 0x410)["parts"]["stm32f103cb"]["flash-kib"] = 256
    with pytest.raises(PlanError, match=r"stm32f1\.yaml: lines/\d+/parts/stm32f103cb"):
        ChipDatabase.from_documents(documents)


# Lines whose bootloader free-RAM range is not inside the line's RAM, and why.
FREE_RAM_OUTSIDE_LINE_RAM = {
    0x450: "H7: the bootloader works in DTCM, the line RAM is AXI SRAM",
    0x483: "H7: as 0x450",
    0x480: "H7: as 0x450",
    0x443: "AN2606 gives C011 the C031 range (12 KiB) although C011 has 6 KiB",
    0x494: "AN2606's WB1x range spans the SRAM2 window; the line RAM is SRAM1",
}


def test_bootloader_free_ram_lies_in_line_ram(chips: ChipDatabase) -> None:
    outside = set()
    for dev_id in chips.dev_ids:
        chip = chips.by_dev_id(dev_id)[0]
        free = chip.bootloader.ram
        line_ram = _line_ram(chip.line, chips)
        if free is not None and not (line_ram[0] <= free[0] <= free[1] <= line_ram[1]):
            outside.add(dev_id)
    assert outside == set(FREE_RAM_OUTSIDE_LINE_RAM)


def test_outside_free_ram_is_explained_in_notes(chips: ChipDatabase) -> None:
    for dev_id in FREE_RAM_OUTSIDE_LINE_RAM:
        notes = chips.by_dev_id(dev_id)[0].notes
        assert "RAM" in notes, hex(dev_id)


def _line_ram(line: str, chips: ChipDatabase) -> tuple[int, int]:
    members = [chip for chip in chips if chip.line == line]
    return min(c.ram[0] for c in members), max(c.ram[1] for c in members)


def test_bootloader_option_range_starts_at_the_option_bytes(chips: ChipDatabase) -> None:
    for chip in chips:
        if chip.bootloader.option_bytes is not None:
            start, end = chip.bootloader.option_bytes
            assert start <= chip.option_bytes.address < end, chip.line


def test_every_part_is_in_the_data_file_its_family_names(documents: dict[str, Any]) -> None:
    # chip_database() parses only the family file of the part asked for.
    for source, document in documents.items():
        for line in document["lines"]:
            for part in line["parts"]:
                assert family_file(part) == source, f"{part} is in {source}"


def test_asking_for_one_part_parses_only_its_family_file(
        documents: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import transports.chips as chips_module

    parsed: list[str] = []
    parse = chips_module._parse

    def noting(entry: Any) -> Any:
        parsed.append(entry.name)
        return parse(entry)

    monkeypatch.setattr(chips_module, "_parse", noting)
    fresh = chip_database.__wrapped__()
    full = ChipDatabase.from_documents(documents)
    assert fresh.part("STM32F103CB") == full.part("stm32f103cb")
    assert "stm32h743zi" in fresh and "stm32x999" not in fresh.chips
    assert parsed[:2] == ["stm32f1.yaml", "stm32h7.yaml"]
    assert fresh.by_dev_id(0x410) == full.by_dev_id(0x410)   # a DEV_ID lookup parses all
    assert sorted(parsed) == sorted(documents) and len(fresh) == len(full)
