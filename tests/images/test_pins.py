"""`flashrunner pin` rewrites only the pin values, where each image is defined."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from runner.errors import ImageError
from runner.pins import check_pin, update_pins
from tests.images.helpers import DATA

OLD = "0" * 64


def _digest(name: str) -> str:
    return hashlib.sha256((DATA / name).read_bytes()).hexdigest()


@pytest.fixture
def station(tmp_path: Path) -> Path:
    for name in ("flat.hex", "flat.elf", "flat.bin", "flat.srec"):
        shutil.copy(DATA / name, tmp_path / name)
    (tmp_path / "parts").mkdir()
    shutil.copy(DATA / "flat.bin", tmp_path / "parts" / "cal.bin")
    return tmp_path


MANIFEST = f"""\
manifest: 1
name: widget   # product
include: [parts/extra.yaml]
images:
  # the bootloader, pinned at release
  boot: {{file: flat.elf, sha256: "{OLD}"}}   # keep this comment
  app: {{ file: flat.hex }}
  data:
    file: flat.srec   # S-records
    address: 0x08010000
  raw:
    file: flat.bin
    sha256: '{OLD}'
    format: bin
devices: {{}}
"""

EXTRA = """\
# station parts
images:
  cal:
    file: cal.bin
    address: 0x0800FC00

recipes: {}
"""


def _write(station: Path) -> Path:
    (station / "m.yaml").write_text(MANIFEST)
    (station / "parts" / "extra.yaml").write_text(EXTRA)
    return station / "m.yaml"


def test_pins_are_replaced_and_inserted_keeping_everything_else(station: Path) -> None:
    manifest = _write(station)
    update_pins(manifest)
    elf, hex_ = _digest("flat.elf"), _digest("flat.hex")
    expected = (MANIFEST
                .replace(f'flat.elf, sha256: "{OLD}"', f'flat.elf, sha256: "{elf}"')
                .replace("{ file: flat.hex }", f'{{ file: flat.hex, sha256: "{hex_}" }}')
                .replace("    address: 0x08010000\n",
                         f'    address: 0x08010000\n    sha256: "{_digest("flat.srec")}"\n')
                .replace(f"'{OLD}'", f"'{_digest('flat.bin')}'"))
    assert manifest.read_text() == expected


def test_images_of_included_files_are_pinned_in_those_files(station: Path) -> None:
    manifest = _write(station)
    changes = update_pins(manifest)
    extra = station / "parts" / "extra.yaml"
    assert extra.read_text() == EXTRA.replace(
        "    address: 0x0800FC00\n",
        f'    address: 0x0800FC00\n    sha256: "{_digest("flat.bin")}"\n')
    assert [(c.file.name, c.image) for c in changes] == [
        ("m.yaml", "boot"), ("m.yaml", "app"), ("m.yaml", "data"), ("m.yaml", "raw"),
        ("extra.yaml", "cal")]


def test_changes_say_old_and_new_values_and_the_line(station: Path) -> None:
    changes = {c.image: c for c in update_pins(_write(station))}
    assert changes["boot"].old == OLD and changes["boot"].new == _digest("flat.elf")
    assert changes["boot"].line == 6
    assert changes["app"].old is None


def test_second_run_changes_nothing(station: Path) -> None:
    manifest = _write(station)
    update_pins(manifest)
    before = manifest.read_bytes()
    assert update_pins(manifest) == []
    assert manifest.read_bytes() == before


def test_result_is_still_the_same_yaml_with_new_pins(station: Path) -> None:
    manifest = _write(station)
    update_pins(manifest)
    document = yaml.safe_load(manifest.read_text())
    assert document["images"]["data"] == {"file": "flat.srec", "address": 0x08010000,
                                          "sha256": _digest("flat.srec")}


def test_dry_run_writes_nothing(station: Path) -> None:
    manifest = _write(station)
    assert len(update_pins(manifest, dry_run=True)) == 5
    assert manifest.read_text() == MANIFEST


def test_missing_image_changes_no_file(station: Path) -> None:
    manifest = _write(station)
    (station / "parts" / "cal.bin").unlink()
    with pytest.raises(ImageError, match="image cal: cannot read .*no pin was changed"):
        update_pins(manifest)
    assert manifest.read_text() == MANIFEST


def test_check_pin_returns_the_digest_or_names_both(station: Path) -> None:
    path = station / "flat.hex"
    assert check_pin(path, _digest("flat.hex").upper()) == _digest("flat.hex")
    with pytest.raises(ImageError, match=f"has sha256 {_digest('flat.hex')}, but the manifest "
                                         f"pins {OLD}"):
        check_pin(path, OLD)


def test_windows_line_endings_are_kept(station: Path) -> None:
    manifest = station / "m.yaml"
    manifest.write_bytes(b"images:\r\n  app:\r\n    file: flat.hex\r\ndevices: {}\r\n")
    update_pins(manifest)
    assert manifest.read_bytes() == (b"images:\r\n  app:\r\n    file: flat.hex\r\n"
                                     b'    sha256: "' + _digest("flat.hex").encode()
                                     + b'"\r\ndevices: {}\r\n')
