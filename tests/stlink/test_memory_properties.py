"""Any span of target memory reads back what was written, whatever its alignment."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.stlink.conftest import request
from transports.sim import SimulationWorld
from transports.stlink import StLinkTransport

RAM = 0x20000000


def connected(part: str, probe: str) -> tuple[SimulationWorld, StLinkTransport]:
    from transports.sim.world import DeviceProfile

    world = SimulationWorld(profiles={"board": DeviceProfile(quirks={"probe": probe})})
    session = StLinkTransport.open(request(world, part))
    session.connect()
    return world, session


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offset=st.integers(0, 6000), data=st.binary(min_size=1, max_size=5000),
       part=st.sampled_from(["stm32g071rb", "stm32f411re"]),
       probe=st.sampled_from(["v2", "v3", "v1"]))
def test_ram_round_trips_at_any_alignment(offset: int, data: bytes, part: str,
                                          probe: str) -> None:
    world, session = connected(part, probe)
    try:
        assert session.link is not None
        session.link.write_memory(RAM + offset, data)
        assert session.link.read_memory(RAM + offset, len(data)) == data
        assert world.chips["board"].read_memory(RAM + offset, len(data)) == data
    finally:
        session.close()
        world.close()
