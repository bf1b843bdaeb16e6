"""Simulated L4/L4+/G0/G4/WB/WL/C0 flash controller (RM0351 §3, RM0444 §3).

Registers at the controller base: KEYR 0x08, OPTKEYR 0x0C, SR 0x10 (EOP 0,
OPERR 1, PROGERR 3, WRPERR 4, PGAERR 5, SIZERR 6, PGSERR 7, BSY 16; w1c),
CR 0x14 (PG 0, PER 1, MER1 2, PNB from 3, BKER 11 (G0: 13), MER2 15, STRT 16,
OPTSTRT 17, OBL_LAUNCH 27, OPTLOCK 30, LOCK 31), OPTR 0x20 (RDP 7:0).

Programming is by 64-bit double word: the first 32-bit write must be 8-byte
aligned (PGAERR), the second completes it; a non-erased double word sets
PROGERR; a write with PG clear sets PGSERR; anything but a 32-bit access
sets SIZERR. OPTSTRT stores the options; they load at OBL_LAUNCH or reset.

L5 and U5 (RM0438 §6, RM0456 §7) use the same bits through their non-secure
registers at other offsets (NSKEYR 0x08, OPTKEYR 0x10, NSSR 0x20, NSCR 0x28,
OPTR 0x40); U5 programs 128-bit quad words.
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

__all__ = ["SimL4Controller"]

SR_EOP, SR_OPERR, SR_PROGERR, SR_WRPERR, SR_PGAERR, SR_SIZERR, SR_PGSERR, SR_BSY = (
    1 << 0, 1 << 1, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 16)
SR_ERRORS = SR_OPERR | SR_PROGERR | SR_WRPERR | SR_PGAERR | SR_SIZERR | SR_PGSERR
STATUS = StatusBits(busy=SR_BSY, eop=SR_EOP, errors=SR_ERRORS, refused=SR_WRPERR,
                    by_reason={"not-erased": SR_PROGERR})
CR_PG, CR_PER, CR_MER1, CR_MER2, CR_STRT, CR_OPTSTRT, CR_OBL_LAUNCH, CR_OPTLOCK, CR_LOCK = (
    1 << 0, 1 << 1, 1 << 2, 1 << 15, 1 << 16, 1 << 17, 1 << 27, 1 << 30, 1 << 31)


#: controller kind → (KEYR, OPTKEYR, SR, CR, OPTR) offsets
LAYOUTS = {"l5": (0x08, 0x10, 0x20, 0x28, 0x40), "u5": (0x08, 0x10, 0x20, 0x28, 0x40)}
L4_LAYOUT = (0x08, 0x0C, 0x10, 0x14, 0x20)


class SimL4Controller(SimFlashController):
    def __init__(self, sim: SimChip, *, writes_during_busy: str = "stall") -> None:
        super().__init__(sim, writes_during_busy=writes_during_busy)
        self.regs = RegisterSet(STATUS, cr_lock=CR_LOCK, cr_start=CR_STRT)
        self.option_keys = KeyLock(OPTKEY1, OPTKEY2)
        self.pending: tuple[int, bytes] | None = None
        self.unit = self.chip.flash.write_unit
        self.keyr, self.optkeyr, self.sr_offset, self.cr_offset, self.optr_offset = \
            LAYOUTS.get(self.chip.controller, L4_LAYOUT)
        self.bker_bit = 13 if self.chip.controller == "g0" else 11
        self.pnb_mask = 0x3FF if self.chip.controller == "g0" else 0xFF
        self.optr_stored = int.from_bytes(sim.option_bytes[:4], "little")

    def read_register(self, offset: int) -> int:
        if offset == self.sr_offset:
            return self.regs.read_sr(self.busy)
        if offset == self.cr_offset:
            return self.regs.read_cr() | (CR_OPTLOCK if self.option_keys.locked else 0)
        if offset == self.optr_offset:
            return self.optr_stored
        if offset < 0x100 and offset % 4 == 0:
            return 0  # ACR, PDKEYR, ECCR, … read as reset values
        raise BusFault(self.base + offset)

    def write_register(self, offset: int, value: int) -> None:
        if offset == self.keyr:
            self.regs.keys.write(value, self.base + offset)
        elif offset == self.optkeyr:
            if self.regs.keys.locked:
                raise BusFault(self.base + offset, "OPTKEYR needs an unlocked controller")
            self.option_keys.write(value, self.base + offset)
        elif offset == self.sr_offset:
            self.regs.clear_status(value)
        elif offset == self.cr_offset:
            self._write_cr(value)
        elif offset == self.optr_offset:
            if not self.option_keys.locked:
                self.optr_stored = value
        elif offset < 0x100 and offset % 4 == 0:
            pass
        else:
            raise BusFault(self.base + offset)

    def _write_cr(self, value: int) -> None:
        regs = self.regs
        if value & (CR_LOCK | CR_OPTLOCK):
            self.option_keys.lock()
        if value & CR_LOCK:
            regs.keys.lock()
        if regs.keys.locked:
            return
        if value & CR_OBL_LAUNCH:
            self._load_options()
            return
        # OPTSTRT, OPTLOCK and OBL_LAUNCH act when written; they are not stored.
        regs.write_cr(value & ~(CR_OPTSTRT | CR_OPTLOCK | CR_OBL_LAUNCH))
        if value & CR_OPTSTRT and not self.option_keys.locked:
            self.occupy(self.chip.timing.page_erase_ms / 1000)
            regs.sr |= SR_EOP
        if value & CR_STRT and not self.busy:
            self._start()

    def _start(self) -> None:
        regs = self.regs
        if regs.sr & SR_ERRORS:
            regs.sr |= SR_PGSERR
            return
        flash = self.chip.flash
        if regs.cr & CR_PER:
            if regs.cr & (CR_MER1 | CR_MER2 | CR_PG):
                regs.sr |= SR_PGSERR
                return
            bank = 2 if regs.cr & (1 << self.bker_bit) else 1
            block = self.block_in_bank(bank, (regs.cr >> 3) & self.pnb_mask)
            if block is None:
                regs.sr |= SR_PGSERR
                return
            regs.finish(self.erase_unit(block.index))
        elif regs.cr & (CR_MER1 | CR_MER2):
            banks = {1} if regs.cr & CR_MER1 else set()
            if regs.cr & CR_MER2:
                banks.add(2)
            blocks = [b.index for b in flash.blocks if b.bank in banks]
            whole = len(blocks) == len(flash.blocks)
            regs.finish(self.erase_all(None if whole else blocks))

    def _apply_stored_options(self) -> None:
        # Leaving level 2 is impossible: the option load keeps it and flags OPERR.
        if not self.load_option_bytes(0, self.optr_stored.to_bytes(4, "little")):
            self.regs.sr |= SR_OPERR
        self.optr_stored = int.from_bytes(self.sim.option_bytes[:4], "little")

    def _load_options(self) -> None:
        self._apply_stored_options()
        self.system_reset()

    def write_flash(self, address: int, data: bytes) -> None:
        regs = self.regs
        if regs.keys.locked or not regs.cr & CR_PG:
            regs.sr |= SR_PGSERR
            self.pending = None
            return
        if len(data) != 4:
            regs.sr |= SR_SIZERR
            self.pending = None
            return
        if self.pending is None:
            if address % self.unit:
                regs.sr |= SR_PGAERR
                return
            self.pending = (address, data)
            return
        start, collected = self.pending
        if address != start + len(collected):
            self.pending = None
            regs.sr |= SR_PGAERR
            return
        collected += data
        if len(collected) < self.unit:
            self.pending = (start, collected)
            return
        self.pending = None
        if regs.sr & SR_ERRORS:
            return
        if not self.accept_write_while_busy():
            return
        regs.finish(self.program_array(start, collected, require_erased=True))

    def system_reset(self) -> None:
        self.regs.reset()
        self.option_keys.reset()
        self.pending = None
        if self.optr_stored != int.from_bytes(self.sim.option_bytes[:4], "little"):
            self._apply_stored_options()
