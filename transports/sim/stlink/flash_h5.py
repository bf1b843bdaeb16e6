"""Simulated H5 flash controller (RM0481 §7), non-secure registers, two banks.

NSKEYR 0x04, OPTKEYR 0x0C, OPTCR 0x1C (OPTLOCK 0, OPTSTRT 1), NSSR 0x20 (BSY 0,
WBNE 1, EOP 16, WRPERR 17, PGSERR 18, STRBERR 19, INCERR 20, OPTCHANGEERR 23),
NSCR 0x28 (LOCK 0, PG 1, SER 2, BER 3, FW 4, STRT 5, SNB 12:6, MER 15, BKSEL 31),
NSCCR 0x30 (write 1 to clear), OPTSR_CUR 0x50 / OPTSR_PRG 0x54 (PRODUCT_STATE
15:8). A 128-bit quad word is collected from four 32-bit writes and programmed
when complete; a write into another quad word first sets INCERR. Leaving a
closed product state is refused (it needs debug authentication).
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

__all__ = ["SimH5Controller"]

SR_BSY, SR_WBNE, SR_EOP = 1 << 0, 1 << 1, 1 << 16
SR_WRPERR, SR_PGSERR, SR_STRBERR, SR_INCERR, SR_OPTCHANGEERR = (
    1 << 17, 1 << 18, 1 << 19, 1 << 20, 1 << 23)
SR_ERRORS = SR_WRPERR | SR_PGSERR | SR_STRBERR | SR_INCERR | SR_OPTCHANGEERR
STATUS = StatusBits(busy=SR_BSY, eop=SR_EOP, errors=SR_ERRORS, refused=SR_WRPERR)
CR_LOCK, CR_PG, CR_SER, CR_BER, CR_STRT, CR_MER, CR_BKSEL = (
    1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 5, 1 << 15, 1 << 31)
OPTCR_OPTLOCK, OPTCR_OPTSTRT = 1 << 0, 1 << 1


class SimH5Controller(SimFlashController):
    def __init__(self, sim: SimChip, *, writes_during_busy: str = "stall") -> None:
        super().__init__(sim, writes_during_busy=writes_during_busy)
        self.regs = RegisterSet(STATUS, cr_lock=CR_LOCK, cr_start=CR_STRT)
        self.option_keys = KeyLock(OPTKEY1, OPTKEY2)
        self.word = self.chip.flash.write_unit
        self.buffer: tuple[int, bytearray] | None = None
        self.optsr_prg = self._optsr_cur()

    def _optsr_cur(self) -> int:
        # The option-byte area is the OPTSR word itself (chip database, rdp-offset 1).
        return int.from_bytes(self.sim.option_bytes[:4], "little")

    def read_register(self, offset: int) -> int:
        if offset == 0x1C:
            return OPTCR_OPTLOCK if self.option_keys.locked else 0
        if offset == 0x20:
            return self.regs.read_sr(self.busy) | (SR_WBNE if self.buffer else 0)
        if offset == 0x28:
            return self.regs.read_cr()
        if offset == 0x50:
            return self._optsr_cur()
        if offset == 0x54:
            return self.optsr_prg
        if offset < 0x100 and offset % 4 == 0:
            return 0
        raise BusFault(self.base + offset)

    def write_register(self, offset: int, value: int) -> None:
        if offset == 0x04:
            self.regs.keys.write(value, self.base + offset)
        elif offset == 0x0C:
            self.option_keys.write(value, self.base + offset)
        elif offset == 0x1C:
            if value & OPTCR_OPTLOCK:
                self.option_keys.lock()
            if not self.option_keys.locked and value & OPTCR_OPTSTRT:
                self._apply_options()
        elif offset == 0x28:
            if self.regs.write_cr(value) and not self.busy:
                self._start()
        elif offset == 0x30:
            self.regs.clear_status(value)
        elif offset == 0x54:
            if not self.option_keys.locked:
                self.optsr_prg = value
        elif offset < 0x100 and offset % 4 == 0:
            pass
        else:
            raise BusFault(self.base + offset)

    def _start(self) -> None:
        regs = self.regs
        bank = 2 if regs.cr & CR_BKSEL else 1
        if regs.cr & CR_SER:
            block = self.block_in_bank(bank, (regs.cr >> 6) & 0x7F)
            if block is None:
                regs.sr |= SR_PGSERR
                return
            regs.finish(self.erase_unit(block.index))
        elif regs.cr & CR_BER:
            regs.finish(self.erase_all(self.bank_blocks(bank)))
        elif regs.cr & CR_MER:
            regs.finish(self.erase_all())

    def _apply_options(self) -> None:
        state = (self.optsr_prg >> 8) & 0xFF
        ob = self.chip.option_bytes
        if ob.level_of(self.sim.option_bytes) > 0 and ob.rdp_level(state) == 0:
            self.regs.sr |= SR_OPTCHANGEERR  # regression needs debug authentication
            return
        if not self.load_option_bytes(ob.rdp_offset, bytes([state])):
            self.regs.sr |= SR_OPTCHANGEERR  # a locked part stays locked
        self.optsr_prg = self._optsr_cur()

    def write_flash(self, address: int, data: bytes) -> None:
        regs = self.regs
        if regs.keys.locked or not regs.cr & CR_PG or len(data) != 4:
            regs.sr |= SR_PGSERR
            return
        aligned = address - address % self.word
        if self.buffer is not None and self.buffer[0] != aligned:
            regs.sr |= SR_INCERR
            self.buffer = None
            return
        if self.buffer is None:
            if not self.accept_write_while_busy():
                return
            self.buffer = (aligned, bytearray(b"\xff" * self.word))
        start, words = self.buffer
        words[address - aligned:address - aligned + 4] = data
        if address + 4 == aligned + self.word:
            self.buffer = None
            if not regs.sr & SR_ERRORS:
                regs.finish(self.program_array(start, bytes(words), require_erased=False))

    def system_reset(self) -> None:
        self.regs.reset()
        self.option_keys.reset()
        self.buffer = None
