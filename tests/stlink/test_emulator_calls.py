"""The simulated core's emulator calls keep the GIL, and still do what the binding's do."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
import unicorn
from unicorn import arm_const as arm

from transports.sim.stlink.emulator_calls import hold_the_gil

RAM = 0x20000000
#: movs r0, #5; adds r0, #7; bkpt #0
ADD = bytes.fromhex("0520 0730 00be".replace(" ", ""))
#: movs r1, #0; loop: adds r1, #1; b loop   (runs until its instruction count is spent)
SPIN = bytes.fromhex("0021 0131 fde7".replace(" ", ""))


def _engine(program: bytes) -> Any:
    assert hold_the_gil(), "the installed unicorn binding can be pointed at a PyDLL view"
    uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
    uc.mem_map(RAM, 0x1000)
    uc.mem_write(RAM, program)
    return uc


def test_a_program_runs_to_its_breakpoint() -> None:
    uc = _engine(ADD)
    stops: list[int] = []

    def on_interrupt(_uc: Any, number: int, _data: Any) -> None:
        stops.append(number)
        uc.emu_stop()

    uc.hook_add(unicorn.UC_HOOK_INTR, on_interrupt)
    uc.reg_write(arm.UC_ARM_REG_R0, 0xFFFFFFFF)
    uc.emu_start(RAM | 1, 0xFFFFFFFF, count=100)
    assert stops == [7]                       # EXCP_BKPT
    assert uc.reg_read(arm.UC_ARM_REG_R0) == 12
    assert uc.reg_read(arm.UC_ARM_REG_PC) == RAM + 4
    uc.mem_write(RAM + 0x100, b"\x01\x02\x03\x04")
    assert bytes(uc.mem_read(RAM + 0x100, 4)) == b"\x01\x02\x03\x04"


def test_an_exception_in_a_hook_ends_the_slice_and_is_raised() -> None:
    uc = _engine(ADD)

    def on_interrupt(_uc: Any, _number: int, _data: Any) -> None:
        raise LookupError("from the hook")

    uc.hook_add(unicorn.UC_HOOK_INTR, on_interrupt)
    with pytest.raises(LookupError, match="from the hook"):
        uc.emu_start(RAM | 1, 0xFFFFFFFF, count=100)


def test_an_invalid_access_is_still_the_bindings_error() -> None:
    uc = _engine(ADD)
    with pytest.raises(unicorn.UcError):
        uc.mem_read(0x60000000, 4)


def test_a_slice_and_the_engines_set_up_keep_the_gil() -> None:
    # No other Python thread runs while the core executes or its engine is made:
    # callbacks into the simulator then never wait behind the other threads of a
    # large rehearsal. The switch interval is made long, so the GIL changes hands
    # only when it is let go: in the other thread's sleep, or in a foreign call
    # that releases it (as the binding's own ctypes calls do).
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
        uc = _engine(SPIN)
        uc.mmio_map(0x40000000, 0x1000, lambda *_: 0, None, lambda *_: None, None)
        uc.ctl_flush_tb()
        uc.emu_start(RAM | 1, 0xFFFFFFFF, count=5_000_000)
        during = ticks[0] - before
    finally:
        stop.set()
        sys.setswitchinterval(interval)
        other.join(5)
    assert uc.reg_read(arm.UC_ARM_REG_R1) > 1_000_000   # the loop ran
    assert during == 0
