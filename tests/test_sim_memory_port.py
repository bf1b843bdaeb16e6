"""The far end of ``kind: sim`` charges the wire and the chip's program time, once per chunk."""

from __future__ import annotations

import pytest

from transports.chips import chip_database
from transports.errors import WriteError
from transports.sim.chip import SimChip
from transports.sim.clock import SimClock
from transports.sim.memory_port import SimMemoryPort

FLASH = 0x08000000


def port(rate: float = 16_000) -> SimMemoryPort:
    sim = SimChip(chip_database().part("stm32f103c8"), clock=SimClock(0.0))
    return SimMemoryPort(sim, link="link", device="board", rate=rate)


def test_a_programmed_chunk_costs_its_wire_time_and_the_chips_program_time() -> None:
    memory = port()
    timing = memory.sim.chip.timing
    memory.program(FLASH, bytes(range(256)) * 4)
    assert memory.sim.clock.elapsed == pytest.approx(
        1024 / 16_000 + timing.program_seconds(1024, memory.sim.geometry.write_unit))
    assert memory.sim.flash[:1024] == bytes(range(256)) * 4


def test_a_refused_chunk_has_still_crossed_the_wire() -> None:
    memory = port()
    memory.sim.program(FLASH, b"\x00\x00", timed=False)
    with pytest.raises(WriteError):
        memory.program(FLASH, b"\x12\x34" * 512)
    assert memory.sim.clock.elapsed == pytest.approx(1024 / 16_000)
