"""Simulated F2/F4/F7 flash controller, as RM0090 §3 and RM0383 §3 describe it.

Registers at 0x40023C00: KEYR 0x04, OPTKEYR 0x08, SR 0x0C (EOP 0, OPERR 1,
WRPERR 4, PGAERR 5, PGPERR 6, PGSERR 7, BSY 16; w1c), CR 0x10 (PG 0, SER 1,
MER 2, SNB 6:3, PSIZE 9:8, STRT 16, LOCK 31), OPTCR 0x14 (OPTLOCK 0,
OPTSTRT 1, RDP 15:8).

The array does not check that a word is erased (bits only clear); a bus
write whose width differs from PSIZE sets PGPERR, a write with PG clear sets
PGSERR, and nothing is programmed while an error flag is pending.
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

__all__ = ["SimF4Controller"]

SR_EOP, SR_OPERR, SR_WRPERR, SR_PGAERR, SR_PGPERR, SR_PGSERR, SR_BSY = (
    1 << 0, 1 << 1, 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 16)
SR_ERRORS = SR_OPERR | SR_WRPERR | SR_PGAERR | SR_PGPERR | SR_PGSERR
CR_PG, CR_SER, CR_MER, CR_MER1, CR_STRT, CR_LOCK = 1 << 0, 1 << 1, 1 << 2, 1 << 15, 1 << 16, \
    1 << 31
CR_SNB_SHIFT, CR_SNB_MASK = 3, 0x1F
CR_PSIZE_SHIFT = 8
OPTCR_OPTLOCK, OPTCR_OPTSTRT = 1 << 0, 1 << 1


class SimF4Controller(SimFlashController):
    def __init__(self, sim: SimChip, *, writes_during_busy: str = "stall") -> None:
        super().__init__(sim, writes_during_busy=writes_during_busy)
        self.keys = KeyLock(KEY1, KEY2)
        self.option_keys = KeyLock(OPTKEY1, OPTKEY2)
        self.cr = 0
        self.sr = 0
        self.optcr_pending: int | None = None

    @property
    def psize_bytes(self) -> int:
        return 1 << ((self.cr >> CR_PSIZE_SHIFT) & 0x3)

    def _optcr(self) -> int:
        if self.optcr_pending is not None:
            return self.optcr_pending
        rdp = self.chip.option_bytes.rdp_byte(self.sim.option_bytes)
        return 0x0FFF00EC | (rdp << 8)

    def read_register(self, offset: int) -> int:
        if offset == 0x0C:
            return self.sr | (SR_BSY if self.busy else 0)
        if offset == 0x10:
            return self.cr | (CR_LOCK if self.keys.locked else 0)
        if offset == 0x14:
            return self._optcr() & ~OPTCR_OPTLOCK | (OPTCR_OPTLOCK if self.option_keys.locked
                                                    else 0)
        if offset in (0x00, 0x04, 0x08, 0x18):
            return 0
        raise BusFault(self.base + offset)

    def write_register(self, offset: int, value: int) -> None:
        if offset == 0x04:
            self.keys.write(value, self.base + offset)
        elif offset == 0x08:
            self.option_keys.write(value, self.base + offset)
        elif offset == 0x0C:
            self.sr &= ~(value & (SR_ERRORS | SR_EOP))
        elif offset == 0x10:
            if value & CR_LOCK:
                self.keys.lock()
            if self.keys.locked:
                return
            self.cr = value & ~(CR_STRT | CR_LOCK)
            if value & CR_STRT and not self.busy:
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
        if self.sr & SR_ERRORS:
            return
        if self.cr & CR_SER:
            snb = (self.cr >> CR_SNB_SHIFT) & CR_SNB_MASK
            index = snb - 4 if snb >= 16 else snb  # RM0090: bank-2 sectors are 16..27
            if index >= len(self.chip.flash.blocks):
                self.sr |= SR_WRPERR
                return
            self._finish(self.erase_unit(index))
        elif self.cr & (CR_MER | CR_MER1):
            both = bool(self.cr & CR_MER) and bool(self.cr & CR_MER1)
            if self.chip.flash.banks == 1 or both:
                self._finish(self.erase_all())
                return
            bank = 1 if self.cr & CR_MER else 2  # RM0090 §3.6.4: MER bank 1, MER1 bank 2
            self._finish(self.erase_all([b.index for b in self.chip.flash.blocks
                                         if b.bank == bank]))

    def _finish(self, fault: str | None) -> None:
        if fault is None:
            self.sr |= SR_EOP
        else:
            self.sr |= SR_WRPERR

    def _apply_options(self) -> None:
        rdp = ((self.optcr_pending or 0) >> 8) & 0xFF
        image = bytearray(self.sim.option_bytes)
        image[self.chip.option_bytes.rdp_offset] = rdp
        self.occupy(self.chip.timing.page_erase_ms / 1000)
        try:
            self.sim.write_option_bytes(bytes(image))
        except Exception:  # level 2 cannot be left: the silicon ignores it
            self.sr |= SR_OPERR
        self.optcr_pending = None

    def write_flash(self, address: int, data: bytes) -> None:
        if self.keys.locked or not self.cr & CR_PG:
            self.sr |= SR_PGSERR
            return
        if len(data) != self.psize_bytes:
            self.sr |= SR_PGPERR
            return
        if address % len(data):
            self.sr |= SR_PGAERR
            return
        if self.sr & SR_ERRORS:
            return
        if not self.accept_write_while_busy():
            return
        self._finish(self.program_array(address, data, require_erased=False))

    def system_reset(self) -> None:
        self.keys.reset()
        self.option_keys.reset()
        self.cr = 0
        self.optcr_pending = None
