"""Simulated F0/F1/F3 flash controller (FPEC), as RM0008 §3 and PM0075 describe it.

Registers at 0x40022000: KEYR 0x04, OPTKEYR 0x08, SR 0x0C (BSY 0, PGERR 2,
WRPRTERR 4, EOP 5; errors and EOP write-1-to-clear), CR 0x10 (PG 0, PER 1,
MER 2, OPTPG 4, OPTER 5, STRT 6, LOCK 7, OPTWRE 9), AR 0x14, OBR 0x1C, WRPR 0x20.

XL-density parts (RM0008 §3.3.1, controller ``f1xl``) have a second register
set at +0x40 (KEYR2 0x44, SR2 0x4C, CR2 0x50, AR2 0x54) for bank 2.

Programming is by half-word: PM0075 §2.3.2 — a half-word that does not read
0xFFFF sets PGERR (unless 0x0000 is written); PM0075 §2.3.3 — any write
that is not a half-word long is answered with a bus error.
Option bytes are programmed into a stored image and loaded at the next reset.
"""

from __future__ import annotations

from transports.sim.chip import SimChip
from transports.sim.stlink.controller import KEY1, KEY2, BusFault, KeyLock, SimFlashController
from transports.sim.stlink.regfile import RegisterSet, StatusBits

__all__ = ["SimF1Controller"]

SR_BSY, SR_PGERR, SR_WRPRTERR, SR_EOP = 1 << 0, 1 << 2, 1 << 4, 1 << 5
# PM0075 §2.3: protection faults set WRPRTERR; anything else the array refuses, PGERR.
STATUS = StatusBits(busy=SR_BSY, eop=SR_EOP, errors=SR_PGERR | SR_WRPRTERR, refused=SR_PGERR,
                    by_reason={"write-protected": SR_WRPRTERR, "read-protected": SR_WRPRTERR})
CR_PG, CR_PER, CR_MER, CR_OPTPG, CR_OPTER, CR_STRT, CR_LOCK, CR_OPTWRE = (
    1 << 0, 1 << 1, 1 << 2, 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 9)


class _Bank(RegisterSet):
    """One FPEC register set (bank 2 of XL parts has its own) with its address register."""

    def __init__(self) -> None:
        super().__init__(STATUS, cr_lock=CR_LOCK, cr_start=CR_STRT)
        self.ar = 0


