"""The simulated target's core and debug view, as a debugger sees them over SWD."""

from __future__ import annotations

import struct

import pytest

from tests.stlink.conftest import Open, probe_of
from transports.base import ResetMode
from transports.sim import SimulationWorld
from transports.stlink.protocol import MemoryFault, StLink

DHCSR, DCRSR, DCRDR, DFSR, DEMCR = 0xE000EDF0, 0xE000EDF4, 0xE000EDF8, 0xE000ED30, 0xE000EDFC
KEY = 0xA05F0000
S_HALT, S_LOCKUP = 1 << 17, 1 << 19
SRAM = 0x20000000


def set_register(link: StLink, regsel: int, value: int) -> None:
    link.write_word(DCRDR, value)
    link.write_word(DCRSR, regsel | 1 << 16)


def get_register(link: StLink, regsel: int) -> int:
    link.write_word(DCRSR, regsel)
    return link.read_word(DCRDR)


def run(link: StLink, code: bytes, **registers: int) -> int:
    """Load ``code`` at SRAM, run it to its bkpt, return DHCSR afterwards."""
    link.write_word(DHCSR, KEY | 0x3)
    link.write_memory(SRAM, code + b"\0" * (-len(code) % 4))
    for name, value in registers.items():
        set_register(link, int(name[1:]), value)
    set_register(link, 15, SRAM)
    set_register(link, 16, 1 << 24)
    link.write_word(DHCSR, KEY | 0x1)
    for _ in range(10):
        status = link.read_word(DHCSR)
        if status & S_HALT:
            break
    return status


#: movs r0, #42 ; adds r1, r1, r0 ; bkpt #0
ADD = bytes.fromhex("2a20 0918 00be".replace(" ", ""))


def test_code_in_sram_runs_to_its_bkpt_and_halts(open_session: Open) -> None:
    session = open_session("stm32f103c8")
    link = session.link
    assert link is not None
    link.write_word(DFSR, 0x1F)
    status = run(link, ADD, r1=100)
    assert status & S_HALT
    assert link.read_word(DFSR) & 0x2  # DFSR.BKPT
    assert get_register(link, 0) == 42 and get_register(link, 1) == 142
    assert get_register(link, 15) == SRAM + 4  # halted on the bkpt


