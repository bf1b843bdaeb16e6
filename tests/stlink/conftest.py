"""Fixtures: a simulated ST-Link session on a chip of the database."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from transports.base import LinkRequest
from transports.sim import SimulationWorld
from transports.sim.endpoints import simulated_request
from transports.sim.stlink import SimStLinkProbe, attach_probe, probe_for
from transports.sim.usb import SimUsbBackend
from transports.sim.world import DeviceProfile
from transports.stlink import StLinkTransport

#: The SRAM programs' sources and their checked-in binaries.
LOADERS = Path(__file__).resolve().parents[2] / "transports/stlink/loaders"


def assembled(source: str, folder: Path) -> bytes:
    """``source`` (under LOADERS) built with the GNU ARM tools as the checked-in binary is."""
    obj, binary = folder / "program.o", folder / "program.bin"
    subprocess.run(["arm-none-eabi-as", "-mcpu=cortex-m0", "-mthumb", "-I", str(LOADERS),
                    "-o", str(obj), str(LOADERS / source)], check=True)
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(obj), str(binary)], check=True)
    return binary.read_bytes()

Open = Callable[..., StLinkTransport]


def request(world: SimulationWorld, part: str, *, device: str = "board",
            options: Mapping[str, Any] | None = None) -> LinkRequest:
    from transports.chips import chip_database

    # The plan's resource key decides which devices share a probe, as composition does.
    resource = StLinkTransport.resource_key("probe", dict(options or {}))
    return simulated_request(world, device=device, link="probe", kind="stlink",
                             options=dict(options or {}), chip=chip_database().part(part),
                             resource=resource)


@pytest.fixture
def open_session(world: SimulationWorld) -> Iterator[Open]:
    """Open and connect a session; ``quirks`` become the device's simulation profile."""
    sessions: list[StLinkTransport] = []

    def factory(part: str, *, device: str = "board", quirks: Mapping[str, Any] | None = None,
                options: Mapping[str, Any] | None = None, rdp: int = 0,
                connect: bool = True) -> StLinkTransport:
        world.profiles[device] = DeviceProfile(quirks=dict(quirks or {}), rdp_level=rdp)
        session = StLinkTransport.open(request(world, part, device=device, options=options))
        sessions.append(session)
        if connect:
            session.connect()
        return session

    yield factory
    for session in sessions:
        session.close()


def probe_of(world: SimulationWorld, device: str = "board") -> SimStLinkProbe:
    return probe_for(world, device)


def backend_of(world: SimulationWorld) -> SimUsbBackend:
    return world.shared("usb", SimUsbBackend)


__all__ = ["Open", "attach_probe", "backend_of", "probe_of", "request"]
