"""The read-only on-target CRC routine behind the register write path, run by the simulated core."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stlink.conftest import LOADERS, Open, assembled, probe_of, request
from tests.stlink.test_families import representatives
from transports.base import Capability, ResetMode
from transports.checksums import stm32_crc32
from transports.chips import Chip, chip_database
from transports.sim import SimulationWorld
from transports.sim.world import DeviceProfile
from transports.stlink import StLinkTransport
from transports.stlink.loaders import CrcImage, CrcRoutine, crc_routine

DHCSR, S_HALT = 0xE000EDF0, 1 << 17
#: Offsets in stm32_crc.bin (see its disassembly): the word loop's first load, its
#: ``eors`` of the word into the CRC, and the store of the stop address.
LOOP, EORS_WORD, STORE_STOP = 0x12, 0x14, 0x46
NOP, SPIN, UDF = b"\x00\xbf", b"\xfe\xe7", b"\x00\xde"
STORE_R1_AS_STOP = b"\x79\x61"  # str r1, [r7, #20]: the byte count left (0), not r0


def patched(offset: int, code: bytes) -> CrcImage:
    body = bytearray(crc_routine().code)
    body[offset:offset + len(code)] = code
    return CrcImage(name="patched", code=bytes(body))


Fallbacks = list[tuple[str, str, str]]


@pytest.fixture
def reported() -> Fallbacks:
    return []


@pytest.fixture
def session_on(world: SimulationWorld, reported: Fallbacks) -> Iterator[Open]:
    """Like ``open_session``, with the session's fallback reports collected in ``reported``."""
    sessions: list[StLinkTransport] = []

    def factory(part: str | Chip, *, options: dict[str, object] | None = None,
                quirks: dict[str, object] | None = None) -> StLinkTransport:
        world.profiles["board"] = DeviceProfile(quirks=dict(quirks or {}))
        chip = part if isinstance(part, Chip) else chip_database().part(part)
        base = request(world, chip.part, options=options)
        session = StLinkTransport.open(dataclasses.replace(
            base, chip=chip, fallback=lambda *report: reported.append(report)))
        sessions.append(session)
        session.connect()
        return session

    yield factory
    for session in sessions:
        session.close()


def routine_of(session: StLinkTransport) -> CrcRoutine:
    assert isinstance(session.crc, CrcRoutine)
    return session.crc


