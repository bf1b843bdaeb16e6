"""A run of bus writes into simulated F1 flash ends exactly as its cycles one by one would.

The simulated FPEC takes a memory command's half-word writes as one run where
every cycle would program (genuine part, PG set, erased, unprotected); these
tests hold that path to the cycle-by-cycle one: same array, status, busy time
and clock, and the same refusals where the run must go cycle by cycle.
"""

from __future__ import annotations

import os

import pytest

from transports.chips import chip_database
from transports.sim.chip import SimChip
from transports.sim.clock import SimClock
from transports.sim.stlink.controller import KEY1, KEY2, BusFault
from transports.sim.stlink.flash_f1 import CR_PG, SR_EOP, SR_PGERR, SR_WRPRTERR, SimF1Controller
from transports.sim.stlink.identity import core_identity
from transports.sim.stlink.target import SimSwdTarget

FLASH = 0x08000000
FPEC = 0x40022000
KEYR, SR, CR = FPEC + 0x04, FPEC + 0x0C, FPEC + 0x10


def target(part: str = "stm32f103c8", *, writes_during_busy: str = "stall",
           unlock: bool = True, program: bool = True) -> SimSwdTarget:
    chip = chip_database().part(part)
    sim = SimChip(chip, clock=SimClock(0.0))
    controller = SimF1Controller(sim, writes_during_busy=writes_during_busy)
    swd = SimSwdTarget(sim, controller, core_identity(chip))
    if unlock:
        swd.write(KEYR, KEY1.to_bytes(4, "little"), 4)
        swd.write(KEYR, KEY2.to_bytes(4, "little"), 4)
    if program:
        swd.write(CR, CR_PG.to_bytes(4, "little"), 4)
    return swd


def cycle_by_cycle(swd: SimSwdTarget, address: int, data: bytes) -> None:
    """The reference: one bus cycle at a time, SWD time charged as the run charges it."""
    swd.charge(len(data) // 2)
    for offset in range(0, len(data), 2):
        swd.core_write(address + offset, data[offset:offset + 2])


def state(swd: SimSwdTarget) -> tuple[bytes, int, float, float]:
    controller = swd.controller
    sr = int.from_bytes(swd.read(SR, 4, 4), "little")
    return swd.sim.flash, sr, round(controller.busy_until, 12), round(swd.sim.clock.elapsed, 12)


def both(prepare: object = None, **options: object) -> tuple[SimSwdTarget, SimSwdTarget]:
    run, reference = target(**options), target(**options)  # type: ignore[arg-type]
    if callable(prepare):
        prepare(run)
        prepare(reference)
    return run, reference


def test_an_erased_range_is_programmed_as_its_cycles_would_program_it() -> None:
    data = os.urandom(1024)
    run, reference = both()
    run.write(FLASH + 0x400, data, 2)
    cycle_by_cycle(reference, FLASH + 0x400, data)
    assert state(run) == state(reference)
    assert run.sim.flash[0x400:0x800] == data
    assert state(run)[1] & SR_EOP
    # the bus was held for every half-word but the last, which is still programming
    assert run.controller.busy


def test_a_run_over_programmed_half_words_sets_pgerr_and_programs_the_rest() -> None:
    data = bytes(range(256)) * 2

    def half_programmed(swd: SimSwdTarget) -> None:
        swd.sim.program(FLASH + 0x10, b"\x12\x34\x56\x78", timed=False)

    run, reference = both(half_programmed)
    run.write(FLASH, data, 2)
    cycle_by_cycle(reference, FLASH, data)
    assert state(run) == state(reference)
    assert state(run)[1] & SR_PGERR
    assert run.sim.flash[:0x10] == data[:0x10]
    assert run.sim.flash[0x10:0x14] == b"\x12\x34\x56\x78"


def test_zeros_written_over_data_are_taken_as_the_cycles_take_them() -> None:
    def programmed(swd: SimSwdTarget) -> None:
        swd.sim.program(FLASH, b"\x12\x34" * 8, timed=False)

    run, reference = both(programmed)
    run.write(FLASH, bytes(16), 2)
    cycle_by_cycle(reference, FLASH, bytes(16))
    assert state(run) == state(reference)
    assert run.sim.flash[:16] == bytes(16)


def test_a_run_into_a_write_protected_page_sets_wrprterr_as_its_cycles_would() -> None:
    data = os.urandom(2048)

    def protect_page_one(swd: SimSwdTarget) -> None:
        swd.sim.write_protect([1])

    run, reference = both(protect_page_one)
    run.write(FLASH + 0x200, data, 2)
    cycle_by_cycle(reference, FLASH + 0x200, data)
    assert state(run) == state(reference)
    assert state(run)[1] & SR_WRPRTERR
    assert run.sim.flash[0x200:0x400] == data[:0x200]
    assert run.sim.flash[0x400:0x800] == b"\xff" * 0x400


def test_a_clone_that_drops_writes_while_busy_drops_them_in_a_run_too() -> None:
    data = os.urandom(64)
    run, reference = both(writes_during_busy="drop")
    run.write(FLASH, data, 2)
    cycle_by_cycle(reference, FLASH, data)
    assert state(run) == state(reference)
    assert run.controller.dropped_writes == reference.controller.dropped_writes == 31
    assert run.sim.flash[2:64] == b"\xff" * 62


def test_a_run_waits_for_an_operation_still_under_way() -> None:
    data = os.urandom(512)

    def busy_erasing(swd: SimSwdTarget) -> None:
        swd.controller.occupy(0.02)

    run, reference = both(busy_erasing)
    run.write(FLASH, data, 2)
    cycle_by_cycle(reference, FLASH, data)
    assert state(run) == state(reference)
    assert run.sim.clock.elapsed > 0.02


@pytest.mark.parametrize(("options", "why"), [
    ({"unlock": False}, "without PG"),
    ({"program": False}, "without PG"),
])
def test_a_run_without_pg_faults_on_its_first_cycle(options: dict[str, bool], why: str) -> None:
    swd = target(**options)  # type: ignore[arg-type]
    with pytest.raises(BusFault, match=why) as info:
        swd.write(FLASH, os.urandom(64), 2)
    assert info.value.address == FLASH
    assert swd.sim.flash[:64] == b"\xff" * 64


@pytest.mark.parametrize("width", [1, 4])
def test_a_run_that_is_not_half_words_is_a_bus_error_before_anything_is_written(
        width: int) -> None:
    swd = target()
    with pytest.raises(BusFault, match="bit writes to flash are a bus error"):
        swd.write(FLASH, os.urandom(64), width)
    assert swd.sim.flash[:64] == b"\xff" * 64


def test_a_run_across_the_banks_of_an_xl_part_programs_each_bank_by_its_own_registers() -> None:
    chip = chip_database().part("stm32f103zg")
    bank2 = chip.flash.bank2_base
    assert bank2 is not None
    swd = target("stm32f103zg")  # bank 1 unlocked with PG; bank 2 still locked
    with pytest.raises(BusFault, match="without PG") as info:
        swd.write(bank2 - 0x100, os.urandom(0x200), 2)
    assert info.value.address == bank2
    assert swd.sim.flash[bank2 - FLASH - 0x100:bank2 - FLASH] != b"\xff" * 0x100
