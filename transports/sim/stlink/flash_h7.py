"""Simulated H74x/H75x flash controller (RM0433 §4), two banks.

Per bank (bank 2 at +0x100): KEYR 0x04, CR 0x0C (LOCK 0, PG 1, SER 2, BER 3,
PSIZE 5:4, FW 6, START 7, SNB 10:8), SR 0x10 (BSY 0, WBNE 1, QW 2, EOP 16,
WRPERR 17, PGSERR 18, STRBERR 19, INCERR 21, OPERR 22), CCR 0x14 (w1c).
Shared: OPTKEYR 0x08, OPTCR 0x18 (OPTLOCK 0, OPTSTART 1, MER 4), OPTSR_CUR
0x1C and OPTSR_PRG 0x20 (RDP 15:8).

A 256-bit flash word is collected from eight 32-bit writes to one aligned
word and programmed when complete (QW set while it programs); a write into a
different flash word before the current one is complete sets INCERR; a
write with PG clear sets PGSERR. H7A3/H7B3 (``h7ab``): 128-bit words, START
bit 5, sector number at bits 12:6.
"""

from __future__ import annotations

from transports.sim.chip import SimChip
from transports.sim.stlink.controller import (
    OPTKEY1,
    OPTKEY2,
    BusFault,
    KeyLock,
    SimFlashController,
)
from transports.sim.stlink.regfile import RegisterSet, StatusBits

__all__ = ["SimH7Controller"]

SR_BSY, SR_WBNE, SR_QW, SR_EOP, SR_WRPERR, SR_PGSERR, SR_STRBERR, SR_INCERR, SR_OPERR = (
    1 << 0, 1 << 1, 1 << 2, 1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 21, 1 << 22)
SR_ERRORS = SR_WRPERR | SR_PGSERR | SR_STRBERR | SR_INCERR | SR_OPERR
# QW reads set with BSY: stlink-org polls QW rather than BSY.
STATUS = StatusBits(busy=SR_QW | SR_BSY, eop=SR_EOP, errors=SR_ERRORS, refused=SR_WRPERR)
CR_LOCK, CR_PG, CR_SER, CR_BER, CR_START = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 7
CR_START_AB = 1 << 5
OPTCR_OPTLOCK, OPTCR_OPTSTART, OPTCR_MER = 1 << 0, 1 << 1, 1 << 4


class _Bank(RegisterSet):
    """One bank's register set, its flash-word write buffer and its own busy time."""

    def __init__(self, number: int, start_bit: int) -> None:
        super().__init__(STATUS, cr_lock=CR_LOCK, cr_start=start_bit)
        self.number = number
        self.buffer_address: int | None = None
        self.buffer = bytearray()
        self.buffer_mask = 0
        self.busy_until = 0.0

    def drop_buffer(self) -> None:
        self.buffer_address, self.buffer, self.buffer_mask = None, bytearray(), 0


