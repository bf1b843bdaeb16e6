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
    KEY1,
    KEY2,
    OPTKEY1,
    OPTKEY2,
    BusFault,
    KeyLock,
    SimFlashController,
)

__all__ = ["SimH5Controller"]

SR_BSY, SR_WBNE, SR_EOP = 1 << 0, 1 << 1, 1 << 16
SR_WRPERR, SR_PGSERR, SR_STRBERR, SR_INCERR, SR_OPTCHANGEERR = (
    1 << 17, 1 << 18, 1 << 19, 1 << 20, 1 << 23)
SR_ERRORS = SR_WRPERR | SR_PGSERR | SR_STRBERR | SR_INCERR | SR_OPTCHANGEERR
CR_LOCK, CR_PG, CR_SER, CR_BER, CR_STRT, CR_MER, CR_BKSEL = (
    1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 5, 1 << 15, 1 << 31)
OPTCR_OPTLOCK, OPTCR_OPTSTRT = 1 << 0, 1 << 1


class SimH5Controller(SimFlashController):
    def __init__(self, sim: SimChip, *, writes_during_busy: str = "stall") -> None:
        super().__init__(sim, writes_during_busy=writes_during_busy)
        self.keys = KeyLock(KEY1, KEY2)
        self.option_keys = KeyLock(OPTKEY1, OPTKEY2)
        self.cr = 0
        self.sr = 0
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
            return self.sr | (SR_BSY if self.busy else 0) | (SR_WBNE if self.buffer else 0)
        if offset == 0x28:
            return self.cr | (CR_LOCK if self.keys.locked else 0)
        if offset == 0x50:
            return self._optsr_cur()
        if offset == 0x54:
            return self.optsr_prg
        if offset < 0x100 and offset % 4 == 0:
            return 0
        raise BusFault(self.base + offset)

    def write_register(self, offset: int, value: int) -> None:
        if offset == 0x04:
            self.keys.write(value, self.base + offset)
        elif offset == 0x0C:
            self.option_keys.write(value, self.base + offset)
        elif offset == 0x1C:
            if value & OPTCR_OPTLOCK:
                self.option_keys.lock()
            if not self.option_keys.locked and value & OPTCR_OPTSTRT:
                self._apply_options()
        elif offset == 0x28:
            if value & CR_LOCK:
                self.keys.lock()
            if self.keys.locked:
                return
            self.cr = value & ~(CR_STRT | CR_LOCK)
            if value & CR_STRT and not self.busy:
                self._start()
        elif offset == 0x30:
            self.sr &= ~(value & (SR_ERRORS | SR_EOP))
        elif offset == 0x54:
            if not self.option_keys.locked:
                self.optsr_prg = value
        elif offset < 0x100 and offset % 4 == 0:
            pass
        else:
            raise BusFault(self.base + offset)

    def _start(self) -> None:
        bank = 2 if self.cr & CR_BKSEL else 1
        flash = self.chip.flash
        if self.cr & CR_SER:
            snb = (self.cr >> 6) & 0x7F
            for block in flash.blocks:
                if block.bank == bank and block.index_in_bank == snb:
                    self._finish(self.erase_unit(block.index))
                    return
            self.sr |= SR_PGSERR
        elif self.cr & CR_BER:
            self._finish(self.erase_all([b.index for b in flash.blocks if b.bank == bank]))
        elif self.cr & CR_MER:
            self._finish(self.erase_all())

    def _finish(self, fault: str | None) -> None:
        self.sr |= SR_EOP if fault is None else SR_WRPERR

    def _apply_options(self) -> None:
        state = (self.optsr_prg >> 8) & 0xFF
        ob = self.chip.option_bytes
        if ob.level_of(self.sim.option_bytes) > 0 and ob.rdp_level(state) == 0:
            self.sr |= SR_OPTCHANGEERR  # regression needs debug authentication
            return
        image = bytearray(self.sim.option_bytes)
        image[ob.rdp_offset] = state
        try:
            self.sim.write_option_bytes(bytes(image))
        except Exception:  # a locked part stays locked
            self.sr |= SR_OPTCHANGEERR
        self.optsr_prg = self._optsr_cur()

    def write_flash(self, address: int, data: bytes) -> None:
        if self.keys.locked or not self.cr & CR_PG or len(data) != 4:
            self.sr |= SR_PGSERR
            return
        aligned = address - address % self.word
        if self.buffer is not None and self.buffer[0] != aligned:
            self.sr |= SR_INCERR
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
            if not self.sr & SR_ERRORS:
                self._finish(self.program_array(start, bytes(words), require_erased=False))

    def system_reset(self) -> None:
        self.keys.reset()
        self.option_keys.reset()
        self.cr = 0
        self.buffer = None
