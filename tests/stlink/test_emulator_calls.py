"""The simulated core's emulator calls: the GIL-holding ones do what the binding's do."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
import unicorn
from unicorn import arm_const as arm

from transports.sim.stlink.emulator_calls import BindingCalls, HeldCalls, held_calls

RAM = 0x20000000
#: movs r0, #5; adds r0, #7; bkpt #0
ADD = bytes.fromhex("0520 0730 00be".replace(" ", ""))
#: movs r1, #0; loop: adds r1, #1; b loop   (runs until its instruction count is spent)
SPIN = bytes.fromhex("0021 0131 fde7".replace(" ", ""))


def _engine(program: bytes) -> tuple[Any, list[int]]:
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
    uc.mem_map(RAM, 0x1000)
    uc.mem_write(RAM, program)
    stops: list[int] = []
    return uc, stops


def _calls(kind: str, uc: Any) -> HeldCalls | BindingCalls:
    if kind == "held":
        calls = held_calls(uc)
        assert calls is not None, "the installed unicorn binding exposes its engine handle"
        return calls
    return BindingCalls(uc)


@pytest.mark.parametrize("kind", ["held", "binding"])
def test_both_call_sets_run_a_program_to_its_breakpoint(kind: str) -> None:
    uc, stops = _engine(ADD)
    calls = _calls(kind, uc)

    def on_interrupt(_uc: Any, number: int, _data: Any) -> None:
        stops.append(number)
        calls.emu_stop()

    uc.hook_add(unicorn.UC_HOOK_INTR, on_interrupt)
    calls.reg_write(arm.UC_ARM_REG_R0, 0xFFFFFFFF)
    calls.emu_start(RAM | 1, 0xFFFFFFFF, 100)
    assert stops == [7]                       # EXCP_BKPT
    assert calls.reg_read(arm.UC_ARM_REG_R0) == 12
    assert calls.reg_read(arm.UC_ARM_REG_PC) == RAM + 4
    calls.mem_write(RAM + 0x100, b"\x01\x02\x03\x04")
    assert calls.mem_read(RAM + 0x100, 4) == b"\x01\x02\x03\x04"


@pytest.mark.parametrize("kind", ["held", "binding"])
def test_an_exception_in_a_hook_ends_the_slice_and_is_raised(kind: str) -> None:
    uc, _ = _engine(ADD)
    calls = _calls(kind, uc)

    def on_interrupt(_uc: Any, _number: int, _data: Any) -> None:
        raise LookupError("from the hook")

    uc.hook_add(unicorn.UC_HOOK_INTR, on_interrupt)
    with pytest.raises(LookupError, match="from the hook"):
        calls.emu_start(RAM | 1, 0xFFFFFFFF, 100)


def test_an_invalid_access_is_the_bindings_error() -> None:
    uc, _ = _engine(ADD)
    calls = _calls("held", uc)
    with pytest.raises(unicorn.UcError):
        calls.mem_read(0x60000000, 4)


@pytest.mark.parametrize("kind", ["held", "binding"])
def test_only_the_held_calls_keep_the_gil_for_the_whole_slice(kind: str) -> None:
    # No other Python thread runs while the core executes: callbacks into the
    # simulator then never wait behind the other threads of a large rehearsal.
    # The switch interval is made long, so the GIL changes hands only when it is
    # let go: in a sleep of the other thread, or in a foreign call that releases it.
    uc, _ = _engine(SPIN)
    calls = _calls(kind, uc)
    ticks = [0]
    running = threading.Event()
    stop = threading.Event()

    def count() -> None:
        running.set()
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.0001)

    interval = sys.getswitchinterval()
    other = threading.Thread(target=count)
    sys.setswitchinterval(100.0)
    try:
        other.start()
        running.wait(5)
        before = ticks[0]
        calls.emu_start(RAM | 1, 0xFFFFFFFF, 5_000_000)
        during = ticks[0] - before
    finally:
        stop.set()
        sys.setswitchinterval(interval)
        other.join(5)
    assert calls.reg_read(arm.UC_ARM_REG_R1) > 1_000_000   # the loop ran
    if kind == "held":
        assert during == 0
    else:
        assert during > 0
