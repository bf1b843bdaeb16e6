"""The target behind a simulated ST-Link: a Cortex-M seen through its AHB-AP.

Memory accesses arrive as (address, width) bus cycles, the way the probe's
firmware issues them over SWD. The model answers for: the flash array (reads
blocked at RDP level 1 with a bus fault, writes handed to the flash
controller), SRAM, the chip's system memory (UID, flash size, option bytes),
the flash controller's registers, DBGMCU_IDCODE, the Cortex-M debug
registers (DHCSR with its key, DEMCR, DFSR, AIRCR, CPUID) and the ROM table's
identification registers. Anything else is a bus fault.

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

__all__ = ["CoreIdentity", "SimSwdTarget"]

CPUID, AIRCR, DFSR, DHCSR, DCRSR, DCRDR, DEMCR = (
    0xE000ED00, 0xE000ED0C, 0xE000ED30, 0xE000EDF0, 0xE000EDF4, 0xE000EDF8, 0xE000EDFC)
DHCSR_KEY = 0xA05F
S_REGRDY, S_HALT, S_RESET_ST = 1 << 16, 1 << 17, 1 << 25
C_DEBUGEN, C_HALT = 1 << 0, 1 << 1
ROM_PIDR = 0xE00FFFD0  # PIDR4..7 at D0..DC, PIDR0..3 at E0..EC
SWD_CYCLES_PER_ACCESS = 46


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
        self.halted = False
        self.debugen = False
        self.reset_sticky = True
        self.demcr = 0
        self.dfsr = 0
        self.registers = [0] * 32
        self.dcrdr = 0
        self.nrst_low = False
        self.dbgmcu: dict[int, int] = {}

    # -- time ---------------------------------------------------------------------------

    def charge(self, accesses: int) -> None:
        self.sim.clock.advance(accesses * SWD_CYCLES_PER_ACCESS / (self.swd_khz * 1000))

    # -- run control ----------------------------------------------------------------------

    def system_reset(self) -> None:
        """NRST or AIRCR.SYSRESETREQ: the core restarts, halting if VC_CORERESET is set."""
        self.sim.reset()
        self.controller.system_reset()
        self.reset_sticky = True
        self.halted = bool(self.debugen and self.demcr & 1)
        if self.halted:
            self.dfsr |= 0x8  # VCATCH
        self.registers[15] = int.from_bytes(self._flash_word(self.chip.flash.base + 4),
                                            "little") & ~1

    def _flash_word(self, address: int) -> bytes:
        try:
            return self.sim.read_flash(address, 4, debug=False)
        except SimFlashFault:
            return b"\0\0\0\0"

    def _dhcsr(self) -> int:
        value = (C_DEBUGEN if self.debugen else 0) | (C_HALT | S_HALT if self.halted else 0) \
            | S_REGRDY
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
        if ROM_PIDR <= address < ROM_PIDR + 0x30:
            return self._rom_pidr((address - ROM_PIDR) // 4)
        if self.controller.owns(address):
            return self.controller.read_register(address - self.controller.base)
        raise BusFault(address)

    def _rom_pidr(self, index: int) -> int:
        designer = self.identity.designer
        pidr = {4: (designer >> 7) & 0xF,  # JEP106 continuation code
                0: 0x00, 1: (designer & 0xF) << 4, 2: 0x08 | ((designer >> 4) & 0x7), 3: 0}
        order = [4, 5, 6, 7, 0, 1, 2, 3]
        return pidr.get(order[index], 0)

    def _write_word(self, address: int, value: int) -> None:
        if address == DHCSR:
            if value >> 16 != DHCSR_KEY:
                return  # ARMv7-M C1.6.2: writes without the key are ignored
            self.debugen = bool(value & C_DEBUGEN)
            self.halted = bool(value & C_HALT) and self.debugen
        elif address == DEMCR:
            self.demcr = value
        elif address == DFSR:
            self.dfsr &= ~value
        elif address == DCRDR:
            self.dcrdr = value
        elif address == DCRSR:
            index = value & 0x1F
            if value & 0x10000:
                self.registers[index] = self.dcrdr
            else:
                self.dcrdr = self.registers[index]
        elif address == AIRCR:
            if value >> 16 == 0x05FA and value & 0x4:
                self.system_reset()
        elif self.chip.idcode_address < address < self.chip.idcode_address + 0x100:
            self.dbgmcu[address] = value
        elif self.controller.owns(address):
            self.controller.write_register(address - self.controller.base, value)
        else:
            raise BusFault(address)

    # -- bus cycles ---------------------------------------------------------------------

    def _in_flash(self, address: int, length: int) -> bool:
        return self.chip.flash.contains(address, length)

    def _in_ram(self, address: int, length: int) -> bool:
        start, end = self.chip.ram
        return start <= address and address + length <= end

    def _in_options(self, address: int, length: int) -> bool:
        ob = self.chip.option_bytes
        return ob.address <= address and address + length <= ob.address + ob.size \
            and not self.controller.owns(address)

    def read(self, address: int, length: int, width: int) -> bytes:
        """Read ``length`` bytes in ``width``-byte cycles (no window wrapping here)."""
        self.charge(max(1, length // width))
        if self._in_flash(address, length):
            if self.sim.rdp_level >= 1:
                raise BusFault(address, "flash read refused: readout protection")
            self.controller.stall_until_ready()
            return self.sim.read_flash(address, length, debug=False)
        if self._in_ram(address, length):
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
        """System memory: reserved bytes next to a mapped register read as 0xFF."""
        out, mapped = bytearray(), False
        for at in range(address, address + width):
            try:
                out += self.sim.read_memory(at, 1)
                mapped = True
            except SimFlashFault:
                out.append(0xFF)
        if not mapped:
            raise BusFault(address)
        return bytes(out)

    def write(self, address: int, data: bytes, width: int) -> None:
        """Write ``data`` in ``width``-byte cycles."""
        self.charge(max(1, len(data) // width))
        if self._in_ram(address, len(data)):
            self.sim.write_ram(address, data)
            return
        for offset in range(0, len(data), width):
            self._write_cycle(address + offset, data[offset:offset + width])

    def _write_cycle(self, address: int, data: bytes) -> None:
        if self._in_flash(address, len(data)):
            if self.sim.rdp_level >= 1 and self.debug_locked_out():
                raise BusFault(address, "flash write refused: readout protection")
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

    def debug_locked_out(self) -> bool:
        """RDP 1: the debugger may not touch flash (RM0008 §2.5, RM0090 §3.7.3)."""
        return self.sim.rdp_level >= 1
