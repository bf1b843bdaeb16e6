"""Links are checked against their transport class: kind, options, capabilities.

The registry is pointed at small fake transport classes defined here, so the
checks are exercised without any real link module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from runner.errors import ManifestError
from runner.manifest import load_manifest
from transports import registry
from transports.base import Capability


class BasicLink:
    """Erases pages, writes, reads back; resets with a pin. Needs a port."""

    kind: ClassVar[str] = "basic"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.ERASE_PAGES, Capability.WRITE, Capability.READ, Capability.RESET_HARDWARE})
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object", "additionalProperties": False, "required": ["port"],
        "properties": {"port": {"type": "string"}, "address": {"type": "integer"},
                       "baud": {"type": "integer", "minimum": 1200}},
    }


class WriteOnlyLink:
    """Can write and nothing else (no read, no checksum, no reset)."""

    kind: ClassVar[str] = "writeonly"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.WRITE})
    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object"}


@pytest.fixture(autouse=True)
def fake_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "BUILTIN", {
        "basic": f"{__name__}:BasicLink",
        "writeonly": f"{__name__}:WriteOnlyLink",
        "gone": "flashrunner_no_such_module:Link",
    })


TEMPLATE = """\
manifest: 1
name: t
images:
  app: {{file: app.bin, address: 0x08000000}}
transports:
  link: {link}
recipes:
  std:
{steps}
devices:
  dev: {{chip: stm32f103c8, transport: {device_link}, recipe: std}}
