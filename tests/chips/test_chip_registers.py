"""Identification registers agree with the per-core and per-family tables.

DBGMCU_IDCODE by core (ST-Link reference §8.2), flash-size word (§8.4) and UID base
(§8.5) by family, with the sub-family exceptions those tables list.
"""

from __future__ import annotations

import pytest

from transports.chips import Chip, ChipDatabase

IDCODE_BY_CORE = {
    "cortex-m0": 0x40015800,
    "cortex-m0+": 0x40015800,
    "cortex-m3": 0xE0042000,
    "cortex-m4": 0xE0042000,
    "cortex-m7": 0xE0042000,  # F7; H7 moved it, see below
    "cortex-m33": 0xE0044000,
}
H7_IDCODE = 0x5C001000  # every H7 (H74x/H75x, H72x/H73x, H7A/B)

# family → (flash-size word, UID base); None where the table leaves a gap.
BY_FAMILY: dict[str, tuple[int, int | None]] = {
    "f0": (0x1FFFF7CC, 0x1FFFF7AC),
    "f3": (0x1FFFF7CC, 0x1FFFF7AC),
    "f1": (0x1FFFF7E0, 0x1FFFF7E8),
    "f2": (0x1FFF7A22, 0x1FFF7A10),
    "f4": (0x1FFF7A22, 0x1FFF7A10),
    "l0": (0x1FF8007C, 0x1FF80050),
    "l4": (0x1FFF75E0, 0x1FFF7590),
    "g0": (0x1FFF75E0, 0x1FFF7590),
    "g4": (0x1FFF75E0, 0x1FFF7590),
    "wb": (0x1FFF75E0, 0x1FFF7590),
    "wl": (0x1FFF75E0, 0x1FFF7590),
    "c0": (0x1FFF75A0, None),
    "l5": (0x0BFA05E0, 0x0BFA0590),
    "u5": (0x0BFA07A0, 0x0BFA0700),
    "h5": (0x08FFF80C, None),
}
# Lines whose family row does not apply (sub-family rows of the same tables).
BY_DEV_ID: dict[int, tuple[int, int | None]] = {
    0x452: (0x1FF07A22, 0x1FF07A10),  # F72x/F73x
    0x449: (0x1FF0F442, 0x1FF0F420),  # F74x/F75x
    0x451: (0x1FF0F442, 0x1FF0F420),  # F76x/F77x
    0x416: (0x1FF8004C, 0x1FF80050),  # L1 category 1
    0x429: (0x1FF8004C, 0x1FF80050),  # L1 category 2
    0x427: (0x1FF800CC, 0x1FF800D0),  # L1 category 3
    0x436: (0x1FF800CC, 0x1FF800D0),  # L1 category 4
    0x437: (0x1FF800CC, 0x1FF800D0),  # L1 category 5/6
    0x450: (0x1FF1E880, 0x1FF1E800),  # H74x/H75x
    0x483: (0x1FF1E880, 0x1FF1E800),  # H72x/H73x
    0x480: (0x08FFF80C, None),        # H7A/B: UID is a gap in the table
}
UID_GAP_OFFSETS_L0_L1 = (0, 4, 0x14)


@pytest.fixture(scope="module")
def line_chips(chips: ChipDatabase) -> list[Chip]:
    """One chip per line (per DEV_ID)."""
    return [chips.by_dev_id(dev_id)[0] for dev_id in sorted(chips.dev_ids)]


def test_idcode_address_follows_the_core(line_chips: list[Chip]) -> None:
    for chip in line_chips:
        expected = H7_IDCODE if chip.family == "h7" else IDCODE_BY_CORE[chip.core]
        assert chip.idcode_address == expected, chip.line


def test_flash_size_and_uid_follow_the_family(line_chips: list[Chip]) -> None:
    for chip in line_chips:
        flash_size, uid = BY_DEV_ID.get(chip.dev_id) or BY_FAMILY[chip.family]
        assert chip.flash_size_address == flash_size, chip.line
        if uid is not None:
            assert chip.uid_address == uid, chip.line


def test_uid_gaps_are_documented_in_notes(line_chips: list[Chip]) -> None:
    for chip in line_chips:
        _, uid = BY_DEV_ID.get(chip.dev_id) or BY_FAMILY[chip.family]
        if uid is None:
            assert "UID" in chip.notes, chip.line


def test_every_family_is_in_the_table(line_chips: list[Chip]) -> None:
    known = set(BY_FAMILY) | {"h7", "f7", "l1"}
    assert {chip.family for chip in line_chips} <= known


@pytest.mark.parametrize("family", ["l0", "l1"])
def test_l0_l1_uid_third_word_is_at_0x14(chips: ChipDatabase, family: str) -> None:
    assert {chip.uid_offsets for chip in chips if chip.family == family} == {
        UID_GAP_OFFSETS_L0_L1}


def test_other_families_uid_words_are_contiguous(chips: ChipDatabase) -> None:
    assert {chip.uid_offsets for chip in chips
            if chip.family not in ("l0", "l1")} == {(0, 4, 8)}


@pytest.mark.parametrize(("family", "base"), [
    ("f0", 0x40022000), ("f1", 0x40022000), ("f3", 0x40022000), ("f2", 0x40023C00),
    ("f4", 0x40023C00), ("f7", 0x40023C00), ("l0", 0x40022000), ("l1", 0x40023C00),
    ("l4", 0x40022000), ("g0", 0x40022000), ("g4", 0x40022000), ("c0", 0x40022000),
    ("wb", 0x58004000), ("wl", 0x58004000), ("h7", 0x52002000), ("l5", 0x40022000),
    ("u5", 0x40022000), ("h5", 0x40022000)])
def test_flash_controller_base_per_family(chips: ChipDatabase, family: str, base: int) -> None:
    assert {chip.flash_controller_address for chip in chips if chip.family == family} == {base}