class SimF1Controller(SimFlashController):
    def __init__(self, sim: SimChip, *, writes_during_busy: str = "stall") -> None:
        super().__init__(sim, writes_during_busy=writes_during_busy)
        self.banks = [_Bank()] + ([_Bank()] if sim.chip.controller == "f1xl" else [])
        self.option_keys = KeyLock(KEY1, KEY2)
        self.stored_options = bytearray(sim.option_bytes)

    # bank 1's registers double as the controller's (option bytes live there)
    @property
    def keys(self) -> KeyLock:
        return self.banks[0].keys

    @property
    def cr(self) -> int:
        return self.banks[0].cr

    @property
    def sr(self) -> int:
        return self.banks[0].sr

    @sr.setter
    def sr(self, value: int) -> None:
        self.banks[0].sr = value

    def _split(self, offset: int) -> tuple[_Bank, int]:
        if len(self.banks) > 1 and offset in (0x44, 0x4C, 0x50, 0x54):
            return self.banks[1], offset - 0x40
        return self.banks[0], offset

    def _bank_for(self, address: int) -> _Bank:
        bank2 = self.chip.flash.bank2_base
        if len(self.banks) > 1 and bank2 is not None and address >= bank2:
            return self.banks[1]
        return self.banks[0]

    # -- registers ---------------------------------------------------------------------------

    def read_register(self, offset: int) -> int:
        bank, offset = self._split(offset)
        if offset == 0x0C:
            return bank.read_sr(self.busy)
        if offset == 0x10:
            value = bank.read_cr()
            if bank is self.banks[0] and not self.option_keys.locked:
                value |= CR_OPTWRE
            return value
        if offset == 0x14:
            return bank.ar
        if offset == 0x1C:
            # OBR: RDPRT bit 1 reflects the loaded protection; USER bits 9:2.
            return (0x2 if self.sim.rdp_level else 0) | (self.sim.option_bytes[2] << 2)
        if offset == 0x20:
            return int.from_bytes(bytes(self.sim.option_bytes[8:16:2]), "little")
        if offset in (0x00, 0x04, 0x08):
            return 0
        raise BusFault(self.base + offset)

    def write_register(self, offset: int, value: int) -> None:
        bank, offset = self._split(offset)
        if offset == 0x04:
            bank.keys.write(value, self.base + offset)
        elif offset == 0x08:
            if self.keys.locked:
                raise BusFault(self.base + offset, "OPTKEYR needs an unlocked FPEC")
            self.option_keys.write(value, self.base + offset)
        elif offset == 0x0C:
            bank.clear_status(value)
        elif offset == 0x10:
            self._write_cr(bank, value)
        elif offset == 0x14:
            if not bank.keys.locked:
                bank.ar = value
        elif offset == 0x00:
            pass
        else:
            raise BusFault(self.base + offset)

    def _write_cr(self, bank: _Bank, value: int) -> None:
        if value & CR_LOCK:
            bank.keys.lock()
            if bank is self.banks[0]:
                self.option_keys.lock()
        if bank.keys.locked:
            return  # RM0008: CR cannot be written while LOCK is set
        if bank is self.banks[0] and not value & CR_OPTWRE:
            self.option_keys.lock()
        bank.cr = value & (CR_PG | CR_PER | CR_MER | CR_OPTPG | CR_OPTER)
        if value & CR_STRT and not self.busy:
            self._start(bank)

    def _start(self, bank: _Bank) -> None:
        if bank.cr & CR_PER:
            address = bank.ar
            if not self.chip.flash.contains(address) or self._bank_for(address) is not bank:
                return
            index = self.chip.flash.block_at(address).index
            bank.finish(self.erase_unit(index))
        elif bank.cr & CR_MER:
            if len(self.banks) == 1:
                bank.finish(self.erase_all())
            else:
                number = self.banks.index(bank) + 1
                bank.finish(self.erase_all(self.bank_blocks(number)))
        elif bank.cr & CR_OPTER:
            if self.option_keys.locked:
                return
            # RM0008 §2.5: erasing the options while protected mass-erases at reload.
            self.stored_options[:] = b"\xff" * len(self.stored_options)
            self.occupy(self.chip.timing.page_erase_ms / 1000)
            bank.sr |= SR_EOP

    # -- the array ---------------------------------------------------------------------------

    def write_flash(self, address: int, data: bytes) -> None:
        if len(data) != 2:
            raise BusFault(address, f"{len(data) * 8}-bit writes to flash are a bus error")
        self._program_half_word(address, data)

    def write_flash_run(self, address: int, data: bytes, width: int) -> None:
        """A run of half-word writes, taken whole when every cycle would program.

        That is a stalling controller (genuine F1), one bank, PG set, the
        range erased and unprotected: then each cycle would stall for the one
        before and program, so the run is one program of the whole range, one
        busy period of every half-word's time and one clock step for the
        stalls. Anything else (PGERR or WRPRTERR on some cycle, dropped writes
        on a clone, a run across banks, widths the bus refuses) goes cycle by
        cycle, with exactly those outcomes.
        """
        cycles = len(data) // 2
        bank = self._bank_for(address)
        if (width != 2 or cycles < 2 or self.writes_during_busy != "stall"
                or self._bank_for(address + len(data) - 1) is not bank
                or bank.keys.locked or not bank.cr & CR_PG
                or not self.sim.is_erased(address, len(data))
                or self._touches_protected(address, len(data))):
            super().write_flash_run(address, data, width)
            return
        self.accept_write_while_busy()
        bank.finish(self.program_array(address, data, require_erased=False))
        self.stall_through_run(cycles, self.program_time(2))

    def _touches_protected(self, address: int, length: int) -> bool:
        protected = self.sim.write_protected
        return bool(protected) and any(
            block.index in protected
            for block in self.chip.flash.blocks_covering(address, length))

    def _program_half_word(self, address: int, half: bytes) -> None:
        bank = self._bank_for(address)
        if bank.keys.locked or not bank.cr & CR_PG:
            raise BusFault(address, "flash write without PG")
        if not self.accept_write_while_busy():
            return
        value = int.from_bytes(half, "little")
        current = self.sim.read_flash(address, 2, debug=False)
        require = value != 0  # PM0075: 0x0000 may be written over anything
        if require and current != b"\xff\xff":
            bank.sr |= SR_PGERR
            return
        bank.finish(self.program_array(address, half, require_erased=False))

    def read_option_area(self, address: int, length: int) -> bytes | None:
        start = address - self.chip.option_bytes.address
        return bytes(self.stored_options[start:start + length])

    def write_option_area(self, address: int, data: bytes) -> None:
        if not (self.cr & CR_OPTPG) or self.option_keys.locked:
            raise BusFault(address, "option write without OPTPG/OPTWRE")
        if not self.accept_write_while_busy():
            return
        start = address - self.chip.option_bytes.address
        for i, byte in enumerate(data):
            if self.stored_options[start + i] != 0xFF and byte != 0:
                self.sr |= SR_PGERR
                return
        for i, byte in enumerate(data):
            self.stored_options[start + i] &= byte
        self.occupy(self.program_time(len(data)))
        self.sr |= SR_EOP

    def system_reset(self) -> None:
        for bank in self.banks:
            bank.reset()
        self.option_keys.reset()
        if bytes(self.stored_options) != self.sim.option_bytes:
            image = bytes(self.stored_options)
            if (image[0] ^ image[1]) != 0xFF:
                # RM0008 §2.5: a corrupt RDP pair reads as "protected" (OPTERR).
                image = bytes([0x00, 0xFF]) + image[2:]
            self.sim.write_option_bytes(image)
        self.stored_options[:] = self.sim.option_bytes
