"""The target behind a simulated ST-Link: a Cortex-M seen through its AHB-AP.

Memory accesses arrive as (address, width) bus cycles, the way the probe's
firmware issues them over SWD. The model answers for: the flash array (reads
blocked at RDP level 1 with a bus fault, writes handed to the flash
controller), SRAM, the chip's system memory (UID, flash size, option bytes),
the flash controller's registers, DBGMCU_IDCODE, the Cortex-M debug
registers (DHCSR with its key, DCRSR/DCRDR, DEMCR, DFSR, AIRCR, CPUID and
the rest of the system control block, DWT, FPB, ITM), the ROM table (its
entries and every component's identification registers), system memory and
the F2/F4/F7 OTP area. Other peripheral registers (RCC, IWDG, GPIO, …) are
plain storage. Anything else is a bus fault.

The core itself (:mod:`transports.sim.stlink.core`) executes code from SRAM
while it runs; its loads and stores outside SRAM come back here as bus cycles,
through :meth:`SimSwdTarget.core_read` and :meth:`SimSwdTarget.core_write`.

MEM-AP auto-increment only covers the low bits of TAR (ADIv5 §7.2.2: 10 bits
guaranteed; 12 on the Cortex-M3/M4/M7 AHB-AP), so one memory command that
crosses that window wraps back to its start, as silicon does.

Each bus cycle costs SWD time (about 46 clock periods) charged to the chip's
clock, so a slow SWD clock is slow here too.
"""

from __future__ import annotations

from dataclasses import dataclass

from transports.sim.chip import SimChip, SimFlashFault
from transports.sim.stlink.controller import BusFault, SimFlashController
from transports.sim.stlink.core import CORE_CLOCK_HZ, XPSR_T, SimCortexM
from transports.sim.stlink.dap import SimDebugPort

__all__ = ["CoreIdentity", "SimSwdTarget"]

CPUID, AIRCR, DFSR, DHCSR, DCRSR, DCRDR, DEMCR = (
    0xE000ED00, 0xE000ED0C, 0xE000ED30, 0xE000EDF0, 0xE000EDF4, 0xE000EDF8, 0xE000EDFC)
DHCSR_KEY = 0xA05F
S_REGRDY, S_HALT, S_LOCKUP, S_RETIRE_ST, S_RESET_ST = (
    1 << 16, 1 << 17, 1 << 19, 1 << 24, 1 << 25)
C_DEBUGEN, C_HALT, C_STEP = 1 << 0, 1 << 1, 1 << 2
ROM_TABLE = 0xE00FF000
SWD_CYCLES_PER_ACCESS = 46
#: ARMv7-M C1.2 / CoreSight: the ROM table lists the SCS, DWT and FPB (offsets
#: from the table, present bit set); a zero word ends it.
_ROM_ENTRIES = (0xFFF0F003, 0xFFF02003, 0xFFF03003, 0xFFF01003, 0)
#: Per core: component base → ARM part number of its ID registers (generic-IP
#: class 0xE): the SCS (v6-M 0x008, v7-M 0x000 on M3, 0x00C on M4/M7), DWT,
#: FPB (the M0's BPU 0x00B, the M7's FPBv2 0x00E) and ITM. The ROM table itself
#: is class 1 and carries the SoC designer's JEP106 code.
_V7M = {0xE000E000: 0x00C, 0xE0001000: 0x002, 0xE0002000: 0x003, 0xE0000000: 0x001}
_COMPONENTS = {
    "cortex-m0": {0xE000E000: 0x008, 0xE0001000: 0x00A, 0xE0002000: 0x00B},
    "cortex-m0+": {0xE000E000: 0x008, 0xE0001000: 0x00A, 0xE0002000: 0x00B},
    "cortex-m3": {**_V7M, 0xE000E000: 0x000},
    "cortex-m4": _V7M,
    "cortex-m7": {**_V7M, 0xE0002000: 0x00E},
}
ARM_DESIGNER = 0x43B  # JEP106: continuation code 4, identity 0x3B
#: Reset values of debug and system registers a host reads (ARMv7-M C1, B3.2):
#: FP_CTRL (6 code, 2 literal comparators), DWT_CTRL (4 comparators), CCR
#: (STKALIGN), the ROM table's MEMTYPE (system memory present).
_RESET_VALUES = {0xE0002000: 0x00000260, 0xE0001000: 0x40000000, 0xE000ED14: 0x00000200,
                 0xE00FFFCC: 0x00000001}
