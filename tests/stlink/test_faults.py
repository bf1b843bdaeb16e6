"""Injected faults show up as the error classes recovery policies match on."""

from __future__ import annotations

import pytest

from runner.errors import LinkLost, LinkTimeout
from tests.stlink.conftest import Open
from transports.sim import SimulationWorld
from transports.sim.faults import Fault

FLASH = 0x08000000


def test_a_probe_that_stops_answering_is_a_link_timeout(open_session: Open,
                                                        world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    world.chips["board"].faults.add(Fault(kind="timeout", op="read"))
    with pytest.raises(LinkTimeout) as info:
        session.read(FLASH, 64)
    assert (info.value.transport, info.value.device) == ("probe", "board")


def test_an_unplugged_probe_is_link_lost(open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    session.erase(session.chip.flash.blocks[:1])
    world.chips["board"].faults.add(Fault(kind="link-lost", op="write", at_byte=512))
    with pytest.raises((LinkLost, LinkTimeout)):
        session.write(FLASH, b"\x00" * 1024)


def test_a_corrupted_write_is_left_for_verify_to_find(open_session: Open,
                                                      world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    session.erase(session.chip.flash.blocks[:1])
    world.chips["board"].faults.add(Fault(kind="corrupt", op="write"))
    data = b"\x10\x32" * 64
    session.write(FLASH, data)
    assert session.read(FLASH, len(data)) != data


def test_a_probe_that_stops_answering_during_an_erase_is_a_link_timeout(
        open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32f411re")
    world.chips["board"].faults.add(Fault(kind="timeout", op="erase"))
    with pytest.raises(LinkTimeout):
        session.erase(session.chip.flash.blocks[:1])


def test_a_refused_erase_faults_the_register_write_and_is_a_bus_fault(
        open_session: Open, world: SimulationWorld) -> None:
    # The probe has no NACK: the register write that starts the erase faults on the AP.
    from transports.stlink.protocol import MemoryFault

    session = open_session("stm32f411re")
    world.chips["board"].faults.add(Fault(kind="nack", op="erase"))
    with pytest.raises(MemoryFault) as info:
        session.erase(session.chip.flash.blocks[:1])
    assert info.value.category == "fault"
    assert info.value.address == 0x40023C10  # FLASH_CR, RM0383 §3.8