def test_a_store_from_the_core_reaches_the_flash_controller(open_session: Open,
                                                           world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    link = session.link
    assert link is not None
    # str r1, [r0] ; str r2, [r0] ; bkpt: the unlock keys into FPEC KEYR.
    status = run(link, bytes.fromhex("01600260 00be".replace(" ", "")),
                 r0=0x40022004, r1=0x45670123, r2=0xCDEF89AB)
    assert status & S_HALT
    assert not link.read_word(0x40022010) & 0x80  # CR.LOCK cleared by the core


def test_clearing_the_thumb_bit_faults_like_silicon(open_session: Open) -> None:
    """ARMv7-M B1.4.2: executing with EPSR.T clear is an INVSTATE fault."""
    session = open_session("stm32f103c8")
    link = session.link
    assert link is not None
    link.write_word(DEMCR, 0)  # no vector catch: the core locks up
    link.write_word(DHCSR, KEY | 0x3)
    link.write_memory(SRAM, ADD + b"\0\0")
    set_register(link, 15, SRAM)
    set_register(link, 16, 0)
    link.write_word(DHCSR, KEY | 0x1)
    status = link.read_word(DHCSR)
    assert status & S_LOCKUP and not status & S_HALT


def test_registers_are_read_only_while_halted(open_session: Open) -> None:
    session = open_session("stm32f103c8")
    link = session.link
    assert link is not None
    set_register(link, 3, 0x1234)
    assert get_register(link, 3) == 0x1234


def test_reset_loads_sp_pc_and_the_thumb_bit_from_the_vector_table(
        open_session: Open, world: SimulationWorld) -> None:
    """ARMv7-M B1.5.5: SP from word 0, PC from word 1, EPSR.T from its bit 0."""
    session = open_session("stm32f411re")
    world.chips["board"].program(0x08000000, struct.pack("<II", 0x20020000, 0x080001C1),
                                 timed=False)
    session.reset(ResetMode.HALT)
    link = session.link
    assert link is not None
    assert get_register(link, 13) == 0x20020000
    assert get_register(link, 15) == 0x080001C0
    assert get_register(link, 16) & (1 << 24)


@pytest.mark.parametrize("offset,value", [(0xFF0, 0x0D), (0xFF4, 0x10), (0xFF8, 0x05),
                                          (0xFFC, 0xB1)])
def test_the_rom_table_answers_its_component_id(open_session: Open, offset: int,
                                                value: int) -> None:
    session = open_session("stm32f411re")
    assert session.link is not None
    assert session.link.read_word(0xE00FF000 + offset) == value


def test_the_rom_table_lists_the_scs_whose_id_reads_back(open_session: Open) -> None:
    session = open_session("stm32f411re")
    link = session.link
    assert link is not None
    entry = link.read_word(0xE00FF000)
    assert entry & 1
    scs = (0xE00FF000 + (entry & ~0xFFF)) & 0xFFFFFFFF
    assert scs == 0xE000E000
    assert link.read_word(scs + 0xFFC) == 0xB1
    assert (link.read_word(scs + 0xFF4) >> 4) == 0xE  # a generic IP component


@pytest.mark.parametrize("address", [0x1FFF0000, 0x1FFF7800, 0x1FFF7A00, 0xE000ED28,
                                     0xE0002000, 0xE0001000, 0x40023C18])
def test_areas_silicon_reads_do_not_fault_over_swd(open_session: Open, address: int) -> None:
    """System memory, F4 OTP and its lock bytes, CFSR, FPB, DWT, OPTCR1 (RM0090 §3.8)."""
    session = open_session("stm32f411re")
    assert session.link is not None
    session.link.read_memory(address, 16)


def test_erased_otp_reads_all_ones(open_session: Open) -> None:
    session = open_session("stm32f411re")
    assert session.link is not None
    assert session.link.read_memory(0x1FFF7800, 32) == b"\xff" * 32


def test_unmapped_memory_still_faults(open_session: Open) -> None:
    session = open_session("stm32f411re")
    assert session.link is not None
    with pytest.raises(MemoryFault):
        session.link.read_word(0x30000000)


def test_f4_eop_is_set_only_when_eopie_is_enabled(open_session: Open,
                                                  world: SimulationWorld) -> None:
    """RM0090 §3.9.5: EOP "is set only if the end of operation interrupts are enabled"."""
    session = open_session("stm32f411re")
    link = session.link
    assert link is not None and session.driver is not None
    sr, cr = 0x40023C0C, 0x40023C10
    session.driver.unlock()
    for eopie in (0, 1 << 24):
        link.write_word(sr, 0xF3)
        link.write_word(cr, (1 << 1) | (1 << 3) | (2 << 8) | eopie)  # SER sector 1
        link.write_word(cr, (1 << 1) | (1 << 3) | (2 << 8) | eopie | (1 << 16))
        while link.read_word(sr) & (1 << 16):
            link.timebase.sleep(0.01)
        assert bool(link.read_word(sr) & 1) == bool(eopie)
    assert probe_of(world).target is not None


#: ldr r0, [r1] ; bkpt #0
LOAD = bytes.fromhex("0868 00be".replace(" ", ""))
FLASH = 0x08000000


def test_the_core_reads_the_flash_array_as_programmed(open_session: Open) -> None:
    session = open_session("stm32f103c8")
    link = session.link
    assert link is not None
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, struct.pack("<II", 0x12345678, 0x9ABCDEF0))
    assert run(link, LOAD, r1=FLASH + 4) & S_HALT
    assert get_register(link, 0) == 0x9ABCDEF0


