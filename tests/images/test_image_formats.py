"""The same program, built by real tools into every format, loads into the same map."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runner.images import detect_format
from runner.memmap import MemoryMap
from tests.images.helpers import DATA, FLASH, load

TOOLS = ("arm-none-eabi-as", "arm-none-eabi-ld", "arm-none-eabi-objcopy")
SPARSE_FORMATS = ("elf", "hex", "srec", "dfu")


def _maps(folder: Path, layout: str) -> dict[str, MemoryMap]:
    maps = {ext: load(folder / f"{layout}.{ext}").memory for ext in SPARSE_FORMATS}
    maps["bin"] = load(folder / f"{layout}.bin", address=FLASH).memory
    return maps


def test_flat_program_loads_identically_from_every_format() -> None:
    maps = _maps(DATA, "flat")
    assert len({m.sha256() for m in maps.values()}) == 1


def test_sparse_program_keeps_its_gap_in_every_format_but_raw_binary() -> None:
    maps = _maps(DATA, "sparse")
    sparse = {ext: maps[ext] for ext in SPARSE_FORMATS}
    assert len({m.sha256() for m in sparse.values()}) == 1
    reference = sparse["elf"]
    assert reference.ranges == ((FLASH, FLASH + 68), (FLASH + 0x800, FLASH + 0x808))
    raw = maps["bin"]
    # objcopy -O binary --gap-fill 0xff fills the gap with the erased value.
    assert raw.bytes_at(FLASH, 0x808) == reference.bytes_at(FLASH, 0x808)


@pytest.mark.skipif(any(shutil.which(tool) is None for tool in TOOLS),
                    reason="binutils-arm-none-eabi is not installed (.ci/run installs it)")
def test_freshly_built_images_load_identically(tmp_path: Path) -> None:
    subprocess.run(["sh", str(DATA / "build.sh"), str(tmp_path)], check=True,
                   capture_output=True)
    flat = _maps(tmp_path, "flat")
    sparse = _maps(tmp_path, "sparse")
    assert len({m.sha256() for m in flat.values()}) == 1
    assert len({sparse[ext].sha256() for ext in SPARSE_FORMATS}) == 1
    # and the checked-in files are what the recipe makes
    assert flat["elf"] == _maps(DATA, "flat")["elf"]
    assert sparse["elf"] == _maps(DATA, "sparse")["elf"]


def test_elf_places_initialised_data_at_its_load_address_not_in_ram() -> None:
    memory = load(DATA / "flat.elf").memory
    assert memory.start == FLASH and memory.end < 0x08010000
    # .data (run from 0x20000000) is stored right after .text: 0xCAFEF00D, then 1..7.
    assert memory.bytes_at(FLASH + 0x40, 4) == bytes.fromhex("0DF0FECA")


def test_elf_bss_and_unloaded_sections_contribute_nothing() -> None:
    memory = load(DATA / "flat.elf").memory
    assert memory.size == 76   # .isr_vector + .text + .data initialisers; no .bss, no attributes


@pytest.mark.parametrize(("name", "expected"), [
    ("flat.elf", "elf"), ("flat.hex", "ihex"), ("flat.srec", "srec"), ("flat.dfu", "dfu"),
    ("flat.bin", "bin"),
])
def test_format_is_detected_from_content(name: str, expected: str) -> None:
    assert detect_format((DATA / name).read_bytes()) == expected


def test_format_override_beats_detection(tmp_path: Path) -> None:
    image = load(DATA / "flat.hex", format="bin", address=FLASH)
    assert image.format == "bin"
    assert image.memory.segments[0].data == (DATA / "flat.hex").read_bytes()


def test_address_moves_a_hex_image_as_a_whole() -> None:
    image = load(DATA / "sparse.hex", address=0x08010000)
    assert image.memory.ranges == ((0x08010000, 0x08010000 + 68),
                                   (0x08010800, 0x08010808))


def test_loaded_image_records_format_and_file_digest() -> None:
    import hashlib
    image = load(DATA / "flat.srec")
    assert image.format == "srec"
    assert image.sha256 == hashlib.sha256((DATA / "flat.srec").read_bytes()).hexdigest()
