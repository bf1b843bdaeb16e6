"""What the compiler sees of kind dfu: options, capabilities, speed."""

from __future__ import annotations

import jsonschema
import pytest

from transports.base import Capability
from transports.chips import Chip
from transports.dfu import DfuTransport
from transports.registry import load_transport


def test_registry_maps_kind_dfu_to_the_transport() -> None:
    assert load_transport("dfu") is DfuTransport


def test_capabilities_offer_flashing_leave_and_protection() -> None:
    assert {Capability.ERASE_PAGES, Capability.ERASE_MASS, Capability.WRITE, Capability.READ,
            Capability.GO, Capability.OPTION_BYTES, Capability.READ_UNPROTECT} \
        <= DfuTransport.capabilities
    assert Capability.CHECKSUM not in DfuTransport.capabilities
    assert Capability.RESET_HARDWARE not in DfuTransport.capabilities


@pytest.mark.parametrize("options", [
    {},
    {"vid": 0x0483, "pid": "df11", "serial": "336F38653036", "port-path": "1-4.2"},
    {"alt": "Internal Flash", "uid": "0123456789abcdef01234567", "transfer-size": 1024},
    {"alt": 0, "timeout": 2.5},
])
def test_valid_options(options: dict[str, object]) -> None:
    validator = jsonschema.Draft202012Validator(DfuTransport.options_schema)
    assert not list(validator.iter_errors(options))


@pytest.mark.parametrize("options", [
    {"port": "1-4"},
    {"port-path": "usb1/4"},
    {"pid": 0x1FFFF},
    {"uid": "1234"},
    {"transfer-size": 8192},
])
def test_invalid_options(options: dict[str, object]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(DfuTransport.options_schema).validate(options)


def test_speed_model_reads_faster_than_it_writes(f411: Chip) -> None:
    model = DfuTransport.speed_model({}, f411)
    assert 0 < model.write_bytes_per_s < model.read_bytes_per_s
    smaller = DfuTransport.speed_model({"transfer-size": 256}, f411)
    assert smaller.write_bytes_per_s < model.write_bytes_per_s

