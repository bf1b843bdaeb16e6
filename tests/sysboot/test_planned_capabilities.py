"""What a bootloader link plans to offer, per chip and options, before any byte is sent."""

from __future__ import annotations

from typing import Any

import pytest

from transports.base import Capability, planned_capabilities
from transports.can import CanTransport
from transports.chips import ChipDatabase
from transports.dfu.transport import DfuTransport
from transports.i2c import I2cTransport
from transports.memory import MemoryTransport
from transports.sim.bootloader import CHECKSUM, Link, bootloader_profile
from transports.stlink.transport import StLinkTransport
from transports.uart import UsartTransport

UART = {"port": "/dev/ttyUSB0"}
WIRED = {"port": "/dev/ttyUSB0", "reset": "dtr"}
_CLASSES: dict[Link, Any] = {Link.USART: UsartTransport, Link.I2C: I2cTransport,
                             Link.CAN: CanTransport}


def test_uart_to_an_f103_plans_no_checksum(chips: ChipDatabase) -> None:
    # AN3155 v2.2 ROM: no Get Checksum in its Get list.
    planned = UsartTransport.planned_capabilities(UART, chips.part("stm32f103c8"))
    assert Capability.CHECKSUM not in planned
    assert Capability.READ in planned


@pytest.mark.parametrize("part", ["stm32f411re", "stm32g071rb", "stm32l476rg"])
def test_uart_to_a_v3_1_rom_plans_no_checksum(chips: ChipDatabase, part: str) -> None:
    # F4/G0/L4 USART ROMs list 11 commands, Get Checksum not among them.
    assert Capability.CHECKSUM not in UsartTransport.planned_capabilities(UART,
                                                                         chips.part(part))


def test_uart_to_an_h7_plans_the_on_target_checksum(chips: ChipDatabase) -> None:
    assert Capability.CHECKSUM in UsartTransport.planned_capabilities(
        UART, chips.part("stm32h743zi"))


def test_i2c_to_a_g071_plans_the_checksum_of_its_v1_2_rom(chips: ChipDatabase) -> None:
    assert Capability.CHECKSUM in I2cTransport.planned_capabilities(
        {"bus": 1}, chips.part("stm32g071rb"))


def test_i2c_to_an_f411_plans_no_checksum(chips: ChipDatabase) -> None:
    assert Capability.CHECKSUM not in I2cTransport.planned_capabilities(
        {"bus": 1}, chips.part("stm32f411re"))


def test_uart_without_a_reset_line_plans_no_hardware_reset(chips: ChipDatabase) -> None:
    planned = UsartTransport.planned_capabilities(UART, chips.part("stm32f411re"))
    assert Capability.RESET_HARDWARE not in planned
    assert Capability.GO in planned


@pytest.mark.parametrize("options", [WIRED, {**UART, "exit-sequence": "dtr,-dtr"}])
def test_uart_with_a_reset_line_or_exit_sequence_plans_a_hardware_reset(
        chips: ChipDatabase, options: dict[str, Any]) -> None:
    planned = UsartTransport.planned_capabilities(options, chips.part("stm32f411re"))
    assert Capability.RESET_HARDWARE in planned


@pytest.mark.parametrize("cls", [UsartTransport, I2cTransport, CanTransport])
def test_a_bootloader_link_plans_within_its_kinds_set(chips: ChipDatabase, cls: Any) -> None:
    for part in ("stm32f103c8", "stm32g071rb", "stm32h743zi"):
        assert cls.planned_capabilities(WIRED, chips.part(part)) <= cls.capabilities


@pytest.mark.parametrize("cls", [DfuTransport, MemoryTransport])
def test_links_without_chip_dependent_facts_plan_their_static_set(chips: ChipDatabase,
                                                                  cls: Any) -> None:
    assert cls.planned_capabilities({}, chips.part("stm32f411re")) == cls.capabilities


def test_stlink_plans_within_its_kinds_set(chips: ChipDatabase) -> None:
    """The checksum comes with write-mode: loader (the RAM loader's CRC routine)."""
    for options in ({}, {"write-mode": "loader"}):
        planned = StLinkTransport.planned_capabilities(options, chips.part("stm32f411re"))
        assert planned <= StLinkTransport.capabilities


def test_a_class_without_planned_capabilities_plans_its_static_set(chips: ChipDatabase) -> None:
    class Legacy:
        capabilities = frozenset({Capability.WRITE})

    assert planned_capabilities(Legacy, {}, chips.part("stm32f411re")) == {Capability.WRITE}


@pytest.mark.parametrize("link", list(Link))
def test_the_simulated_rom_lists_get_checksum_exactly_where_the_link_plans_it(
        chips: ChipDatabase, link: Link) -> None:
    disagree = []
    for part, chip in sorted(chips.chips.items()):
        if link.value not in chip.bootloader.interfaces:
            continue
        listed = CHECKSUM in bootloader_profile(chip, link, {}).commands
        planned = Capability.CHECKSUM in _CLASSES[link].planned_capabilities(WIRED, chip)
        if listed != planned:
            disagree.append(part)
    assert disagree == []