"""


def manifest(tmp_path: Path, *, link: str = "{kind: basic, port: /dev/ttyUSB0}",
             steps: str = "    - write: [app]", device_link: str = "link") -> Path:
    (tmp_path / "app.bin").write_bytes(b"\x00\x01\x02\x03")
    path = tmp_path / "m.yaml"
    path.write_text(TEMPLATE.format(link=link, steps=steps, device_link=device_link))
    return path


def issues(path: Path) -> list[tuple[int, int, str, str]]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return [(i.line, i.column, i.where, i.message) for i in caught.value.issues]


def test_a_step_within_the_links_capabilities_is_accepted(tmp_path: Path) -> None:
    steps = "    - erase: {}\n    - write: [app]\n    - verify: {method: readback}\n" \
            "    - reset: {mode: hardware}"
    assert load_manifest(manifest(tmp_path, steps=steps)).links["link"].kind == "basic"


def test_verify_by_checksum_is_rejected_on_a_link_without_one(tmp_path: Path) -> None:
    steps = "    - write: [app]\n    - verify: {method: checksum}"
    ((line, column, where, message),) = issues(manifest(tmp_path, steps=steps))
    assert (line, column, where) == (10, 7, "recipes.std[1].verify")
    assert message.startswith("a basic link cannot verify by checksum, but device dev runs "
                              "this step over link link")


def test_verify_auto_needs_read_or_checksum(tmp_path: Path) -> None:
    steps = "    - write: [app]\n    - verify: {}"
    link = "{kind: writeonly}"
    ((_, _, where, message),) = issues(manifest(tmp_path, steps=steps, link=link))
    assert where == "recipes.std[1].verify"
    assert "cannot verify" in message


def test_mass_erase_needs_the_mass_erase_capability(tmp_path: Path) -> None:
    steps = "    - erase: {scope: mass}\n    - write: [app]"
    ((_, _, where, message),) = issues(manifest(tmp_path, steps=steps))
    assert where == "recipes.std[0].erase"
    assert "cannot erase the whole flash" in message


def test_erase_none_needs_nothing(tmp_path: Path) -> None:
    steps = "    - erase: {scope: none}\n    - write: [app]"
    assert load_manifest(manifest(tmp_path, steps=steps, link="{kind: writeonly}"))


def test_reset_halt_needs_a_software_reset(tmp_path: Path) -> None:
    steps = "    - write: [app]\n    - reset: {mode: halt}"
    ((_, _, where, message),) = issues(manifest(tmp_path, steps=steps))
    assert where == "recipes.std[1].reset" and "cannot reset (halt)" in message


def test_a_reset_without_mode_needs_some_reset(tmp_path: Path) -> None:
    steps = "    - write: [app]\n    - reset: {}"
    ((_, _, _, message),) = issues(manifest(tmp_path, steps=steps, link="{kind: writeonly}"))
    assert "cannot reset" in message


def test_option_bytes_need_the_option_bytes_capability(tmp_path: Path) -> None:
    steps = "    - write: [app]\n    - option-bytes: {rdp: 1}"
    ((_, _, _, message),) = issues(manifest(tmp_path, steps=steps))
    assert "cannot change option bytes" in message


def test_a_missing_required_option_is_reported_at_the_device_link(tmp_path: Path) -> None:
    ((line, column, where, message),) = issues(manifest(tmp_path, link="{kind: basic}"))
    assert (line, column, where) == (11, 39, "devices.dev.transport")
    assert "the required key 'port' of the options of basic link link is missing" in message


def test_device_options_are_merged_over_the_links(tmp_path: Path) -> None:
    path = manifest(tmp_path, device_link="{use: link, address: 0x51}")
    assert dict(load_manifest(path).devices["dev"].link.options) == {"address": 0x51}


def test_a_bad_device_option_is_located_at_the_device(tmp_path: Path) -> None:
    path = manifest(tmp_path, device_link="{use: link, address: '0x51'}")
    ((line, column, where, message),) = issues(path)
    assert (line, column, where) == (11, 60, "devices.dev.transport.address")
    assert "expected an integer, got the text '0x51'; write numbers without quotes" in message


def test_a_bad_link_option_is_located_at_the_link(tmp_path: Path) -> None:
    path = manifest(tmp_path, link="{kind: basic, port: /dev/ttyUSB0, baud: 300}")
    ((line, column, where, message),) = issues(path)
    assert (line, column, where) == (6, 49, "transports.link.baud")
    assert "must be at least 1200" in message


def test_a_typod_option_is_suggested(tmp_path: Path) -> None:
    path = manifest(tmp_path, link="{kind: basic, port: /dev/ttyUSB0, buad: 9600}")
    ((_, _, where, message),) = issues(path)
    assert where == "transports.link.buad" and "did you mean 'baud'?" in message


def test_an_unknown_kind_is_reported_at_the_kind_key(tmp_path: Path) -> None:
    ((line, column, where, message),) = issues(manifest(tmp_path, link="{kind: serial}"))
    assert (line, column, where) == (6, 16, "transports.link.kind")
    assert message.startswith("unknown transport kind 'serial' (use one of basic, gone,")


def test_a_kind_not_installed_says_so(tmp_path: Path) -> None:
    ((_, _, where, message),) = issues(manifest(tmp_path, link="{kind: gone}"))
    assert where == "transports.link.kind"
    assert "transport kind 'gone' is not available in this installation" in message


def test_an_unused_link_still_has_its_options_checked(tmp_path: Path) -> None:
    path = manifest(tmp_path)
    path.write_text(path.read_text().replace(
        "  link: {kind: basic, port: /dev/ttyUSB0}",
        "  link: {kind: basic, port: /dev/ttyUSB0}\n  spare: {kind: basic, baud: 300}"))
    ((_, _, where, message),) = issues(path)
    assert where == "transports.spare.baud" and "must be at least 1200" in message


class I2cLink(BasicLink):
    kind: ClassVar[str] = "i2c"


def test_a_bootloader_link_needs_the_chip_to_offer_that_interface(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BUILTIN, "i2c", f"{__name__}:I2cLink")
    ((_, _, where, message),) = issues(manifest(tmp_path, link="{kind: i2c, port: '1'}"))
    assert where == "devices.dev.transport"
    assert message == ("device dev on link link: stm32f103c8's ROM has no I2C bootloader "
                       "(AN2606), so an i2c link cannot reach it; use a link its ROM offers: "
                       "uart (or stlink, over SWD)")


def test_a_bootloader_link_is_fine_where_the_chip_offers_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BUILTIN, "i2c", f"{__name__}:I2cLink")
    path = manifest(tmp_path, link="{kind: i2c, port: '1'}")
    path.write_text(path.read_text().replace("stm32f103c8", "stm32g071rb"))
    assert load_manifest(path).links["link"].kind == "i2c"
