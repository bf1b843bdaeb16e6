"""A simulated STM32 as its pins see it: NOR flash, option bytes, RDP, UID.

``SimChip`` knows nothing of any link. Front ends (a bootloader on a pty, a
simulated ST-Link, a DFU device) drive it through this API, the way the
silicon's flash controller and bootloader drive the real array:

* erased flash reads ``erased`` (0xFF; 0x00 on L0/L1); programming can only
  clear bits (``new = old & data``) — programming over data that is not erased
  corrupts it exactly as silicon does, unless the caller asks for the strict
  check most controllers make (``require_erased``), which raises
  :class:`SimFlashFault` like a PGERR/PROGERR;
* erase works on the erase units of the chip database (pages or sectors);
* RDP level 1 refuses flash reads from the debug port and the bootloader;
  regressing 1 → 0 mass-erases the flash; level 2 is permanent;
* a 96-bit UID and the flash-size register sit at the chip database's
  addresses, so a front end reading memory finds them where firmware would.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from transports.chips import Chip, FlashBlock
from transports.sim.clock import SimClock
from transports.sim.faults import FaultPlan

__all__ = ["SimChip", "SimFlashFault", "SimStats", "derive_uid"]


# The low bytes of the option word where RDP is not byte 0, as the part ships (the RDP
# byte itself is set from the chip database). F2/F4: USER/BOR 0xEC, the FLASH_OPTCR
# reset value 0x0FFFAAED (RM0033, RM0090) without its OPTLOCK/OPTSTRT control bits;
# F7: 0xFC from FLASH_OPTCR 0xC0FFAAFD (RM0385). H7/H5: the area is the OPTSR_PRG
# word itself — BOR/watchdog/reset bits in 7:0, further user options above RDP.
_SHIPPED_OPTION_WORDS: dict[str, bytes] = {
    "f2": bytes([0xEC, 0xAA]),
    "f4": bytes([0xEC, 0xAA]),
    "f7": bytes([0xFC, 0xAA]),
    "h7": (0x1C6A_AAF0).to_bytes(4, "little"),
    "h7ab": (0x1C6A_AAF0).to_bytes(4, "little"),
    "h5": (0x0000_EDF8).to_bytes(4, "little"),
}


class SimFlashFault(Exception):
    """The simulated flash controller refused an operation (PGERR, WRPERR, RDP…).

    ``reason`` is one of ``not-erased``, ``write-protected``, ``read-protected``,
    ``alignment``, ``outside``, ``locked``.
    """

    def __init__(self, reason: str, address: int, message: str = "") -> None:
        super().__init__(message or f"{reason} at 0x{address:08X}")
        self.reason = reason
        self.address = address


@dataclass(slots=True)
class SimStats:
    """Counters a test or benchmark can read after a run."""

    bytes_programmed: int = 0
    bytes_read: int = 0
    blocks_erased: int = 0
    mass_erases: int = 0
    resets: int = 0


def derive_uid(seed: str) -> bytes:
    """A stable, unique-looking 96-bit UID derived from a seed (e.g. the device name)."""
    return hashlib.sha256(f"flashrunner-uid:{seed}".encode()).digest()[:12]


class SimChip:
    """One simulated STM32. Thread-safe: every public method takes the chip's lock."""

    def __init__(self, chip: Chip, *, uid: bytes | None = None, clock: SimClock | None = None,
                 faults: FaultPlan | None = None, rdp_level: int = 0,
                 flash_size_register: int | None = None,
                 initial_flash: bytes | None = None) -> None:
        self.chip = chip
        self.geometry = chip.flash
        self.uid = uid if uid is not None else derive_uid(chip.part)
        if len(self.uid) != 12:
            raise ValueError("a UID is 96 bits (12 bytes)")
        self.clock = clock or SimClock()
        self.faults = faults or FaultPlan()
        self.stats = SimStats()
        self.lock = threading.RLock()
        self._flash = bytearray([self.geometry.erased]) * self.geometry.size
        if initial_flash is not None:
            self._flash[:len(initial_flash)] = initial_flash
        self._ram = bytearray(chip.ram[1] - chip.ram[0])
        self._option_bytes = bytearray(self._default_option_bytes())
        self._rdp_level = 0
        self._write_protected: set[int] = set()
        self.flash_size_register = (flash_size_register if flash_size_register is not None
                                    else chip.flash_kib)
        self.set_rdp_level(rdp_level, erase_on_regression=False)

    # ------------------------------------------------------------------ identity

    @property
    def dev_id(self) -> int:
        return self.chip.dev_id

    @property
    def uid_hex(self) -> str:
        return self.uid.hex()

    def system_bytes(self) -> dict[int, bytes]:
        """Read-only words firmware finds in system memory: UID and flash size."""
        offsets = self.chip.uid_offsets
        data = {self.chip.uid_address + off: self.uid[i * 4:i * 4 + 4]
                for i, off in enumerate(offsets)}
        data[self.chip.flash_size_address] = self.flash_size_register.to_bytes(2, "little")
        return data

    # ------------------------------------------------------------------ RDP / protection

    @property
    def rdp_level(self) -> int:
        return self._rdp_level

    def set_rdp_level(self, level: int, *, erase_on_regression: bool = True) -> None:
        """Change readout protection as an option-byte write followed by a reload would.

        1 → 0 mass-erases the flash (every family does this); leaving level 2 is
        impossible.
        """
        if level not in (0, 1, 2):
            raise ValueError("RDP level is 0, 1 or 2")
        with self.lock:
            if self._rdp_level == 2 and level != 2:
                raise SimFlashFault("locked", self.chip.option_bytes.address,
                                    "RDP level 2 is permanent")
            if level == 2 and not self.chip.option_bytes.has_level2:
                raise SimFlashFault("locked", self.chip.option_bytes.address,
                                    f"{self.chip.part} has no RDP level 2")
            if self._rdp_level >= 1 and level == 0 and erase_on_regression:
                self._mass_erase_unlocked()
            self._rdp_level = level
            ob = self.chip.option_bytes
            rdp = {0: ob.rdp_level0, 2: ob.rdp_level2}.get(level, 0x00)
            self._option_bytes[ob.rdp_offset] = rdp
            if self._complemented_option_bytes:
                self._option_bytes[ob.rdp_offset + 1] = rdp ^ 0xFF

    def write_protect(self, blocks: Iterable[int], protected: bool = True) -> None:
        with self.lock:
            for index in blocks:
                if protected:
                    self._write_protected.add(index)
                else:
                    self._write_protected.discard(index)

    @property
    def write_protected(self) -> frozenset[int]:
        return frozenset(self._write_protected)

    def _default_option_bytes(self) -> bytes:
        """The option bytes of a part as shipped: erased, RDP at level 0."""
        ob = self.chip.option_bytes
        image = bytearray([0xFF]) * ob.size
        prefix = _SHIPPED_OPTION_WORDS.get(self.chip.controller)
        if prefix is not None:
            image[:len(prefix)] = prefix[:ob.size]
        image[ob.rdp_offset] = ob.rdp_level0
        if self._complemented_option_bytes:
            image[ob.rdp_offset + 1] = ob.rdp_level0 ^ 0xFF
        return bytes(image)

    @property
    def _complemented_option_bytes(self) -> bool:
        """F0/F1/F3 store each option byte followed by its complement (RM0008 §2.5)."""
        return self.chip.option_bytes.size >= 2 and self.chip.controller in ("f0", "f1", "f1xl")

    @property
    def option_bytes(self) -> bytes:
        with self.lock:
            return bytes(self._option_bytes)

    def write_option_bytes(self, image: bytes) -> None:
        """Replace the option-byte image; its RDP byte (``rdp_offset``) is applied."""
        with self.lock:
            if len(image) != len(self._option_bytes):
                raise SimFlashFault("alignment", self.chip.option_bytes.address,
                                    f"option bytes are {len(self._option_bytes)} bytes")
            level = self.chip.option_bytes.level_of(image)
            self.set_rdp_level(level)
            self._option_bytes[:] = image

    # ------------------------------------------------------------------ flash

    @property
    def flash(self) -> bytes:
        """The whole flash array, as a test would dump it (bypasses RDP)."""
        with self.lock:
            return bytes(self._flash)

    def _offset(self, address: int, length: int) -> int:
        if not self.geometry.contains(address, max(length, 1)):
            raise SimFlashFault("outside", address,
                                f"0x{address:08X}+{length} is outside flash")
        return address - self.geometry.base

    def read_flash(self, address: int, length: int, *, debug: bool = True) -> bytes:
        """Read flash as a debugger or the bootloader would: refused at RDP ≥ 1."""
        with self.lock:
            if self._rdp_level >= 1 and debug:
                raise SimFlashFault("read-protected", address, "readout protection is active")
            offset = self._offset(address, length)
            self.stats.bytes_read += length
            return bytes(self._flash[offset:offset + length])

    def flash_array(self) -> bytearray:
        """The array itself, for a CPU emulator that maps it read-only: it is never
        resized or replaced, so a view of it stays the flash's content."""
        return self._flash

    def peek_flash(self, address: int, size: int) -> int:
        """A bus read of ``size`` bytes inside the array, little-endian, as
        :meth:`read_flash` without protection (for the core's own loads)."""
        offset = address - self.geometry.base
        self.stats.bytes_read += size
        return int.from_bytes(self._flash[offset:offset + size], "little")

    def is_erased(self, address: int, length: int) -> bool:
        with self.lock:
            return self._erased_at(self._offset(address, length), length)

    def _erased_at(self, offset: int, length: int) -> bool:
        """Every byte of the array from ``offset`` reads erased (lock held)."""
        return self._flash.count(self.geometry.erased, offset, offset + length) == length

    def program(self, address: int, data: bytes, *, require_erased: bool = False,
                zero_overwrite: bool = False, timed: bool = True) -> None:
        """Program ``data`` at ``address`` with NOR semantics (bits only clear).

        ``require_erased`` makes the call fail like PGERR/PROGERR when any
        target write unit is not erased — the check most controllers make; the
        array is then left untouched for that unit. ``zero_overwrite`` exempts
        a unit written with all zeros, as the F0/F1/F3 (PM0075 §2.3.3) and
        L4/G0/G4 (RM0351 §3.3.7) controllers do. Time for programming is
        charged to the clock (per write unit) unless ``timed`` is false.
        """
        if not data:
            return
        with self.lock:
            offset = self._offset(address, len(data))
            for block in self.geometry.blocks_covering(address, len(data)):
                if block.index in self._write_protected:
                    raise SimFlashFault("write-protected", block.address)
            if require_erased and not self._erased_at(offset, len(data)):
                unit = self.geometry.write_unit
                erased = self.geometry.erased
                start = offset - offset % unit
                blank = bytes([erased]) * unit
                for unit_start in range(start, offset + len(data), unit):
                    chunk = self._flash[unit_start:unit_start + unit]
                    if chunk == blank[:len(chunk)]:
                        continue
                    lo, hi = max(unit_start, offset), min(unit_start + unit, offset + len(data))
                    if zero_overwrite and not any(data[lo - offset:hi - offset]):
                        continue
                    raise SimFlashFault("not-erased", self.geometry.base + unit_start)
            # NOR: programming only clears bits (L0/L1, erased reading 0x00, only set them);
            # done on whole integers, not byte by byte.
            size = len(data)
            current = int.from_bytes(self._flash[offset:offset + size], "little")
            wanted = int.from_bytes(data, "little")
            result = current & wanted if self.geometry.erased == 0xFF else current | wanted
            self._flash[offset:offset + size] = result.to_bytes(size, "little")
            self.stats.bytes_programmed += size
        if timed:
            self.clock.advance(self.chip.timing.program_seconds(len(data),
                                                                self.geometry.write_unit))

    def erase_block(self, block: FlashBlock | int, *, timed: bool = True) -> None:
        """Erase one page or sector (by :class:`FlashBlock` or index)."""
        index = block if isinstance(block, int) else block.index
        if not 0 <= index < len(self.geometry.blocks):
            raise SimFlashFault("outside", self.geometry.base,
                                f"erase unit {index} does not exist on {self.chip.part}")
        unit = self.geometry.blocks[index]
        with self.lock:
            if self._rdp_level >= 1:
                raise SimFlashFault("read-protected", unit.address,
                                    "page erase is refused under readout protection")
            if index in self._write_protected:
                raise SimFlashFault("write-protected", unit.address)
            start = unit.address - self.geometry.base
            self._flash[start:start + unit.size] = bytes([self.geometry.erased]) * unit.size
            self.stats.blocks_erased += 1
        if timed:
            self.clock.advance(self.chip.timing.erase_seconds(unit.size))

    def mass_erase(self, *, timed: bool = True) -> None:
        """Erase the whole flash (refused while any page is write-protected)."""
        with self.lock:
            if self._write_protected:
                raise SimFlashFault("write-protected", self.geometry.base,
                                    "mass erase is refused while pages are write-protected")
            self._mass_erase_unlocked()
        if timed:
            self.clock.advance(self.chip.timing.mass_erase_ms / 1000)

    def _mass_erase_unlocked(self) -> None:
        self._flash[:] = bytes([self.geometry.erased]) * len(self._flash)
        self.stats.mass_erases += 1

    # ------------------------------------------------------------------ RAM & memory map

    def read_memory(self, address: int, length: int, *, debug: bool = True) -> bytes:
        """Read anything mapped: flash, RAM, option bytes, UID, flash-size register."""
        with self.lock:
            if self.geometry.contains(address, max(length, 1)):
                return self.read_flash(address, length, debug=debug)
            ram_start, ram_end = self.chip.ram
            if ram_start <= address and address + length <= ram_end:
                offset = address - ram_start
                return bytes(self._ram[offset:offset + length])
            ob = self.chip.option_bytes
            if ob.address <= address and address + length <= ob.address + ob.size:
                offset = address - ob.address
                return bytes(self._option_bytes[offset:offset + length])
            out = bytearray()
            system = self.system_bytes()
            for addr in range(address, address + length):
                for base, value in system.items():
                    if base <= addr < base + len(value):
                        out.append(value[addr - base])
                        break
                else:
                    raise SimFlashFault("outside", addr, f"nothing is mapped at 0x{addr:08X}")
            return bytes(out)

    def write_ram(self, address: int, data: bytes) -> None:
        with self.lock:
            ram_start, ram_end = self.chip.ram
            if not (ram_start <= address and address + len(data) <= ram_end):
                raise SimFlashFault("outside", address, f"0x{address:08X} is not RAM")
            offset = address - ram_start
            self._ram[offset:offset + len(data)] = data

    def reset(self) -> None:
        """A system reset: RAM content is kept (as on silicon), counters note it."""
        with self.lock:
            self.stats.resets += 1