class SimH7Controller(SimFlashController):
    def __init__(self, sim: SimChip, *, writes_during_busy: str = "stall") -> None:
        super().__init__(sim, writes_during_busy=writes_during_busy)
        ab = self.chip.controller == "h7ab"
        start_bit = CR_START_AB if ab else CR_START
        self.banks = (_Bank(1, start_bit), _Bank(2, start_bit))
        self.option_keys = KeyLock(OPTKEY1, OPTKEY2)
        self.optsr_prg = self._optsr_cur()
        self.word = self.chip.flash.write_unit
        self.snb_shift, self.snb_mask = (6, 0x7F) if ab else (8, 0x7)

    def _optsr_cur(self) -> int:
        # The option-byte area is the OPTSR word itself (chip database, rdp-offset 1).
        return int.from_bytes(self.sim.option_bytes[:4], "little")

    def _bank_of(self, address: int) -> int:
        bank2 = self.chip.flash.bank2_base
        return 1 if bank2 is not None and address >= bank2 else 0

    def read_register(self, offset: int) -> int:
        bank, reg = (self.banks[1], offset - 0x100) if offset >= 0x100 else \
            (self.banks[0], offset)
        if reg == 0x0C:
            return bank.read_cr()
        if reg == 0x10:
            return bank.read_sr(self.now < bank.busy_until) | (SR_WBNE if bank.buffer else 0)
        if offset == 0x18:
            return OPTCR_OPTLOCK if self.option_keys.locked else 0
        if offset == 0x1C:
            return self._optsr_cur()
        if offset == 0x20:
            return self.optsr_prg
        if reg in (0x00, 0x04, 0x08, 0x14, 0x24):
            return 0
        raise BusFault(self.base + offset)

    def write_register(self, offset: int, value: int) -> None:
        bank, reg = (self.banks[1], offset - 0x100) if offset >= 0x100 else \
            (self.banks[0], offset)
        if reg == 0x04:
            bank.keys.write(value, self.base + offset)
        elif offset == 0x08:
            self.option_keys.write(value, self.base + offset)
        elif reg == 0x0C:
            if bank.write_cr(value) and self.now >= bank.busy_until:
                self._start(bank)
        elif reg == 0x14:
            bank.clear_status(value)
        elif offset == 0x18:
            if value & OPTCR_OPTLOCK:
                self.option_keys.lock()
            if self.option_keys.locked:
                return
            if value & OPTCR_OPTSTART:
                self._apply_options()
            if value & OPTCR_MER:
                self.erase_all()
        elif offset == 0x20:
            if not self.option_keys.locked:
                self.optsr_prg = value
        elif reg in (0x00, 0x24):
            pass
        else:
            raise BusFault(self.base + offset)

    def _start(self, bank: _Bank) -> None:
        if bank.cr & CR_SER:
            block = self.block_in_bank(bank.number, (bank.cr >> self.snb_shift) & self.snb_mask)
            if block is None:
                bank.sr |= SR_PGSERR
                return
            bank.finish(self.erase_unit(block.index))
            bank.busy_until = self.busy_until
        elif bank.cr & CR_BER:
            bank.finish(self.erase_all(self.bank_blocks(bank.number)))
            bank.busy_until = self.busy_until

    def _apply_options(self) -> None:
        rdp = (self.optsr_prg >> 8) & 0xFF
        if not self.load_option_bytes(self.chip.option_bytes.rdp_offset, bytes([rdp])):
            self.banks[0].sr |= SR_OPERR  # level 2 stays level 2
        self.optsr_prg = self._optsr_cur()

    def write_flash(self, address: int, data: bytes) -> None:
        bank = self.banks[self._bank_of(address)]
        if bank.keys.locked or not bank.cr & CR_PG or len(data) != 4:
            bank.sr |= SR_PGSERR
            return
        aligned = address - address % self.word
        if bank.buffer_address is not None and bank.buffer_address != aligned:
            bank.sr |= SR_INCERR
            bank.drop_buffer()
            return
        if bank.buffer_address is None:
            if self.now < bank.busy_until and self.writes_during_busy == "stall":
                self.sim.clock.advance(bank.busy_until - self.now)
            bank.buffer_address = aligned
            bank.buffer = bytearray(b"\xff" * self.word)
        offset = address - aligned
        bank.buffer[offset:offset + 4] = data
        bank.buffer_mask |= 0xF << offset
        if bank.buffer_mask == (1 << self.word) - 1:
            word, at = bytes(bank.buffer), aligned
            bank.drop_buffer()
            if bank.sr & SR_ERRORS:
                return
            self.busy_until = bank.busy_until
            bank.finish(self.program_array(at, word, require_erased=False))
            bank.busy_until = self.busy_until

    def system_reset(self) -> None:
        for bank in self.banks:
            bank.reset()
            bank.buffer_address, bank.buffer = None, bytearray()
        self.option_keys.reset()
