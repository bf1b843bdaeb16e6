"""The RAM flash loader, run by the simulated core against the simulated flash controllers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from runner.errors import ConnectError, WriteError
from tests.stlink.conftest import LOADERS, Open, assembled, probe_of
from tests.stlink.test_families import representatives
from transports.checksums import stm32_crc32
from transports.chips import Chip
from transports.sim import SimulationWorld
from transports.stlink.loaders import LoaderError, LoaderImage, RamLoader, flash_loader

FLASH = 0x08000000
WRITEMEM_16BIT = 0x48
#: Offsets in stm32_flash.bin (see its disassembly): the BSY poll's branch back,
#: the half-word read-back check (ldrh, cmp, bne: three instructions).
POLL_BRANCH, HALF_WORD_CHECK = 0x34, 0x42
NOP, SPIN, UDF = b"\x00\xbf", b"\xfe\xe7", b"\x00\xde"


def patched(offset: int, code: bytes, *more: tuple[int, bytes]) -> LoaderImage:
    body = bytearray(flash_loader().code)
    for at, patch in ((offset, code), *more):
        body[at:at + len(patch)] = patch
    return LoaderImage(name="patched", code=bytes(body))


def test_an_f103_behind_a_v1_is_flashed_and_verified_through_the_loader(
        open_session: Open, world: SimulationWorld) -> None:
    """PM0075 §2.3.3: the FPEC bus-faults 32-bit writes, and a V1 has no 16-bit ones."""
    session = open_session("stm32f103c8", quirks={"probe": "v1"})
    assert session.identify().details["write_mode"] == "loader"
    data = os.urandom(20 * 1024)
    session.erase(session.chip.flash.blocks_covering(FLASH, len(data)))
    session.write(FLASH, data)
    assert session.read(FLASH, len(data)) == data
    assert session.checksum(FLASH, len(data)).value == stm32_crc32(data)
    assert world.chips["board"].flash[:len(data)] == data
    assert WRITEMEM_16BIT not in {sub for cmd, sub in probe_of(world).commands if cmd == 0xF2}


def test_the_register_path_cannot_write_an_f1_behind_a_v1(open_session: Open,
                                                         world: SimulationWorld) -> None:
    with pytest.raises(ConnectError, match="cannot write half-words"):
        open_session("stm32f103c8", quirks={"probe": "v1"}, options={"write-mode": "fast"})
    assert world.chips["board"].stats.blocks_erased == 0


def test_a_32_bit_write_into_f1_flash_is_a_bus_error(open_session: Open,
                                                    world: SimulationWorld) -> None:
    from transports.stlink.protocol import MemoryFault

    session = open_session("stm32f103c8")
    assert session.link is not None and session.driver is not None
    session.driver.unlock()
    session.link.write_word(0x40022010, 1)  # CR.PG
    with pytest.raises(MemoryFault):
        session.link.write_block(FLASH, b"\x00\x11\x22\x33", 4)
    assert world.chips["board"].flash[:4] == b"\xff" * 4


@pytest.mark.parametrize("chip", representatives(), ids=lambda c: c.part)
def test_the_loader_programs_and_sums_every_family(open_session: Open, world: SimulationWorld,
                                                   chip: Chip) -> None:
    session = open_session(chip.part, options={"write-mode": "loader"})
    assert session.identify().details["write_mode"] == "loader"
    data = os.urandom(8 * 1024)
    starts = [chip.flash.base]
    if chip.flash.bank2_base is not None:
        starts.append(chip.flash.bank2_base - len(data) // 2)  # across the bank boundary
    for start in starts:
        session.erase(chip.flash.blocks_covering(start, len(data)))
        session.write(start, data)
        assert world.chips["board"].read_flash(start, len(data)) == data
        assert session.checksum(start, len(data)).value == stm32_crc32(data)
    assert session.driver is not None and session.driver.loader is not None
    assert session.driver.loader.runs > 2


def test_an_unaligned_tail_is_summed_with_erased_padding(open_session: Open) -> None:
    session = open_session("stm32f411re", options={"write-mode": "loader"})
    data = os.urandom(1026)
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, data + b"\xff\xff")
    assert session.checksum(FLASH, len(data)).value == stm32_crc32(data + b"\xff\xff")


def test_a_checksum_costs_a_few_bytes_on_the_wire(open_session: Open,
                                                  world: SimulationWorld) -> None:
    session = open_session("stm32f411re", options={"write-mode": "loader"})
    data = os.urandom(64 * 1024)
    session.erase(session.chip.flash.blocks_covering(FLASH, len(data)))
    session.write(FLASH, data)
    before = len(probe_of(world).commands)
    assert session.checksum(FLASH, len(data)).value == stm32_crc32(data)
    assert len(probe_of(world).commands) - before < 20


def test_the_loader_is_offered_as_the_checksum_capability() -> None:
    from transports.base import Capability
    from transports.chips import chip_database
    from transports.stlink import StLinkTransport

    chip = chip_database().part("stm32f103c8")
    assert Capability.CHECKSUM in StLinkTransport.planned_capabilities(
        {"write-mode": "loader"}, chip)
    assert Capability.CHECKSUM not in StLinkTransport.planned_capabilities(
        {"write-mode": "loader", "on-target-crc": False}, chip)


def test_a_loader_that_never_halts_times_out_loudly(open_session: Open) -> None:
    session = open_session("stm32f103c8", options={"write-mode": "safe"})
    assert session.link is not None
    loader = RamLoader(session.link, session.chip, patched(4, SPIN))  # program: b .
    loader.load()
    session.erase(session.chip.flash.blocks[:1])
    assert session.driver is not None
    session.driver.loader = loader
    with pytest.raises(LoaderError, match="did not finish in time"):
        session.write(FLASH, os.urandom(1024))


def test_a_loader_that_faults_is_caught_by_the_vector_catch(open_session: Open) -> None:
    session = open_session("stm32f103c8", options={"write-mode": "safe"})
    assert session.link is not None and session.driver is not None
    session.driver.loader = RamLoader(session.link, session.chip, patched(4, UDF))
    session.erase(session.chip.flash.blocks[:1])
    with pytest.raises(LoaderError, match="faulted"):
        session.write(FLASH, os.urandom(1024))


def test_a_broken_loader_falls_back_to_the_register_path_at_connect(
        open_session: Open, world: SimulationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    from transports.stlink import writemode

    monkeypatch.setattr(writemode, "LOADER_PROVEN", frozenset({"f1"}))
    broken = patched(2, UDF)  # the CRC entry faults: the self-check at connect fails
    monkeypatch.setattr("transports.stlink.loaders.ram.flash_loader", lambda: broken)
    session = open_session("stm32f103c8")
    details = session.identify().details
    assert details["write_mode"] == "fast"
    assert "faulted" in details["loader_fallback"]
    data = os.urandom(2048)
    session.erase(session.chip.flash.blocks_covering(FLASH, len(data)))
    session.write(FLASH, data)
    assert world.chips["board"].flash[:len(data)] == data


def test_a_broken_loader_with_no_fallback_refuses_before_erasing(
        open_session: Open, world: SimulationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = patched(2, SPIN)
    monkeypatch.setattr("transports.stlink.loaders.ram.flash_loader", lambda: broken)
    with pytest.raises(ConnectError, match="loader cannot be used.*did not finish"):
        open_session("stm32f103c8", quirks={"probe": "v1"})
    assert world.chips["board"].stats.blocks_erased == 0


def test_too_little_sram_for_the_loader_is_refused_at_connect(
        open_session: Open, world: SimulationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    from transports.stlink import writemode

    monkeypatch.setattr(writemode, "loader_fits", lambda chip: False)
    with pytest.raises(ConnectError, match="SRAM is too small"):
        open_session("stm32f103c8", quirks={"probe": "v1"})
    assert world.chips["board"].stats.blocks_erased == 0


def test_a_loader_that_does_not_wait_for_bsy_loses_writes_on_a_clone(
        open_session: Open, world: SimulationWorld) -> None:
    """APM32F103 drops a write issued while BSY is set; the verify afterwards sees it.

    (Without its read-back check: reading flash stalls until BSY clears, so
    the shipped loader's check alone already waits.)
    """
    session = open_session("stm32f103c8", quirks={"clone": "apm32"})
    assert session.link is not None and session.driver is not None
    broken = patched(POLL_BRANCH, NOP, (HALF_WORD_CHECK, NOP * 3))
    session.driver.loader = RamLoader(session.link, session.chip, broken)
    session.erase(session.chip.flash.blocks[:1])
    data = os.urandom(1024)
    session.write(FLASH, data)  # the broken loader reports success ...
    assert session.read(FLASH, len(data)) != data  # ... the verify finds the lost writes
    target = probe_of(world).target
    assert target is not None and target.controller.dropped_writes > 0


def test_a_loader_run_with_the_wrong_psize_fails_as_on_silicon(open_session: Open) -> None:
    """RM0090 §3.6.2: a word written at PSIZE x8 sets PGPERR."""
    session = open_session("stm32f411re", options={"write-mode": "loader"})
    driver = session.driver
    assert driver is not None and driver.loader is not None
    session.erase(session.chip.flash.blocks[:1])
    spans = driver.loader_spans(FLASH, 1024)
    assert spans is not None
    wrong = [type(spans[0])(**{**{f: getattr(spans[0], f) for f in spans[0].__slots__},
                               "setup": ((driver.base + 0x10, 1),)})]  # PG, PSIZE x8
    driver.unlock()
    with pytest.raises(WriteError, match="PGPERR"):
        driver.loader.program(wrong, os.urandom(1024))


def test_a_loader_writing_a_locked_controller_faults(open_session: Open) -> None:
    session = open_session("stm32f103c8", options={"write-mode": "loader"})
    driver = session.driver
    assert driver is not None and driver.loader is not None
    session.erase(session.chip.flash.blocks[:1])
    driver.lock()
    spans = driver.loader_spans(FLASH, 256)
    with pytest.raises(LoaderError, match="faulted"):
        driver.loader.program(spans, os.urandom(256))


def test_writing_over_data_reports_the_controller_flag(open_session: Open) -> None:
    session = open_session("stm32f103c8", options={"write-mode": "loader"})
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, b"\x00\x11" * 512)
    with pytest.raises(WriteError, match="PGERR") as info:
        session.write(FLASH, b"\x22\x33" * 512)
    assert info.value.address == FLASH


@pytest.mark.skipif(shutil.which("arm-none-eabi-as") is None,
                    reason="the GNU ARM assembler (binutils-arm-none-eabi) is not installed")
def test_the_checked_in_loader_is_what_its_source_assembles_to(tmp_path: Path) -> None:
    assert assembled("stm32_flash.s", tmp_path) == (LOADERS / "stm32_flash.bin").read_bytes()
