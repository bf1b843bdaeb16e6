"""The class side: options schema, resource key, capabilities, speed model, udev file."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest

from transports.base import Capability
from transports.chips import ChipDatabase
from transports.registry import load_transport
from transports.stlink import StLinkTransport
from transports.stlink.usb import PROBE_KINDS

RULES = Path(__file__).resolve().parents[2] / "transports" / "udev" / "99-flashrunner.rules"


def test_registry_loads_the_class() -> None:
    assert load_transport("stlink") is StLinkTransport


def test_options_schema_accepts_the_documented_options() -> None:
    jsonschema.Draft202012Validator.check_schema(StLinkTransport.options_schema)
    options = {"serial": "066DFF515754888367131638", "port-path": "1-4.2",
               "connect": "under-reset", "clock-khz": 4000, "flash-size-kib": 128,
               "write-mode": "safe", "min-voltage": 3.0}
    validator = jsonschema.Draft202012Validator(StLinkTransport.options_schema)
    assert not list(validator.iter_errors(options))


@pytest.mark.parametrize("options", [{"serail": "x"}, {"connect": "sometimes"},
                                     {"port-path": "usb1"}, {"write-mode": "turbo"}])
def test_options_schema_rejects_mistakes(options: dict[str, object]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(options, StLinkTransport.options_schema)


def test_devices_on_one_probe_share_a_resource() -> None:
    key = StLinkTransport.resource_key
    assert key("a", {"serial": "S1"}) == key("b", {"serial": "S1"}) != key("a", {"serial": "S2"})
    assert key("a", {"port-path": "1-2"}) == "stlink:1-2"


def test_the_checksum_is_claimed_on_every_write_path_unless_turned_off(
        chips: ChipDatabase) -> None:
    f411 = chips.part("stm32f411re")
    for mode in ("auto", "loader", "fast", "safe"):
        assert Capability.CHECKSUM in StLinkTransport.planned_capabilities(
            {"write-mode": mode}, f411)
        assert Capability.CHECKSUM not in StLinkTransport.planned_capabilities(
            {"write-mode": mode, "on-target-crc": False}, f411)
    assert {Capability.OPTION_BYTES, Capability.UID, Capability.ERASE_PAGES,
            Capability.CHECKSUM} <= StLinkTransport.capabilities


def test_speed_model_is_positive_for_every_known_part(chips: ChipDatabase) -> None:
    for chip in chips:
        model = StLinkTransport.speed_model({}, chip)
        assert model.write_bytes_per_s > 0 and model.read_bytes_per_s > 0


def test_udev_rules_cover_every_probe_pid_and_st_dfu() -> None:
    text = RULES.read_text()
    pids = set(re.findall(r'ATTRS\{idProduct\}=="([0-9a-f]{4})"', text))
    assert {f"{pid:04x}" for pid in PROBE_KINDS} | {"df11"} == pids