@pytest.mark.parametrize("chip", representatives(), ids=lambda c: c.part)
def test_the_crc_routine_sums_flash_on_every_family(session_on: Open, world: SimulationWorld,
                                                    reported: Fallbacks, chip: Chip) -> None:
    session = session_on(chip.part)
    details = session.identify().details
    assert details["write_mode"] in ("fast", "safe")
    assert details["checksum"] == "on-target CRC (CRC routine)"
    assert Capability.CHECKSUM in session.capabilities
    data = os.urandom(4 * 1024)
    starts = [chip.flash.base]
    if chip.flash.bank2_base is not None:
        starts.append(chip.flash.bank2_base - len(data) // 2)  # across the bank boundary
    assert routine_of(session).runs == 0   # nothing runs until a compare or verify needs it
    for start in starts:
        session.erase(chip.flash.blocks_covering(start, len(data)))
        session.write(start, data)
        assert session.checksum(start, len(data)).value == stm32_crc32(data)  # loads it first
        before = len(probe_of(world).commands)
        assert session.checksum(start, len(data)).value == stm32_crc32(data)
        assert len(probe_of(world).commands) - before < 16   # not a read-back
    assert routine_of(session).runs == 1 + 2 * len(starts)   # the self-check, then each sum
    assert reported == []


def test_the_checked_in_crc_routine_is_what_its_source_assembles_to(tmp_path: Path) -> None:
    if shutil.which("arm-none-eabi-as") is None:
        pytest.skip("the GNU ARM assembler (binutils-arm-none-eabi) is not installed")
    assert assembled("stm32_crc.s", tmp_path) == (LOADERS / "stm32_crc.bin").read_bytes()


def test_the_routine_leaves_the_core_halted_for_the_register_path(session_on: Open,
                                                                 world: SimulationWorld) -> None:
    session = session_on("stm32f103c8")
    assert session.link is not None
    first, second = os.urandom(1024), os.urandom(1024)
    session.erase(session.chip.flash.blocks[:2])
    session.write(0x08000000, first)
    assert session.checksum(0x08000000, 1024).value == stm32_crc32(first)
    assert session.link.read_word(DHCSR) & S_HALT
    session.write(0x08000400, second)  # the register path right after a CRC run
    assert world.chips["board"].flash[:2048] == first + second
    assert session.checksum(0x08000000, 2048).value == stm32_crc32(first + second)


def test_a_reset_makes_the_routine_check_itself_again(session_on: Open) -> None:
    session = session_on("stm32f411re")
    routine = routine_of(session)
    session.checksum(0x08000000, 1024)
    runs = routine.runs
    session.reset(ResetMode.HALT)
    assert not routine.loaded
    assert session.checksum(0x08000000, 1024).value == stm32_crc32(b"\xff" * 1024)
    assert routine.runs == runs + 2   # its self-check, then the sum


@pytest.mark.parametrize(("patch", "why"), [
    ((EORS_WORD, NOP), "self-check computed 0x[0-9A-F]{8} for a known SRAM pattern"),
    ((LOOP, SPIN), "did not finish in time"),
    ((LOOP, UDF), "faulted"),
    ((STORE_STOP, STORE_R1_AS_STOP), "stopped at 0x00000000.*cannot be right"),
], ids=["wrong-result", "timeout", "fault", "impossible-stop"])
def test_a_broken_routine_is_caught_at_its_first_use_and_reads_back_loudly(
        session_on: Open, world: SimulationWorld, reported: Fallbacks,
        monkeypatch: pytest.MonkeyPatch, patch: tuple[int, bytes], why: str) -> None:
    broken = patched(*patch)
    monkeypatch.setattr("transports.stlink.loaders.crc.crc_routine", lambda: broken)
    session = session_on("stm32f103c8")
    assert routine_of(session).runs == 0 and reported == []   # not run before it is needed
    data = os.urandom(2048)
    session.erase(session.chip.flash.blocks_covering(0x08000000, len(data)))
    session.write(0x08000000, data)
    assert session.checksum(0x08000000, len(data)).value == stm32_crc32(data)  # read back
    details = session.identify().details
    assert details["checksum"] == "read-back"
    assert details["write_mode"] == "fast"   # the write path is not affected
    [(feature, instead, reason)] = reported
    assert (feature, instead) == ("the on-target CRC", "read-back")
    assert re.search(why, reason)
    assert Capability.CHECKSUM not in session.capabilities
    assert world.chips["board"].flash[:len(data)] == data


def test_a_routine_that_breaks_mid_session_falls_back_to_read_back_at_once(
        session_on: Open, reported: Fallbacks) -> None:
    session = session_on("stm32f411re")
    routine = routine_of(session)
    assert session.link is not None
    assert session.checksum(0x08000000, 1024).value == stm32_crc32(b"\xff" * 1024)
    session.link.write_memory(routine.base + LOOP - 2, SPIN * 2)  # its code overwritten
    data = os.urandom(1024)
    session.erase(session.chip.flash.blocks[:1])
    session.write(0x08000000, data)
    assert session.checksum(0x08000000, len(data)).value == stm32_crc32(data)
    assert [r[:2] for r in reported] == [("the on-target CRC", "read-back")]
    assert "did not finish in time" in reported[0][2]
    assert Capability.CHECKSUM not in session.capabilities and session.crc is None
    assert session.identify().details["checksum"] == "read-back"


def test_too_little_sram_for_the_routine_reads_back_with_a_note(
        session_on: Open, reported: Fallbacks) -> None:
    f103 = chip_database().part("stm32f103c8")
    tiny = dataclasses.replace(f103, ram=(f103.ram[0], f103.ram[0] + 1024))
    assert Capability.CHECKSUM not in StLinkTransport.planned_capabilities({}, tiny)
    session = session_on(tiny)
    details = session.identify().details
    assert details["checksum"] == "read-back"
    assert "1024 bytes of SRAM cannot hold the on-target CRC routine" in details["checksum_note"]
    assert reported == []   # planned so: a note, not a warning
    assert session.checksum(0x08000000, 64).value == stm32_crc32(b"\xff" * 64)


def test_on_target_crc_false_reads_back(session_on: Open, reported: Fallbacks) -> None:
    session = session_on("stm32f411re", options={"on-target-crc": False})
    assert session.crc is None and Capability.CHECKSUM not in session.capabilities
    assert session.identify().details["checksum_note"] == "on-target-crc: false"
    assert reported == []


def test_the_loader_mode_sums_with_the_loaders_own_crc(session_on: Open) -> None:
    session = session_on("stm32f411re", options={"write-mode": "loader"})
    assert session.identify().details["checksum"] == "on-target CRC (RAM loader)"
    assert session.driver is not None and session.crc is session.driver.loader


def test_a_hot_plug_connect_leaves_the_running_programs_sram_alone(
        session_on: Open, world: SimulationWorld, reported: Fallbacks) -> None:
    chip = chip_database().part("stm32f411re")
    assert Capability.CHECKSUM not in StLinkTransport.planned_capabilities(
        {"connect": "hot-plug"}, chip)
    session = session_on(chip, options={"connect": "hot-plug"})
    assert session.crc is None and "hot-plug" in session.identify().details["checksum_note"]
    marker = os.urandom(2048)
    world.chips["board"].write_ram(chip.ram[0], marker)
    assert session.checksum(0x08000000, 64).value == stm32_crc32(b"\xff" * 64)
    assert world.chips["board"].read_memory(chip.ram[0], 2048) == marker
    assert reported == []