def test_a_core_read_of_flash_waits_for_an_erase_under_way(open_session: Open,
                                                          world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    link = session.link
    assert link is not None
    target = probe_of(world).target
    assert target is not None
    link.write_word(0x40022004, 0x45670123)
    link.write_word(0x40022004, 0xCDEF89AB)
    link.write_word(0x40022010, 0x2)          # CR.PER
    link.write_word(0x40022014, FLASH)        # AR: page 0
    link.write_word(0x40022010, 0x42)         # PER | STRT
    busy_until = target.controller.busy_until
    assert run(link, LOAD, r1=FLASH) & S_HALT
    assert get_register(link, 0) == 0xFFFFFFFF
    assert target.core.time >= busy_until     # the load was held until the erase ended


def test_a_core_read_of_protected_flash_is_a_bus_fault(open_session: Open,
                                                      world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    link = session.link
    target = probe_of(world).target
    assert link is not None and target is not None
    target.sim.set_rdp_level(1, erase_on_regression=False)
    link.write_word(DEMCR, 0)
    status = run(link, LOAD, r1=FLASH)
    assert status & S_LOCKUP
    assert target.core.fault is not None and "readout protection" in target.core.fault


def test_the_core_runs_its_slices_with_the_gil_held(open_session: Open,
                                                    world: SimulationWorld) -> None:
    # transports/sim/stlink/emulator_calls.py: without it a large rehearsal's cores
    # wait behind every other thread at each bus cycle they hand to the simulator.
    import ctypes

    from unicorn.unicorn_py3 import unicorn as binding

    session = open_session("stm32f103c8")
    link = session.link
    assert link is not None
    assert run(link, ADD, r1=1) & S_HALT
    target = probe_of(world).target
    assert target is not None
    assert target.core._uc is not None   # the core made its emulator
    assert isinstance(binding.uclib, ctypes.PyDLL)


#: loop: ldr r3, [r1] ; adds r0, r0, r3 ; adds r1, #4 ; subs r2, #1 ; bne loop ; bkpt
SUM = bytes.fromhex("0b68 c018 0431 013a fad1 00be".replace(" ", ""))
#: ldr r0, [r1] ; strh r2, [r1] ; ldr r3, [r1] ; bkpt
LOAD_PROGRAM_LOAD = bytes.fromhex("0868 0a80 0b68 00be".replace(" ", ""))


def test_loads_from_an_idle_flash_array_stay_inside_the_emulator(
        open_session: Open, world: SimulationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    session = open_session("stm32f103c8")
    link = session.link
    assert link is not None
    words = [0x01020304 * (i + 1) & 0xFFFFFFFF for i in range(256)]
    session.erase(session.chip.flash.blocks[:1])
    session.write(FLASH, struct.pack(f"<{len(words)}I", *words))
    target = probe_of(world).target
    assert target is not None
    calls: list[int] = []
    real = target.core._bus_read

    def counted(uc: object, offset: int, size: int, base: int) -> int:
        calls.append(base + offset)
        return real(uc, offset, size, base)

    monkeypatch.setattr(target.core, "_bus_read", counted)
    assert run(link, SUM, r0=0, r1=FLASH, r2=len(words)) & S_HALT
    assert get_register(link, 0) == sum(words) & 0xFFFFFFFF
    assert not [a for a in calls if FLASH <= a < FLASH + session.chip.flash.size]


def test_a_store_to_the_array_after_direct_loads_is_one_program_cycle(
        open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    link = session.link
    target = probe_of(world).target
    assert link is not None and target is not None
    session.erase(session.chip.flash.blocks[:1])
    link.write_word(0x40022004, 0x45670123)   # FPEC KEYR
    link.write_word(0x40022004, 0xCDEF89AB)
    link.write_word(0x40022010, 0x1)          # CR.PG
    before = target.sim.stats.bytes_programmed
    assert run(link, LOAD_PROGRAM_LOAD, r1=FLASH + 8, r2=0xBEEF) & S_HALT
    assert get_register(link, 0) == 0xFFFFFFFF            # read before, directly
    assert get_register(link, 3) & 0xFFFF == 0xBEEF       # read after, through the bus
    assert target.sim.stats.bytes_programmed - before == 2  # programmed once, not replayed
    assert not link.read_word(0x4002200C) & 0x14          # SR: no PGERR, no WRPRTERR
