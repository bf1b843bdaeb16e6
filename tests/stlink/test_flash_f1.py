"""F1 flash through the probe: paths, silicon-like refusals, clones, option bytes."""

from __future__ import annotations

import os

import pytest

from runner.errors import EraseError, ReadProtected, Refused, WriteError
from tests.stlink.conftest import Open, probe_of
from transports.base import OptionBytesChange
from transports.sim import SimulationWorld
from transports.stlink.protocol import MemoryFault

FLASH = 0x08000000
FPEC = 0x40022000
KEYR, SR, CR = FPEC + 0x04, FPEC + 0x0C, FPEC + 0x10


def image(size: int) -> bytes:
    return os.urandom(size)


def test_genuine_part_is_written_on_the_fast_path(open_session: Open,
                                                  world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    data = image(8192)
    session.erase(session.chip.flash.blocks_covering(FLASH, len(data)))
    session.write(FLASH, data)
    assert session.identify().details["write_mode"] == "fast"
    assert session.read(FLASH, len(data)) == data
    assert world.chips["board"].flash[:len(data)] == data


def test_writing_over_data_fails_with_pgerr_and_the_address(open_session: Open) -> None:
    session = open_session("stm32f103c8")
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, b"\x00\x11" * 8)
    with pytest.raises(WriteError, match="PGERR") as info:
        session.write(FLASH, b"\x22\x33" * 8)
    assert info.value.address == FLASH


def test_a_locked_controller_refuses_to_program(open_session: Open,
                                                world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    assert session.link is not None
    with pytest.raises(MemoryFault):
        session.link.write_block(FLASH, b"\x00\x00", 2)
    assert world.chips["board"].flash[:2] == b"\xff\xff"


def test_a_wrong_key_locks_the_controller_until_reset(open_session: Open) -> None:
    session = open_session("stm32f103c8")
    link, target = session.link, session.target
    assert link is not None and target is not None
    with pytest.raises(MemoryFault):
        link.write_word(KEYR, 0x12345678)
    with pytest.raises(MemoryFault):
        link.write_word(KEYR, 0x45670123)
    with pytest.raises(WriteError):
        session.write(FLASH, b"\x00" * 16)
    target.reset(halt=True)
    session.write(FLASH, b"\x00" * 16)  # the reset lifted the lock


def test_mass_erase_when_the_image_covers_the_whole_flash(open_session: Open,
                                                          world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    session.erase(session.chip.flash.blocks)
    assert world.chips["board"].stats.mass_erases == 1
    assert world.chips["board"].stats.blocks_erased == 0


def test_erase_refused_under_readout_protection(open_session: Open) -> None:
    session = open_session("stm32f103c8", rdp=1)
    with pytest.raises(ReadProtected, match="rdp: 0"):
        session.erase(session.chip.flash.blocks[:1])


@pytest.mark.parametrize("clone", ["apm32", "gd32", "cks32"])
def test_clones_are_detected_and_take_the_safe_path(open_session: Open, clone: str) -> None:
    session = open_session("stm32f103c8", quirks={"clone": clone})
    details = session.identify().details
    assert (details["clone"], details["write_mode"]) == (clone, "safe")


def test_clone_is_flashed_correctly_through_the_safe_path(open_session: Open,
                                                          world: SimulationWorld) -> None:
    session = open_session("stm32f103c8", quirks={"clone": "apm32"})
    data = image(2048)
    session.erase(session.chip.flash.blocks_covering(FLASH, len(data)))
    session.write(FLASH, data)
    assert session.read(FLASH, len(data)) == data


def test_forcing_the_fast_path_on_a_clone_loses_data_that_verify_catches(
        open_session: Open, world: SimulationWorld) -> None:
    """write-mode: fast is honoured (it is an override); the clone drops the half-words
    written while BSY is set, so the read-back the runner verifies with differs."""
    session = open_session("stm32f103c8", quirks={"clone": "apm32"},
                           options={"write-mode": "fast"})
    data = image(2048)
    session.erase(session.chip.flash.blocks_covering(FLASH, len(data)))
    session.write(FLASH, data)
    assert session.read(FLASH, len(data)) != data
    target = probe_of(world).target
    assert target is not None
    controller = target.controller
    assert controller.dropped_writes > 0


def test_safe_mode_can_be_forced_on_a_genuine_part(open_session: Open) -> None:
    session = open_session("stm32f103c8", options={"write-mode": "safe"})
    data = image(256)
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, data)
    assert session.read(FLASH, len(data)) == data


def test_rdp_round_trip_protects_then_mass_erases(open_session: Open,
                                                  world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, b"\x5a" * 64)
    session.write_option_bytes(OptionBytesChange(rdp_level=1))
    assert session.read_option_bytes().rdp_level == 1
    with pytest.raises(ReadProtected):
        session.read(FLASH, 64)
    session.write_option_bytes(OptionBytesChange(rdp_level=0))
    assert session.read_option_bytes().rdp_level == 0
    assert session.read(FLASH, 64) == b"\xff" * 64  # regression erased everything
    assert world.chips["board"].stats.mass_erases == 1


def test_option_fields_are_programmed_with_their_complements(open_session: Open,
                                                             world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    session.write_option_bytes(OptionBytesChange(fields={"data0": 0x42}))
    raw = world.chips["board"].option_bytes
    assert (raw[4], raw[5], raw[0], raw[1]) == (0x42, 0xBD, 0xA5, 0x5A)
    assert session.read_option_bytes().fields["data0"] == 0x42


def test_rdp_level_2_does_not_exist_on_f1(open_session: Open) -> None:
    session = open_session("stm32f103c8")
    with pytest.raises(Refused, match="no RDP level 2"):
        session.write_option_bytes(OptionBytesChange(rdp_level=2, confirmed_irreversible=True))


def test_erase_error_names_the_page(open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    world.chips["board"].write_protect([3])
    with pytest.raises(EraseError, match="WRPRTERR") as info:
        session.erase(session.chip.flash.blocks[2:5])
    assert info.value.address == session.chip.flash.blocks[3].address
