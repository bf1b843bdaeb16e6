"""Fixtures: bootloader sessions over simulated links."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from transports.chips import ChipDatabase
from transports.sim import SimChip, SimulationWorld
from transports.sim.endpoints import simulated_request
from transports.sim.world import DeviceProfile
from transports.uart import UsartTransport

OpenUsart = Callable[..., UsartTransport]


def make_world(profile: DeviceProfile | None = None) -> SimulationWorld:
    return SimulationWorld(time_scale=0.0, seed="sysboot",
                           profiles={"dut": profile} if profile else None)


@pytest.fixture
def open_usart(chips: ChipDatabase) -> Iterator[OpenUsart]:
    """``open_usart(part, profile=None, **options)`` → a connected USART session."""
    worlds: list[SimulationWorld] = []
    sessions: list[UsartTransport] = []

    def opener(part: str, profile: DeviceProfile | None = None, *,
               connect: bool = True, world: SimulationWorld | None = None,
               **options: Any) -> UsartTransport:
        if world is None:
            world = make_world(profile)
            worlds.append(world)
        merged: Mapping[str, Any] = {"port": "sim", **{k.replace("_", "-"): v
                                                       for k, v in options.items()}}
        request = simulated_request(world, device="dut", link="usart", kind="uart", options=merged,
                              chip=chips.part(part))
        session = UsartTransport.open(request)
        sessions.append(session)
        if connect:
            session.connect()
        return session

    yield opener
    for session in sessions:
        session.close()
    for world in worlds:
        world.close()


def sim_of(session: UsartTransport) -> SimChip:
    world = session.request.endpoints.world
    assert world is not None
    return world.chips["dut"]