#: SRAM beside the chip database's RAM that hosts load code into: the H7's DTCM
#: (RM0433 §2.3.2, 128 KiB at 0x20000000), where pyOCD's H7 flash algorithm runs.
_TIGHTLY_COUPLED = {"h7": ((0x20000000, 0x20020000),), "h7ab": ((0x20000000, 0x20020000),)}
#: The peripheral address space (ARMv7-M B3.1): registers not modelled otherwise
#: read back what was written (0 after reset).
PERIPHERALS = (0x40000000, 0x60000000)
#: Parts whose address 0 is not an alias of the main flash when booting from it
#: (F7: ITCM at 0; H7: ITCM RAM; L5/U5/H5: boot address from the option bytes).
_NO_BOOT_ALIAS = frozenset({"f7", "h7", "h7ab", "h5", "l5", "u5"})
#: F2/F4 (RM0090 §3.8) and F7 (RM0410 §3.6): the OTP area and its lock bytes.
_OTP_AREAS = {"f2": (0x1FFF7800, 0x1FFF7A10), "f4": (0x1FFF7800, 0x1FFF7A10),
              "f7": (0x1FF0F000, 0x1FF0F420)}


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreIdentity:
    """What the debug port reports: DP IDCODE, CPUID, DBGMCU revision, ROM designer."""

    dp_idcode: int
    cpuid: int
    rev_id: int
    designer: int = 0x020  # JEP106 of STMicroelectronics (bank 0, id 0x20)
    tar_window: int = 1024


