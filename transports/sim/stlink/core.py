"""The Cortex-M core of a simulated target: Thumb code run from SRAM by a CPU emulator.

A host that runs its own code on the target (a RAM flash loader, pyOCD's flash
algorithms) loads it into SRAM, sets the core registers through DCRSR/DCRDR,
clears C_HALT in DHCSR and polls S_HALT until the code stops at a ``bkpt``
(ARMv7-M C1.6: with C_DEBUGEN set, BKPT halts the core in Debug state and sets
DFSR.BKPT). This module executes that code with ``unicorn`` against the very
register models the host's own register path talks to: every store outside
SRAM, and every load but one from an idle flash array, is a bus cycle handed to
:class:`~transports.sim.stlink.target.SimSwdTarget`, so a loader with the wrong
PSIZE, one that does not wait for BSY on a part that drops such writes, or one
that writes a locked controller fails exactly as the host path would. While
the array is readable (RDP 0) and no operation is under way, it is mapped
read-only over the chip's own bytes and the emulator loads from it directly
(a CRC of 8 KiB is 2,048 loads); the first store to it, or an operation the
core or the host starts, turns it back into bus cycles, the store replayed
as one.

Time: the core runs concurrently with the host in simulated time. It is run
lazily: before the probe handles an access, the core catches up to the host's
clock, executing one instruction per cycle of the part's reset clock (HSI/MSI;
a loader does not touch RCC). During that catch-up the flash controller sees
the core's own time, so programming overlaps USB transfers as on silicon;
inside a catch-up, time advances by a few cycles per bus access outside SRAM
(the instructions between them), and by one cycle per instruction otherwise
(a direct load from the array is one instruction). A polling loop that reads a busy status
register twice in a row is fast-forwarded to the end of the operation instead
of being stepped through.

What is not modelled: exceptions and interrupts (a fault halts the core with
DFSR.VCATCH when DEMCR catches hard faults, else locks it up), code run from
flash (an application after reset "runs" without being executed), caches and
wait states.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import unicorn
from unicorn import arm_const as arm

from transports.sim.stlink.emulator_calls import hold_the_gil

if TYPE_CHECKING:
    from transports.sim.stlink.target import SimSwdTarget

__all__ = ["CORE_CLOCK_HZ", "SimCortexM"]

#: The clock a part runs on out of reset (each family's RM, RCC chapter): HSI on
#: F0/F1/F3 (8 MHz), F2/F4/F7/G0/G4/C0 (16 MHz), H7 (64 MHz), H5 (32 MHz); MSI on
#: L0/L1 (2.097 MHz), L4/L5/U5/WB/WL (4 MHz).
CORE_CLOCK_HZ = {
    "f0": 8e6, "f1": 8e6, "f1xl": 8e6, "f2": 16e6, "f4": 16e6, "f7": 16e6,
    "g0": 16e6, "g4": 16e6, "c0": 12e6, "l4": 4e6, "l5": 4e6, "u5": 4e6, "wb": 4e6,
    "wl": 4e6, "l0": 2.097e6, "l1": 2.097e6, "h7": 64e6, "h7ab": 64e6, "h5": 32e6,
}

_CPU_MODEL = {
    "cortex-m0": arm.UC_CPU_ARM_CORTEX_M0, "cortex-m0+": arm.UC_CPU_ARM_CORTEX_M0,
    "cortex-m3": arm.UC_CPU_ARM_CORTEX_M3, "cortex-m4": arm.UC_CPU_ARM_CORTEX_M4,
    "cortex-m7": arm.UC_CPU_ARM_CORTEX_M7, "cortex-m33": arm.UC_CPU_ARM_CORTEX_M33,
}

#: DCRSR REGSEL (ARMv7-M C1.6.3) → unicorn register. 15 is DebugReturnAddress.
_REGSEL: dict[int, int] = {
    **{i: arm.UC_ARM_REG_R0 + i for i in range(13)},
    13: arm.UC_ARM_REG_SP, 14: arm.UC_ARM_REG_LR, 15: arm.UC_ARM_REG_PC,
    16: arm.UC_ARM_REG_XPSR, 17: arm.UC_ARM_REG_MSP, 18: arm.UC_ARM_REG_PSP,
}
XPSR_T = 1 << 24
#: Where bus cycles go to the target's memory map (everything but SRAM): code
#: alias, flash, system memory and option bytes, peripherals (flash controller,
#: DBGMCU), and the private peripheral bus (SCB, DWT, FPB, DBGMCU of the
#: M3/M4/M7). The flash array is mapped on its own (:meth:`SimCortexM._map_flash`).
_BUS_REGIONS = ((0x00000000, 0x20000000), (0x40000000, 0x60000000), (0xE0000000, 0xE0100000))
_PAGE = 0x1000
_TRANSLATION_BUFFER = 1 << 20  # QEMU's smallest code buffer
_MAX_SLICE = 1 << 22  # instructions per emulator call (a loop without bus cycles)
#: Cycles charged per load or store outside SRAM: the access and the few
#: instructions a loader runs between two of them.
BUS_ACCESS_CYCLES = 6


class CoreStop(Exception):
    """Raised inside a hook to end the current slice (horizon reached, halted, fault)."""


class SimCortexM:
    """Run control and execution of the target's core (registers live here)."""

    def __init__(self, target: SimSwdTarget, *, core: str, clock_hz: float) -> None:
        self.target = target
        self.core = core
        self.clock_hz = clock_hz
        #: DCRSR-indexed register file; 20 is CONTROL/FAULTMASK/BASEPRI/PRIMASK.
        self.registers: dict[int, int] = dict.fromkeys(range(21), 0)
        self.registers[16] = XPSR_T
        self.running = False
        self.lockup = False
        #: simulated time the core has executed up to while running
        self.time = 0.0
        self.fault: str | None = None
        self._uc: Any = None
        self._live = False  # SRAM content is in the emulator (between resume and halt)
        self._horizon = 0.0
        self._last_poll: tuple[int, int] | None = None
        self._pending: BaseException | None = None
        self.instructions = 0
        flash = target.chip.flash
        self._flash_start, self._flash_end = flash.base, flash.base + flash.size
        #: The flash array is mapped as memory the emulator reads itself (True) or as
        #: bus cycles (False); None before the emulator exists.
        self._flash_direct: bool | None = None
        self._flash_view: Any = None

    # -- registers ------------------------------------------------------------------

    def read_register(self, regsel: int) -> int:
        return self.registers.get(regsel, 0) & 0xFFFFFFFF

    def write_register(self, regsel: int, value: int) -> None:
        value &= 0xFFFFFFFF
        if regsel == 15:
            value &= ~1  # DebugReturnAddress: bit 0 is ignored (the state is EPSR.T)
        if regsel == 13:
            self.registers[17] = value
        elif regsel == 17:
            self.registers[13] = value
        self.registers[regsel] = value

    # -- SRAM while code runs ----------------------------------------------------------

    @property
    def live(self) -> bool:
        return self._live

    def read_ram(self, address: int, length: int) -> bytes:
        return bytes(self._uc.mem_read(address, length))

    def write_ram(self, address: int, data: bytes) -> None:
        self._uc.mem_write(address, data)

    # -- run control -------------------------------------------------------------------

    def resume(self, now: float) -> None:
        """C_HALT cleared: the core runs from its PC (executed only from SRAM)."""
        if self.running:
            return
        self.running = True
        self.time = now
        self.fault = None
        pc = self.registers[15]
        if not self._in_ram(pc):
            return  # an application in flash: it runs, but is not executed here
        if not self.registers[16] & XPSR_T:
            # ARMv7-M B1.4.2: executing with EPSR.T clear is an INVSTATE UsageFault.
            self._take_fault("INVSTATE: xPSR Thumb bit clear")
            return
        self._enter()

    def halt(self, reason: int = 0x1) -> None:
        """Enter Debug state (C_HALT, a BKPT, a vector catch); DFSR gets ``reason``."""
        if self._live:
            self._leave()
        self.running = False
        self.target.dfsr |= reason

    def step(self, now: float) -> None:
        """C_STEP: execute one instruction, then halt again."""
        self.resume(now)
        if self._live:
            self._run(now + 1.0, count=1)
        if self.running:
            self.halt(0x1)

    def catch_up(self, now: float) -> None:
        """Execute until the core's time reaches ``now`` (the host's clock)."""
        if not self.running or not self._live or self.time >= now:
            return
        self._run(now, count=min(_MAX_SLICE, max(1, int((now - self.time) * self.clock_hz))))

    # -- emulation -------------------------------------------------------------------

    def _in_ram(self, address: int) -> bool:
        return any(start <= (address & ~1) < end for start, end in self.target.ram_regions)

    def _emulator(self) -> Any:
        if self._uc is not None:
            return self._uc
        hold_the_gil()  # every call below, and the slices' callbacks, without lock hand-offs
        uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        # Room for the translations of a loader or a flash algorithm (a few KiB of
        # code, flushed at every resume); unicorn's default reserves 1 GiB per core,
        # and even 8 MiB cost ~5 ms to set up per target of a large rehearsal.
        uc.ctl_set_tcg_buffer_size(_TRANSLATION_BUFFER)
        uc.ctl_set_cpu_model(_CPU_MODEL.get(self.core, arm.UC_CPU_ARM_CORTEX_M3))
        for start, end in self.target.ram_regions:
            uc.mem_map(start, -(-(end - start) // _PAGE) * _PAGE)
        for low, high in self._bus_regions():
            uc.mmio_map(low, high - low, self._bus_read, low, self._bus_write, low)
        uc.hook_add(unicorn.UC_HOOK_INTR, self._on_interrupt)
        self._uc = uc
        return uc

    def _bus_regions(self) -> list[tuple[int, int]]:
        """The bus regions around the flash array (mapped on its own, :meth:`_map_flash`)."""
        start, end = self._flash_start, self._flash_end
        regions: list[tuple[int, int]] = []
        for low, high in _BUS_REGIONS:
            if low <= start and end <= high:
                regions += [(a, b) for a, b in ((low, start), (end, high)) if a < b]
            else:
                regions.append((low, high))
        return regions

    # -- the flash array: read directly while nothing can change what a read sees -------

    def _map_flash(self, *, direct: bool) -> None:
        """Map the flash array for direct reads, or as bus cycles to the controller.

        A routine that sums or compares flash (the on-target CRC, a flash
        algorithm's verify) loads every word of it; each load as a bus cycle is a
        call out of the emulator. While the array is readable and idle (RDP 0,
        no operation under way) a load answers its content whatever the
        controller's state, so the array is then mapped read-only over the chip's
        own bytes. A store to it (programming) and an operation the core starts
        turn it back into bus cycles, where the controller decides.
        """
        if self._flash_direct is direct:
            return
        uc, start, size = self._uc, self._flash_start, self._flash_end - self._flash_start
        if self._flash_direct is not None:
            uc.mem_unmap(start, size)
        if direct:
            if self._flash_view is None:
                array = self.target.sim.flash_array()
                self._flash_view = (ctypes.c_char * len(array)).from_buffer(array)
            uc.mem_map_ptr(start, size, unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC,
                           ctypes.addressof(self._flash_view))
        else:
            uc.mmio_map(start, size, self._bus_read, start, self._bus_write, start)
        self._flash_direct = direct

    def _flash_readable_directly(self) -> bool:
        size = self._flash_end - self._flash_start
        return (not size % _PAGE and not self._flash_start % _PAGE
                and not self.target.sim.rdp_level and not self.target.controller.busy)

    def _enter(self) -> None:
        uc = self._emulator()
        for start, end in self.target.ram_regions:
            uc.mem_write(start, self.target.load_ram(start, end))
        # The host may have loaded other code since the last run: SRAM has no
        # instruction cache, so nothing translated from the old code may run.
        uc.ctl_flush_tb()
        for regsel, reg in _REGSEL.items():
            if regsel not in (13, 15, 16):
                uc.reg_write(reg, self.registers[regsel])
        uc.reg_write(arm.UC_ARM_REG_SP, self.registers[13])
        uc.reg_write(arm.UC_ARM_REG_XPSR, self.registers[16])
        uc.reg_write(arm.UC_ARM_REG_PC, self.registers[15] | 1)
        self._map_flash(direct=self._flash_readable_directly())
        self._live = True
        self._last_poll = None

    def _leave(self) -> None:
        uc = self._uc
        for regsel, reg in _REGSEL.items():
            self.registers[regsel] = int(uc.reg_read(reg)) & 0xFFFFFFFF
        self.registers[15] &= ~1
        self.registers[16] |= XPSR_T
        for start, end in self.target.ram_regions:
            self.target.store_ram(start, bytes(uc.mem_read(start, end - start)))
        self._live = False

    def _run(self, horizon: float, *, count: int) -> None:
        uc = self._uc
        self._horizon = horizon
        self._pending = None
        controller = self.target.controller
        start = self.time
        controller.local_time = start
        if self._flash_direct and controller.busy:  # the host started an operation
            self._map_flash(direct=False)
        try:
            pc = int(uc.reg_read(arm.UC_ARM_REG_PC)) | 1
            while True:
                try:
                    uc.emu_start(pc, 0xFFFFFFFF, count=count)
                except unicorn.UcError as error:
                    if error.errno == unicorn.UC_ERR_WRITE_PROT and self._flash_direct:
                        # Stopped before a store to the array, the only read-only
                        # mapping: replay it as a bus cycle.
                        self._map_flash(direct=False)
                        pc = int(uc.reg_read(arm.UC_ARM_REG_PC)) | 1
                        continue
                    if self._pending is None:
                        self._pending = CoreFault(f"{error} at PC 0x{pc & ~1:08X}")
                break
        finally:
            reached = controller.local_time or start
            if self._pending is None:  # the whole slice ran
                reached = max(reached, start + count / self.clock_hz)
            self.instructions += count
            self.time = max(self.time, reached)
            controller.local_time = None
        pending = self._take_pending()
        if isinstance(pending, BreakpointHit):
            self.registers_from_halt(pending.pc)
        elif isinstance(pending, CoreFault):
            self._take_fault(str(pending))
        elif pending is not None and not isinstance(pending, CoreStop):
            self._take_fault(f"{pending}")

    def _take_pending(self) -> BaseException | None:
        pending, self._pending = self._pending, None
        return pending

    def registers_from_halt(self, pc: int) -> None:
        self.halt(0x2)  # DFSR.BKPT
        self.registers[15] = pc & ~1

    def _take_fault(self, why: str) -> None:
        """A fault: halt on a hard-fault vector catch (DEMCR.VC_HARDERR), else lock up."""
        self.fault = why
        if self.target.debugen and self.target.demcr & (1 << 10):
            self.halt(0x8)  # DFSR.VCATCH
        else:
            if self._live:
                self._leave()
            self.lockup = True  # runs on, never halting at the loader's bkpt

    def _charge(self, uc: Any, *, may_stop: bool) -> None:
        """Time for one bus access and the instructions around it; stop at the horizon.

        Only a load may end the slice: the emulator restarts the stopped
        instruction, which must not repeat a store (the flash would see it twice).
        """
        controller = self.target.controller
        now = (controller.local_time or self.time) + BUS_ACCESS_CYCLES / self.clock_hz
        controller.local_time = now
        if may_stop and now >= self._horizon:
            self._stop(uc, CoreStop("horizon"))

    def _stop(self, uc: Any, pending: BaseException) -> None:
        if self._pending is None:
            self._pending = pending
        uc.emu_stop()

    def _on_interrupt(self, uc: Any, number: int, _data: Any) -> None:
        pc = int(uc.reg_read(arm.UC_ARM_REG_PC))
        if number == 7 and self.target.debugen:  # EXCP_BKPT
            self._stop(uc, BreakpointHit(pc))
        else:
            self._stop(uc, CoreFault(f"exception {number} at PC 0x{pc:08X}"))

    def _bus(self, uc: Any, action: Callable[[], int]) -> int:
        from transports.sim.stlink.controller import BusFault

        try:
            return action()
        except BusFault as fault:
            self._stop(uc, CoreFault(f"bus fault at 0x{fault.address:08X}: {fault}"))
        except Exception as error:  # an injected fault, a simulator refusal
            self._stop(uc, CoreFault(str(error)))
        return 0

    def _bus_read(self, uc: Any, offset: int, size: int, base: int) -> int:
        address = base + offset
        # _charge(may_stop=True), written out: a routine summing or comparing flash
        # makes one such read per word.
        controller = self.target.controller
        now = (controller.local_time or self.time) + BUS_ACCESS_CYCLES / self.clock_hz
        controller.local_time = now
        if now >= self._horizon:
            self._stop(uc, CoreStop("horizon"))
        if self._flash_start <= address and address + size <= self._flash_end:
            # The flash array itself, readable and idle (controller.busy at ``now``):
            # what the bus cycle would answer (SimSwdTarget.core_read), read from the
            # chip directly.
            sim = self.target.sim
            if not sim.rdp_level and now >= controller.busy_until:
                return sim.peek_flash(address, size)

        def read() -> int:
            value = int.from_bytes(self.target.core_read(address, size), "little")
            self._fast_forward(uc, address)
            return value

        return self._bus(uc, read)

    def _bus_write(self, uc: Any, offset: int, size: int, value: int, base: int) -> None:
        address = base + offset
        controller = self.target.controller
        if controller.owns(address) or self.target.chip.flash.contains(address):
            self._last_poll = None  # a store to the flash interface: no longer just polling
        self._charge(uc, may_stop=False)

        def write() -> int:
            self.target.core_write(address, (value & ((1 << (8 * size)) - 1))
                                   .to_bytes(size, "little"))
            return 0

        self._bus(uc, write)
        if self._flash_direct and controller.busy:
            # The core started an erase or a program: a load from the array now
            # waits for it (the controller's stall), so it is a bus cycle again.
            self._map_flash(direct=False)

    def _fast_forward(self, uc: Any, address: int) -> None:
        """The same instruction reading a busy controller again: skip to its end."""
        controller = self.target.controller
        if not controller.owns(address):
            return  # other reads in the loop (a watchdog, RAM) do not end the poll
        poll = (int(uc.reg_read(arm.UC_ARM_REG_PC)), address)
        if controller.busy:
            if self._last_poll == poll:
                controller.local_time = min(controller.busy_until, self._horizon)
                if controller.local_time >= self._horizon:
                    self._stop(uc, CoreStop("horizon"))
            self._last_poll = poll
        else:
            self._last_poll = None


class BreakpointHit(Exception):
    def __init__(self, pc: int) -> None:
        super().__init__(f"bkpt at 0x{pc:08X}")
        self.pc = pc


class CoreFault(Exception):
    """The code faulted (bus fault, undefined instruction, unmapped fetch)."""
