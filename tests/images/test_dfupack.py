"""`dfu-pack`: any supported images merged into one DfuSe file."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.dfufile import read_dfu
from runner.dfupack import pack_dfu, parse_image_argument
from runner.errors import ImageError
from tests.images.helpers import DATA, FLASH, load


def test_pack_of_a_binary_equals_the_checked_in_dfu(tmp_path: Path) -> None:
    out = tmp_path / "out.dfu"
    pack_dfu(out, [f"{DATA / 'flat.bin'}@0x08000000"], vendor=0x0483, product=0xDF11,
             device=0x2200)
    assert out.read_bytes() == (DATA / "flat.dfu").read_bytes()


def test_pack_merges_images_of_several_formats(tmp_path: Path) -> None:
    out = tmp_path / "out.dfu"
    result = pack_dfu(out, [str(DATA / "sparse.elf"), f"{DATA / 'flat.bin'}@0x08010000"])
    assert result.elements == 3
    memory = read_dfu(out.read_bytes(), str(out)).memory()
    assert memory.ranges == ((FLASH, FLASH + 68), (FLASH + 0x800, FLASH + 0x808),
                             (0x08010000, 0x08010000 + 76))
    assert load(out).memory == memory


def test_pack_refuses_overlapping_images(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="images flat and sparse both write 0x08000000"):
        pack_dfu(tmp_path / "out.dfu", [str(DATA / "flat.hex"), str(DATA / "sparse.hex")])
    assert not (tmp_path / "out.dfu").exists()


def test_image_argument_takes_an_optional_address() -> None:
    assert parse_image_argument("a/app.bin@0x08004000").address == 0x08004000
    assert parse_image_argument("a/app.hex").address is None
    with pytest.raises(ImageError, match="is not an address"):
        parse_image_argument("app.bin@here")
