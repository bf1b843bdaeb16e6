"""A write the link cannot make is refused at validation, before anything is erased."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.errors import ManifestError
from runner.manifest import load_manifest

TEXT = """\
manifest: 1
name: rules
simulate: true
images:
  app: {{file: app.bin, address: {address}}}
transports:
  link: {link}
recipes:
  std:
    - erase: {{}}
    - write: [app]
{unit}    - verify: {{}}
devices:
  dev: {{chip: {chip}, transport: link, recipe: std}}
"""

UART = "{kind: uart, port: /dev/ttyUSB0}"


def _write(tmp_path: Path, *, address: str, link: str = UART, unit: str = "",
           chip: str = "stm32f103c8") -> Path:
    (tmp_path / "app.bin").write_bytes(b"\x01" * 64)
    path = tmp_path / "m.yaml"
    path.write_text(TEXT.format(address=address, link=link, unit=unit, chip=chip))
    return path


CAN = "{kind: can, interface: virtual, channel: c0}"


@pytest.mark.parametrize(("link", "chip"), [(UART, "stm32f103c8"),
                                           ("{kind: i2c, bus: 1, address: 0x3B}", "stm32f072rb"),
                                           (CAN, "stm32f105rc")])
def test_an_image_the_rom_cannot_write_at_is_refused_located(
        tmp_path: Path, link: str, chip: str) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(_write(tmp_path, address="0x08000002", link=link, chip=chip))
    (issue,) = caught.value.issues
    assert (issue.line, issue.where) == (14, "devices.dev.transport")
    assert "image 'app' starts at 0x08000002" in issue.message
    assert "4-byte aligned" in issue.message and "erased and then refused" in issue.message


def test_an_aligned_image_over_the_rom_is_valid(tmp_path: Path) -> None:
    assert load_manifest(_write(tmp_path, address="0x08000004")).devices["dev"]


def test_a_probe_writes_where_the_chip_can(tmp_path: Path) -> None:
    path = _write(tmp_path, address="0x08000002", link="{kind: stlink}")
    assert load_manifest(path).devices["dev"]


def test_a_unit_data_field_the_rom_cannot_write_at_is_refused(tmp_path: Path) -> None:
    unit = ("    - unit-data: {address: 0x0800FC02, "
            "source: {uid: {derive: crc32}}}\n")
    with pytest.raises(ManifestError, match="unit-data field of step 3 starts at 0x0800FC02"):
        load_manifest(_write(tmp_path, address="0x08000000", unit=unit))
