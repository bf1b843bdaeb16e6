"""Fixtures for the USB DFU transport: simulated ROM DFU boards on one pyusb backend."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from transports.chips import Chip, ChipDatabase
from transports.dfu import DfuTransport
from transports.sim import SimulationWorld
from transports.sim.dfu import SimDfuBoard, plug_rom_dfu
from transports.sim.endpoints import simulated_request
from transports.sim.usb import SimUsbBackend
from transports.sim.world import DeviceProfile

OpenLink = Callable[..., DfuTransport]


def firmware(size: int, *, entry: int = 0x08000101, stack: int = 0x20010000) -> bytes:
    """An image that starts with a valid vector table, then a recognisable pattern."""
    body = bytes((i * 7 + 3) & 0xFF for i in range(size - 8))
    return struct.pack("<II", stack, entry) + body


@pytest.fixture
def f411(chips: ChipDatabase) -> Chip:
    return chips.part("stm32f411re")


@pytest.fixture
def l476(chips: ChipDatabase) -> Chip:
    return chips.part("stm32l476rg")


def make_world(profiles: Mapping[str, DeviceProfile] | None = None) -> SimulationWorld:
    return SimulationWorld(time_scale=0.0, seed="dfu-tests", profiles=profiles)


@pytest.fixture
def open_link() -> Iterator[Callable[..., DfuTransport]]:
    """``open_link(world, chip, device="board", **options)`` → a connected session."""
    opened: list[DfuTransport] = []

    def opener(world: SimulationWorld, chip: Chip, device: str = "board", *,
               connect: bool = True, **options: Any) -> DfuTransport:
        request = simulated_request(world, device=device, link=f"dfu-{device}", kind="dfu",
                              options=options, chip=chip)
        transport = DfuTransport.open(request)
        opened.append(transport)
        if connect:
            transport.connect()
        return transport

    yield opener
    for transport in opened:
        transport.close()


def board_of(world: SimulationWorld, device: str = "board") -> SimDfuBoard:
    boards: dict[str, SimDfuBoard] = world.shared("dfu-boards", dict)
    return boards[device]


def plug(world: SimulationWorld, chip: Chip, device: str) -> SimDfuBoard:
    return plug_rom_dfu(world, world.shared("usb", SimUsbBackend), device, chip)
