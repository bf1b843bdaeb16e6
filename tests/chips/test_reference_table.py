"""The database agrees with the bootloader PID table of the protocol reference.

The reference (§5.2 of protocols-bootloaders.md, the AN2606 "device-dependent
parameters" table) is parsed when it is present; each PID's flash range, free RAM,
system memory, page sizes, pages per sector and flags are compared with the database,
so neither can drift from the other silently. Deliberate departures are listed below
with their reason, and must stay departures.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from transports.chips import BootloaderInfo, Chip, ChipDatabase

REFERENCE = Path("/work/shared/reference/protocols-bootloaders.md")

# PIDs of the table that the database leaves out, and why.
EXCLUDED = {
    0x641: "stm32flash's 'Medium_Density PL' names no ST part number or datasheet",
    0x9A8: "STM32W108 (EM357-derived, discontinued): no DBGMCU, flash-size or UID registers "
           "in our references and a flash controller of its own",
    0x9B0: "STM32W108 256 KiB: as 0x9A8",
}
# (PID, field) → why the database differs from the table on purpose.
DEVIATIONS = {
    (0x470, "flash"): "L4R/L4S have 2 MiB (RM0432); the table stops at 1 MiB",
    (0x470, "pages"): "dual-bank L4R/L4S pages are 4 KiB; the table says 2 KiB",
    (0x480, "flash"): "H7A3/B3 have 2 MiB in two banks; the table lists bank 1 only",
    (0x419, "pages"): "the table's page list is the 1 MiB DB1M layout; the database models "
                      "the 2 MiB part (two banks of 4x16, 1x64, 7x128 KiB)",
    (0x434, "pages"): "as 0x419",
}
# PIDs of the supplementary table ("additional PIDs known from AN2606") left out.
SUPPLEMENT_EXCLUDED = {
    0x492: "STM32WBA5x: flash geometry and identification registers not in our references",
}
FLAGS = {"F_NO_ME": "no-mass-erase", "F_OBLL": "obl-launch", "F_PEMPTY": "pempty"}


@dataclass(frozen=True, slots=True, kw_only=True)
class TableRow:
    pid: int
    name: str
    free_ram: tuple[int, int]
    flash: tuple[int, int]
    pages: tuple[int, ...]
    pps: int
    system_memory: tuple[int, int]
    flags: frozenset[str]
    bl_ids: tuple[int, ...] = ()
    bl_id_address: int | None = None

    def page_size(self, index: int) -> int:
        """Size of erase unit ``index``: the last listed size repeats."""
        return self.pages[min(index, len(self.pages) - 1)]


def _range(cell: str) -> tuple[int, int]:
    start, end = cell.split("-")
    return int(start, 16), int(end, 16)


def _size(token: str) -> int:
    token = token.strip()
    return int(token[:-1]) * 1024 if token.endswith("K") else int(token)


def _pages(cell: str) -> tuple[int, ...]:
    return tuple(_size(t) for t in cell.replace("(last repeats)", "").split("/"))


def parse_table(text: str) -> dict[int, TableRow]:
    """The rows of §5.2 (up to the first blank line after the table header)."""
    section = text.split("### 5.2 Table", 1)[1].split("\n\n", 2)[1]
    rows: dict[int, TableRow] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not re.fullmatch(r"0x[0-9A-Fa-f]{3}", cells[0]):
            continue
        rows[int(cells[0], 16)] = TableRow(
            pid=int(cells[0], 16), name=cells[1], free_ram=_range(cells[2]),
            flash=_range(cells[3]), pages=_pages(cells[4]), pps=int(cells[5]),
            system_memory=_range(cells[7]),
            flags=frozenset(FLAGS[f] for f in cells[8].split(", ") if f in FLAGS),
            bl_ids=_hex_list(cells[9]), bl_id_address=_hex_or_none(cells[10]))
    return rows


def _hex_list(cell: str) -> tuple[int, ...]:
    return () if cell == "-" else tuple(int(item, 16) for item in cell.split(", "))


def _hex_or_none(cell: str) -> int | None:
    return None if cell == "-" else int(cell, 16)


def parse_supplement(text: str) -> dict[int, tuple[tuple[int, int], int, int | None]]:
    """The supplementary rows: PID → (system memory, BL ID, BL ID address)."""
    section = text.split("Additional PIDs known from AN2606", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if re.fullmatch(r"0x[0-9A-Fa-f]{3}", cells[0]):
            rows[int(cells[0], 16)] = (_range(cells[3]), int(cells[4], 16),
                                       _hex_or_none(cells[5]))
    return rows


@pytest.fixture(scope="module")
def table() -> dict[int, TableRow]:
    if not REFERENCE.is_file():
        pytest.skip(f"protocol reference not present at {REFERENCE}")
    return parse_table(REFERENCE.read_text("utf-8"))


def _largest(chips: ChipDatabase, pid: int) -> Chip:
    return max(chips.by_dev_id(pid), key=lambda chip: chip.flash.size)


def _differs(row: TableRow, chip: Chip, field: str) -> bool:
    if field == "flash":
        return (chip.flash.base, chip.flash.end) != row.flash
    blocks = chip.flash.blocks
    return any(block.size != row.page_size(block.index) for block in blocks)


def test_table_parses_the_whole_table(table: dict[int, TableRow]) -> None:
    assert len(table) == 66
    assert table[0x410].pages == (1024,)
    assert table[0x413].pages == (16384, 16384, 16384, 16384, 65536, 131072)


def test_every_table_pid_is_in_the_database_or_excluded(table: dict[int, TableRow],
                                                        chips: ChipDatabase) -> None:
    missing = {pid for pid in table if not chips.by_dev_id(pid)}
    assert missing == set(EXCLUDED)


@pytest.mark.parametrize("field", ["flash", "pages"])
def test_geometry_matches_the_table(table: dict[int, TableRow], chips: ChipDatabase,
                                    field: str) -> None:
    drifted = [f"0x{pid:03X} {row.name}" for pid, row in sorted(table.items())
               if pid not in EXCLUDED and (pid, field) not in DEVIATIONS
               and _differs(row, _largest(chips, pid), field)]
    assert drifted == []


def test_deviations_still_deviate(table: dict[int, TableRow], chips: ChipDatabase) -> None:
    for (pid, field), reason in DEVIATIONS.items():
        assert _differs(table[pid], _largest(chips, pid), field), reason


def _bootloader_drift(table: dict[int, TableRow], chips: ChipDatabase,
                      ours: Callable[[BootloaderInfo], object],
                      theirs: Callable[[TableRow], object]) -> list[str]:
    """PIDs whose bootloader facts (as ``ours``/``theirs`` pick them) differ from the table."""
    return [f"0x{pid:03X} {row.name}" for pid, row in sorted(table.items())
            if pid not in EXCLUDED and ours(_largest(chips, pid).bootloader) != theirs(row)]


def test_bootloader_ram_and_system_memory_match(table: dict[int, TableRow],
                                                chips: ChipDatabase) -> None:
    assert _bootloader_drift(table, chips, lambda b: (b.ram, b.system_memory),
                             lambda r: (r.free_ram, r.system_memory)) == []


def test_bootloader_ids_and_their_address_match(table: dict[int, TableRow],
                                                chips: ChipDatabase) -> None:
    assert _bootloader_drift(table, chips, lambda b: (b.bl_id, b.bl_id_address),
                             lambda r: (r.bl_ids, r.bl_id_address)) == []


def test_pages_per_sector_and_flags_match(table: dict[int, TableRow],
                                          chips: ChipDatabase) -> None:
    assert _bootloader_drift(table, chips, lambda b: (b.pages_per_sector, b.flags),
                             lambda r: (r.pps, r.flags)) == []


def test_parser_reads_sector_lists_flags_and_ranges() -> None:
    text = ("### 5.2 Table\n\n"
            "| PID | Name | Free RAM | Flash | Page size | PPS | Option bytes | System memory "
            "| Flags | BL ID | BL ID addr |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
            "| 0x417 | L05 | 0x20001000-0x20002000 | 0x08000000-0x08010000 | 128 | 32 "
            "| - | 0x1FF00000-0x1FF01000 | F_NO_ME | 0xC0 | - |\n"
            "| 0x411 | F2 | 0x20002000-0x20020000 | 0x08000000-0x08100000 "
            "| 16K/64K/128K (last repeats) | 1 | - | 0x1FFF0000-0x1FFF7800 | - | - | - |\n"
            "\nAfter the table.\n| 0x999 | not a row |\n")
    rows = parse_table(text)
    assert sorted(rows) == [0x411, 0x417]
    assert rows[0x417].flags == {"no-mass-erase"} and rows[0x417].pages == (128,)
    assert [rows[0x411].page_size(i) for i in (0, 1, 2, 9)] == [16384, 65536, 131072, 131072]
    assert rows[0x411].free_ram == (0x20002000, 0x20020000)


def test_supplementary_pids_match_system_memory_and_ids(chips: ChipDatabase) -> None:
    if not REFERENCE.is_file():
        pytest.skip(f"protocol reference not present at {REFERENCE}")
    supplement = parse_supplement(REFERENCE.read_text("utf-8"))
    assert {pid for pid in supplement if not chips.by_dev_id(pid)} == set(SUPPLEMENT_EXCLUDED)
    for pid, (system_memory, bl_id, bl_id_address) in supplement.items():
        if pid in SUPPLEMENT_EXCLUDED:
            continue
        boot = _largest(chips, pid).bootloader
        assert (boot.system_memory, boot.bl_id, boot.bl_id_address) == (
            system_memory, (bl_id,), bl_id_address), f"0x{pid:03X}"
