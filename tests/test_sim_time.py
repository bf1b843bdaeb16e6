"""Simulated time passes while the host sleeps, so hosts can wait as they do on silicon.

A host that starts an operation, sleeps the datasheet time with no traffic and
then looks once must find it done — as pystlink and dfu-util-style hosts
expect. These tests pace the simulation at 1/100 of real time and sleep with
:func:`time.sleep`, never with the simulator's clock; they assert only what a
sleep of *at least* the asked time guarantees.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.stlink.conftest import request as stlink_request
from transports.chips import chip_database
from transports.dfu import DfuTransport
from transports.endpoints import HARDWARE, WallClock
from transports.sim import SimClock, SimulationWorld
from transports.sim.clock import SimTimebase
from transports.sim.endpoints import simulated_request
from transports.stlink import StLinkTransport

SCALE = 0.01  # one real second runs a hundred simulated ones

# RM0383 §3.8 (F411): FLASH_KEYR, FLASH_SR (BSY bit 16), FLASH_CR (SER, SNB, PSIZE, STRT).
FLASH_R = 0x40023C00
KEYR, SR, CR = FLASH_R + 0x04, FLASH_R + 0x0C, FLASH_R + 0x10
SR_BSY = 1 << 16
CR_SER, CR_PSIZE_X32, CR_STRT = 1 << 1, 2 << 8, 1 << 16


@pytest.fixture
def paced() -> Iterator[SimulationWorld]:
    with SimulationWorld(time_scale=SCALE, seed="time") as world:
        yield world


def test_a_paced_clock_counts_idle_wall_time() -> None:
    clock = SimClock(SCALE)
    before = clock.elapsed
    time.sleep(0.02)
    assert clock.elapsed - before >= 0.02 / SCALE


def test_the_fast_clock_ignores_the_wall() -> None:
    clock = SimClock(0.0)
    time.sleep(0.01)
    assert clock.elapsed == 0.0
    clock.sleep(3.0)
    assert clock.elapsed == 3.0


def test_an_erase_is_seen_done_after_the_host_sleeps_without_traffic(
        paced: SimulationWorld) -> None:
    session = StLinkTransport.open(stlink_request(paced, "stm32f411re"))
    session.connect()
    try:
        link = session.link
        assert link is not None
        sector_s = session.chip.timing.erase_seconds(session.chip.flash.blocks[0].size)
        link.write_word(KEYR, 0x45670123)
        link.write_word(KEYR, 0xCDEF89AB)
        link.write_word(CR, CR_SER | CR_PSIZE_X32)  # sector 0
        link.write_word(CR, CR_SER | CR_PSIZE_X32 | CR_STRT)
        assert link.read_word(SR) & SR_BSY  # the sector erase has started
        time.sleep(sector_s * SCALE * 2)  # the host's own sleep: no USB traffic
        assert not link.read_word(SR) & SR_BSY
    finally:
        session.close()


def test_a_dfu_erase_is_done_after_sleeping_its_poll_timeout(paced: SimulationWorld) -> None:
    chip = chip_database().part("stm32f411re")
    link = DfuTransport.open(simulated_request(paced, device="board", link="dfu", kind="dfu",
                                               chip=chip, options={}))
    link.connect()
    try:
        protocol = link.protocol
        # AN3156 §5.3: Erase is DNLOAD block 0 [0x41, address]; the first GETSTATUS
        # starts it and answers dfuDNBUSY with bwPollTimeout.
        protocol._out(1, 0, bytes([0x41]) + chip.flash.base.to_bytes(4, "little"), "erase")
        busy = protocol.get_status()
        assert busy.state == 4 and busy.poll_ms > 0  # dfuDNBUSY
        time.sleep(busy.poll_ms / 1000 * SCALE * 2)  # honour bwPollTimeout, paced
        assert protocol.get_status().state == 5  # dfuDNLOAD-IDLE
    finally:
        link.close()


def test_drivers_take_the_chip_clock_in_a_rehearsal_and_the_host_clock_on_hardware(
        paced: SimulationWorld) -> None:
    chip = chip_database().part("stm32f103c8")
    request = simulated_request(paced, device="dut", link="usart", kind="uart", chip=chip,
                                options={"port": "sim"})
    clock = request.endpoints.clock(request)
    assert isinstance(clock, SimTimebase)
    assert clock.clock is paced.chips["dut"].clock
    assert isinstance(HARDWARE.clock(request), WallClock)


def test_a_paced_rehearsal_runs_the_production_wait_code(paced: SimulationWorld) -> None:
    # The ST-Link driver sleeps the datasheet erase time and then polls against a
    # deadline; at a time scale above zero those waits are real (scaled) waits.
    session = StLinkTransport.open(stlink_request(paced, "stm32f411re"))
    session.connect()
    try:
        session.erase(session.chip.flash.blocks[:2])
        assert session.read(session.chip.flash.base, 64) == b"\xff" * 64
    finally:
        session.close()
