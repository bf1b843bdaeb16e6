"""The bootloader links meet the transport contract and are registered by kind."""

from __future__ import annotations

import pytest

from transports.base import LinkRequest, Transport
from transports.can import CanTransport
from transports.chips import ChipDatabase
from transports.i2c import I2cTransport
from transports.registry import load_transport
from transports.sysboot.transport import BootloaderSession
from transports.uart import UsartTransport


@pytest.mark.parametrize(("kind", "klass"), [("uart", UsartTransport), ("i2c", I2cTransport),
                                              ("can", CanTransport)])
def test_registry_loads_the_class_for_its_kind(kind: str, klass: type) -> None:
    assert load_transport(kind) is klass
    assert klass.kind == kind


@pytest.mark.parametrize("klass", [UsartTransport, I2cTransport, CanTransport])
def test_sessions_implement_the_transport_protocol(klass: type[BootloaderSession],
                                                   chips: ChipDatabase) -> None:
    options = {"port": "x", "bus": 1, "interface": "virtual", "channel": "x"}
    allowed = set(klass.options_schema["properties"])
    session = klass(LinkRequest(device="d", link="l", kind=klass.kind,
                                options={k: v for k, v in options.items() if k in allowed},
                                chip=chips.part("stm32l476rg")))
    assert isinstance(session, Transport)


@pytest.mark.parametrize(("klass", "options", "wire_bytes_per_s"), [
    (UsartTransport, {"port": "x", "baud": 115200}, 115200 / 11),
    (I2cTransport, {"bus": 1, "clock": 400000}, 400000 / 9),
    (CanTransport, {"interface": "virtual", "channel": "x", "bitrate": 125000}, 125000 / 8),
])
def test_speed_models_stay_below_the_wire(klass: type[BootloaderSession], options: dict,
                                          wire_bytes_per_s: float, chips: ChipDatabase) -> None:
    model = klass.speed_model(options, chips.part("stm32l476rg"))
    assert 0 < model.write_bytes_per_s <= model.read_bytes_per_s < wire_bytes_per_s