class SimSwdTarget:
    """One Cortex-M target: memory map plus run control."""

    def __init__(self, sim: SimChip, controller: SimFlashController,
                 identity: CoreIdentity) -> None:
        self.sim = sim
        self.chip = sim.chip
        self.controller = controller
        self.identity = identity
        self.swd_khz = 1800
        self.debugen = False
        self.reset_sticky = True
        self.demcr = 0
        self.dfsr = 0
        self.dcrdr = 0
        self.nrst_low = False
        self.dbgmcu: dict[int, int] = {}
        #: system control space, DWT, FPB and ITM registers a host has written
        self.system: dict[int, int] = {}
        #: other peripherals (RCC, IWDG, GPIO, …): plain registers, not modelled further
        self.peripherals: dict[int, int] = {}
        #: SRAM the chip database does not list as the chip's RAM (H7 DTCM)
        self.extra_ram = {start: bytearray(end - start)
                          for start, end in _TIGHTLY_COUPLED.get(self.chip.controller, ())}
        self.core = SimCortexM(self, core=self.chip.core,
                               clock_hz=CORE_CLOCK_HZ.get(self.chip.controller, 8e6))
        self.core.running = True  # out of power-on reset, running the application
        self.dap = SimDebugPort(self)
        self._load_vectors()

    @property
    def halted(self) -> bool:
        return not self.core.running

    # -- time ---------------------------------------------------------------------------

    def charge(self, accesses: int) -> None:
        """SWD time for ``accesses`` bus cycles; a running core catches up to the new time."""
        self.sim.clock.advance(accesses * SWD_CYCLES_PER_ACCESS / (self.swd_khz * 1000))
        self.core.catch_up(self.sim.clock.elapsed)

    # -- run control ----------------------------------------------------------------------

    def system_reset(self) -> None:
        """NRST or AIRCR.SYSRESETREQ: the core restarts, halting if VC_CORERESET is set."""
        if self.core.live:
            self.core.halt(0)  # whatever ran stops; SRAM keeps its content
        self.sim.reset()
        self.controller.system_reset()
        self.reset_sticky = True
        self.core.lockup = False
        self.system.clear()
        self.peripherals.clear()
        self._load_vectors()
        self.core.running = True
        if self.debugen and self.demcr & 1:
            self.core.halt(0x8)  # DEMCR.VC_CORERESET: halt before the first instruction

    def _load_vectors(self) -> None:
        """ARMv7-M B1.5.5 reset: SP from vector 0, PC and EPSR.T from vector 1, LR all ones."""
        base = self.chip.flash.base
        sp = int.from_bytes(self._flash_word(base), "little")
        reset = int.from_bytes(self._flash_word(base + 4), "little")
        registers = self.core.registers
        registers.update(dict.fromkeys(range(13), 0))
        self.core.write_register(13, sp & ~3)
        registers[18] = 0
        registers[14] = 0xFFFFFFFF
        registers[15] = reset & ~1
        registers[16] = XPSR_T if reset & 1 else 0
        registers[20] = 0

    def _flash_word(self, address: int) -> bytes:
        try:
            return self.sim.read_flash(address, 4, debug=False)
        except SimFlashFault:
            return b"\0\0\0\0"

    def _dhcsr(self) -> int:
        value = (C_DEBUGEN if self.debugen else 0) | (C_HALT | S_HALT if self.halted else 0) \
            | S_REGRDY
        if self.core.lockup:
            value |= S_LOCKUP
        if self.core.running:
            value |= S_RETIRE_ST
        if self.reset_sticky or self.nrst_low:
            value |= S_RESET_ST
        if not self.nrst_low:
            self.reset_sticky = False  # sticky: cleared by reading
        return value

    # -- word-level registers -----------------------------------------------------------

    def _read_word(self, address: int) -> int:
        if address == CPUID:
            return self.identity.cpuid
        if address == DHCSR:
            return self._dhcsr()
        if address == DEMCR:
            return self.demcr
        if address == DFSR:
            return self.dfsr
        if address == DCRDR:
            return self.dcrdr
        if address in (AIRCR, DCRSR):
            return 0xFA050000 if address == AIRCR else 0
        if address == self.chip.idcode_address:
            return (self.identity.rev_id << 16) | self.chip.dev_id
        if self.chip.idcode_address < address < self.chip.idcode_address + 0x100:
            return self.dbgmcu.get(address, 0)
        if ROM_TABLE <= address < ROM_TABLE + 0x1000:
            return self._rom_table(address - ROM_TABLE)
        component = address & ~0xFFF
        parts = _COMPONENTS.get(self.chip.core, _V7M)
        if component in parts and address & 0xFFF >= 0xFD0:
            return _identification(address & 0xFFF, 0xE, ARM_DESIGNER, parts[component])
        if 0xE0000000 <= address < 0xE0100000:
            return self.system.get(address, _RESET_VALUES.get(address, 0))
        if self.controller.owns(address):
            try:
                return self.controller.read_register(address - self.controller.base)
            except BusFault:
                return 0  # reserved offsets of the register block read as zero
        if PERIPHERALS[0] <= address < PERIPHERALS[1]:
            return self.peripherals.get(address, 0)
        raise BusFault(address)

    def _rom_table(self, offset: int) -> int:
        if offset >= 0xFD0:
            return _identification(offset, 0x1, self.identity.designer, 0x4C4)
        if offset < 4 * len(_ROM_ENTRIES):
            return _ROM_ENTRIES[offset // 4]
        return _RESET_VALUES.get(ROM_TABLE + offset, 0)

    def _write_word(self, address: int, value: int) -> None:
        if address == DHCSR:
            self._write_dhcsr(value)
        elif address == DEMCR:
            self.demcr = value
        elif address == DFSR:
            self.dfsr &= ~value
        elif address == DCRDR:
            self.dcrdr = value
        elif address == DCRSR:
            # ARMv7-M C1.6.3: core registers are reachable only in Debug state.
            if not self.halted:
                return
            index = value & 0x7F
            if value & 0x10000:
                self.core.write_register(index, self.dcrdr)
            else:
                self.dcrdr = self.core.read_register(index)
        elif address == AIRCR:
            if value >> 16 == 0x05FA and value & 0x4:
                self.system_reset()
        elif self.chip.idcode_address < address < self.chip.idcode_address + 0x100:
            self.dbgmcu[address] = value
        elif self.controller.owns(address):
            self.controller.write_register(address - self.controller.base, value)
        elif 0xE0000000 <= address < 0xE0100000 and not address >= ROM_TABLE:
            self.system[address] = value
        elif PERIPHERALS[0] <= address < PERIPHERALS[1]:
            self.peripherals[address] = value
        else:
            raise BusFault(address)

    def _write_dhcsr(self, value: int) -> None:
        """ARMv7-M C1.6.2: C_HALT halts, clearing it resumes, C_STEP steps once."""
        if value >> 16 != DHCSR_KEY:
            return  # writes without the key are ignored
        self.debugen = bool(value & C_DEBUGEN)
        now = self.sim.clock.elapsed
        if self.debugen and value & C_HALT:
            if self.core.running:
                self.core.halt(0x1)  # DFSR.HALTED
        elif self.halted:
            if self.debugen and value & C_STEP:
                self.core.step(now)
            else:
                self.core.resume(now)

    # -- bus cycles ---------------------------------------------------------------------

    def _in_flash(self, address: int, length: int) -> bool:
        return self.chip.flash.contains(address, length)

    def _in_ram(self, address: int, length: int) -> bool:
        return any(start <= address and address + length <= end
                   for start, end in self.ram_regions)

    @property
    def ram_regions(self) -> list[tuple[int, int]]:
        """Every SRAM the core can run from: the chip's, then the tightly coupled ones."""
        return [self.chip.ram, *((start, start + len(data))
                                 for start, data in self.extra_ram.items())]

    def load_ram(self, start: int, end: int) -> bytes:
        """A region's content as held outside the running core."""
        if (start, end) == self.chip.ram:
            return self.sim.read_memory(start, end - start)
        return bytes(self.extra_ram[start])

    def store_ram(self, address: int, data: bytes) -> None:
        for start, region in self.extra_ram.items():
            if start <= address < start + len(region):
                region[address - start:address - start + len(data)] = data
                return
        self.sim.write_ram(address, data)

    def _in_options(self, address: int, length: int) -> bool:
        ob = self.chip.option_bytes
        return ob.address <= address and address + length <= ob.address + ob.size \
            and not self.controller.owns(address)

    def read(self, address: int, length: int, width: int) -> bytes:
        """Read ``length`` bytes in ``width``-byte cycles (no window wrapping here)."""
        self.charge(max(1, length // width))
        return self._bus_read(address, length, width)

    def core_read(self, address: int, length: int) -> bytes:
        """One load by the running core from outside SRAM (no SWD time)."""
        return self._bus_read(address, length, length)

    def core_write(self, address: int, data: bytes) -> None:
        """One store by the running core outside SRAM."""
        self._write_cycle(address, data)

    def _bus_read(self, address: int, length: int, width: int) -> bytes:
        if address < self.chip.flash.size and self.chip.controller not in _NO_BOOT_ALIAS:
            address += self.chip.flash.base  # booted from flash: it is aliased at 0
        if self._in_flash(address, length):
            if self.sim.rdp_level >= 1:
                raise BusFault(address, "flash read refused: readout protection")
            self.controller.stall_until_ready()
            return self.sim.read_flash(address, length, debug=False)
        if self._in_ram(address, length):
            if self.core.live:
                return self.core.read_ram(address, length)
            for start, region in self.extra_ram.items():
                if start <= address < start + len(region):
                    return bytes(region[address - start:address - start + length])
            return self.sim.read_memory(address, length)
        if self._in_options(address, length):
            stored = self.controller.read_option_area(address, length)
            if stored is not None:
                return stored
        out = bytearray()
        for at in range(address, address + length, width):
            out += self._read_cycle(at, width)
        return bytes(out)

    def _read_cycle(self, address: int, width: int) -> bytes:
        aligned = address & ~3
        try:
            word = self._read_word(aligned).to_bytes(4, "little")
        except BusFault:
            return self._read_system(address, width)
        offset = address - aligned
        return word[offset:offset + width]

    def _read_system(self, address: int, width: int) -> bytes:
        """System memory: reserved bytes next to a mapped register read as 0xFF.

        The bootloader ROM (AN2606's system-memory range) and the OTP area
        (RM0090 §3.8, erased: 0xFF) are readable; the ROM's code is not
        modelled and reads as zeros.
        """
        out, mapped = bytearray(), False
        rom = self.chip.bootloader.system_memory
        otp = _OTP_AREAS.get(self.chip.controller)
        for at in range(address, address + width):
            try:
                out += self.sim.read_memory(at, 1)
                mapped = True
            except SimFlashFault:
                if rom is not None and rom[0] <= at < rom[1]:
                    out.append(0x00)
                    mapped = True
                elif otp is not None and otp[0] <= at < otp[1]:
                    out.append(0xFF)
                    mapped = True
                else:
                    out.append(0xFF)
        if not mapped:
            raise BusFault(address)
        return bytes(out)

    def write(self, address: int, data: bytes, width: int) -> None:
        """Write ``data`` in ``width``-byte cycles."""
        self.charge(max(1, len(data) // width))
        if self._in_ram(address, len(data)):
            self.store_ram(address, data)
            if self.core.live:
                self.core.write_ram(address, data)
            return
        if len(data) > width and self._in_flash(address, len(data)):
            # A run of bus writes into the array: the controller takes it whole
            # (one program and one stall per run, cycle by cycle where it must).
            self._refuse_flash_write_if_protected(address)
            self.controller.write_flash_run(address, data, width)
            return
        for offset in range(0, len(data), width):
            self._write_cycle(address + offset, data[offset:offset + width])

    def _write_cycle(self, address: int, data: bytes) -> None:
        if self._in_flash(address, len(data)):
            self._refuse_flash_write_if_protected(address)
            self.controller.write_flash(address, data)
            return
        if self._in_options(address, len(data)):
            writer = getattr(self.controller, "write_option_area", None)
            if writer is None:
                raise BusFault(address, "option bytes are not bus-writable here")
            writer(address, data)
            return
        aligned = address & ~3
        if len(data) == 4 and aligned == address:
            self._write_word(address, int.from_bytes(data, "little"))
            return
        current = bytearray(self._read_word(aligned).to_bytes(4, "little"))
        offset = address - aligned
        current[offset:offset + len(data)] = data
        self._write_word(aligned, int.from_bytes(current, "little"))

    def _refuse_flash_write_if_protected(self, address: int) -> None:
        if self.sim.rdp_level >= 1 and self.debug_locked_out():
            raise BusFault(address, "flash write refused: readout protection")

    def debug_locked_out(self) -> bool:
        """RDP 1: the debugger may not touch flash (RM0008 §2.5, RM0090 §3.7.3)."""
        return self.sim.rdp_level >= 1


def _identification(offset: int, kind: int, designer: int, part: int) -> int:
    """CoreSight PIDR4..7 (0xFD0..), PIDR0..3 (0xFE0..), CIDR0..3 (0xFF0..) of a component."""
    index = (offset - 0xFD0) // 4
    if index >= 8:
        return (0x0D, kind << 4, 0x05, 0xB1)[index - 8]  # CIDR: preamble and class
    # ``designer`` is JEP106 continuation code << 8 | 7-bit identity (ARM: 0x43B).
    pidr = {4: (designer >> 8) & 0xF,
            0: part & 0xFF, 1: ((part >> 8) & 0xF) | (designer & 0xF) << 4,
            2: 0x08 | ((designer >> 4) & 0x7), 3: 0}
    return pidr.get((4, 5, 6, 7, 0, 1, 2, 3)[index], 0)
