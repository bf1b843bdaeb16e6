"""Simulated F2/F4/F7 flash controller, as RM0090 §3 and RM0383 §3 describe it.

Registers at 0x40023C00: KEYR 0x04, OPTKEYR 0x08, SR 0x0C (EOP 0, OPERR 1,
WRPERR 4, PGAERR 5, PGPERR 6, PGSERR 7, BSY 16; w1c), CR 0x10 (PG 0, SER 1,
MER 2, SNB 6:3, PSIZE 9:8, STRT 16, LOCK 31), OPTCR 0x14 (OPTLOCK 0,
OPTSTRT 1, BOR_LEV 3:2, USER 7:5, RDP 15:8). OPTCR[15:0] mirrors the low
half-word of the option bytes (USER/BOR, then RDP); OPTSTRT programs both.

The array does not check that a word is erased (bits only clear); a bus
write whose width differs from PSIZE sets PGPERR, a write with PG clear sets
PGSERR, and nothing is programmed while an error flag is pending. EOP is set
at the end of a successful operation only while CR.EOPIE is set (RM0090
§3.9.5, RM0383 §3.8.5).
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

__all__ = ["SimF4Controller"]

SR_EOP, SR_OPERR, SR_WRPERR, SR_PGAERR, SR_PGPERR, SR_PGSERR, SR_BSY = (
    1 << 0, 1 << 1, 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 16)
SR_ERRORS = SR_OPERR | SR_WRPERR | SR_PGAERR | SR_PGPERR | SR_PGSERR
STATUS = StatusBits(busy=SR_BSY, eop=SR_EOP, errors=SR_ERRORS, refused=SR_WRPERR)
CR_PG, CR_SER, CR_MER, CR_MER1, CR_STRT, CR_LOCK = 1 << 0, 1 << 1, 1 << 2, 1 << 15, 1 << 16, \
    1 << 31
CR_EOPIE = 1 << 24
CR_SNB_SHIFT, CR_SNB_MASK = 3, 0x1F
CR_PSIZE_SHIFT = 8
OPTCR_OPTLOCK, OPTCR_OPTSTRT = 1 << 0, 1 << 1


class SimF4Controller(SimFlashController):
    def __init__(self, sim: SimChip, *, writes_during_busy: str = "stall") -> None:
        super().__init__(sim, writes_during_busy=writes_during_busy)
        self.regs = RegisterSet(STATUS, cr_lock=CR_LOCK, cr_start=CR_STRT)
        self.option_keys = KeyLock(OPTKEY1, OPTKEY2)
        self.optcr_pending: int | None = None

    def _finish(self, fault: str | None) -> None:
        """An operation ended: its error flag, or EOP when EOPIE asks for it."""
        if fault is not None:
            self.regs.finish(fault)
        elif self.regs.cr & CR_EOPIE:
            self.regs.sr |= SR_EOP

    @property
    def psize_bytes(self) -> int:
        return 1 << ((self.regs.cr >> CR_PSIZE_SHIFT) & 0x3)

    def _optcr(self) -> int:
        if self.optcr_pending is not None:
            return self.optcr_pending
        return 0x0FFF_0000 | (int.from_bytes(self.sim.option_bytes[:2], "little")
                              & ~(OPTCR_OPTLOCK | OPTCR_OPTSTRT))

    def read_register(self, offset: int) -> int:
        if offset == 0x0C:
            return self.regs.read_sr(self.busy)
        if offset == 0x10:
            return self.regs.read_cr()
        if offset == 0x14:
            return self._optcr() & ~OPTCR_OPTLOCK | (OPTCR_OPTLOCK if self.option_keys.locked
                                                    else 0)
        if offset in (0x00, 0x04, 0x08, 0x18):
            return 0
        raise BusFault(self.base + offset)

    def write_register(self, offset: int, value: int) -> None:
        if offset == 0x04:
            self.regs.keys.write(value, self.base + offset)
        elif offset == 0x08:
            self.option_keys.write(value, self.base + offset)
        elif offset == 0x0C:
            self.regs.clear_status(value)
        elif offset == 0x10:
            if self.regs.write_cr(value) and not self.busy:
                self._start()
        elif offset == 0x14:
            if self.option_keys.locked:
                return
            self.optcr_pending = value & ~(OPTCR_OPTSTRT | OPTCR_OPTLOCK)
            if value & OPTCR_OPTLOCK:
                self.option_keys.lock()
            if value & OPTCR_OPTSTRT:
                self._apply_options()
        elif offset in (0x00, 0x18):
            pass
        else:
            raise BusFault(self.base + offset)

    def _start(self) -> None:
        regs = self.regs
        if regs.sr & SR_ERRORS:
            return
        if regs.cr & CR_SER:
            snb = (regs.cr >> CR_SNB_SHIFT) & CR_SNB_MASK
            index = snb - 4 if snb >= 16 else snb  # RM0090: bank-2 sectors are 16..27
            if index >= len(self.chip.flash.blocks):
                regs.sr |= SR_WRPERR
                return
            self._finish(self.erase_unit(index))
        elif regs.cr & (CR_MER | CR_MER1):
            both = bool(regs.cr & CR_MER) and bool(regs.cr & CR_MER1)
            if self.chip.flash.banks == 1 or both:
                self._finish(self.erase_all())
                return
            bank = 1 if regs.cr & CR_MER else 2  # RM0090 §3.6.4: MER bank 1, MER1 bank 2
            self._finish(self.erase_all(self.bank_blocks(bank)))

    def _apply_options(self) -> None:
        control_bits = OPTCR_OPTLOCK | OPTCR_OPTSTRT  # reserved bits in the option word
        low = ((self.optcr_pending or 0) & 0xFFFF & ~control_bits) \
            | (self.sim.option_bytes[0] & control_bits)
        self.occupy(self.chip.timing.page_erase_ms / 1000)
        # Level 2 cannot be left: the silicon ignores the change and flags OPERR.
        if not self.load_option_bytes(0, low.to_bytes(2, "little")):
            self.regs.sr |= SR_OPERR
        self.optcr_pending = None

    def write_flash(self, address: int, data: bytes) -> None:
        regs = self.regs
        if regs.keys.locked or not regs.cr & CR_PG:
            regs.sr |= SR_PGSERR
            return
        if len(data) != self.psize_bytes:
            regs.sr |= SR_PGPERR
            return
        if address % len(data):
            regs.sr |= SR_PGAERR
            return
        if regs.sr & SR_ERRORS:
            return
        if not self.accept_write_while_busy():
            return
        self._finish(self.program_array(address, data, require_erased=False))

    def system_reset(self) -> None:
        self.regs.reset()
        self.option_keys.reset()
        self.optcr_pending = None
