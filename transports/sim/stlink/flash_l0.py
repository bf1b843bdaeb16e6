"""Simulated L0/L1 flash controller (PECR), as RM0367 §3 and RM0038 §3 describe it.

Registers: PECR 0x04 (PELOCK 0, PRGLOCK 1, OPTLOCK 2, PROG 3, ERASE 9, FPRG 10,
OBL_LAUNCH 18), PEKEYR 0x0C, PRGKEYR 0x10, OPTKEYR 0x14, SR 0x18 (BSY 0, EOP 1,
READY 3, WRPERR 8, PGAERR 9, SIZERR 10, OPTVERR 11, NOTZEROERR 16; w1c), OBR
0x1C (RDPRT 7:0). Erased flash reads 0x00.

Writes into flash act by PECR: plain word program (PRGLOCK clear); page erase
(ERASE|PROG: a word written anywhere in the page erases it); half-page program
(FPRG|PROG: the half page's words must arrive in order with no other access
to the flash interface between them, then it programs as one operation).
The option word at 0x1FF80000 holds RDP and USER with their complements in
the upper half; it is loaded at OBL_LAUNCH or reset.
"""

from __future__ import annotations

from transports.sim.chip import SimChip
from transports.sim.stlink.controller import BusFault, KeyLock, SimFlashController
from transports.sim.stlink.regfile import StatusBits

__all__ = ["SimL0Controller"]

PEKEY = (0x89ABCDEF, 0x02030405)
PRGKEY = (0x8C9DAEBF, 0x13141516)
OPTKEY = (0xFBEAD9C8, 0x24252627)
PECR_PELOCK, PECR_PRGLOCK, PECR_OPTLOCK, PECR_PROG, PECR_ERASE, PECR_FPRG, PECR_OBL = (
    1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 9, 1 << 10, 1 << 18)
SR_BSY, SR_EOP, SR_READY, SR_WRPERR, SR_PGAERR, SR_SIZERR, SR_OPTVERR, SR_NOTZEROERR = (
    1 << 0, 1 << 1, 1 << 3, 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 16)
SR_ERRORS = SR_WRPERR | SR_PGAERR | SR_SIZERR | SR_OPTVERR | SR_NOTZEROERR
STATUS = StatusBits(busy=SR_BSY, eop=SR_EOP, errors=SR_ERRORS, refused=SR_WRPERR)


class SimL0Controller(SimFlashController):
    def __init__(self, sim: SimChip, *, writes_during_busy: str = "stall") -> None:
        super().__init__(sim, writes_during_busy=writes_during_busy)
        self.pe_keys = KeyLock(*PEKEY)
        self.prg_keys = KeyLock(*PRGKEY)
        self.opt_keys = KeyLock(*OPTKEY)
        self.pecr = 0
        self.sr = 0
        self.half_page = 64 if sim.chip.controller == "l0" else 128
        self.collecting: tuple[int, bytearray] | None = None
        self.stored_options = bytearray(sim.option_bytes[:4])

    def _locks(self) -> int:
        return (PECR_PELOCK if self.pe_keys.locked else 0) \
            | (PECR_PRGLOCK if self.prg_keys.locked else 0) \
            | (PECR_OPTLOCK if self.opt_keys.locked else 0)

    def _interrupt_half_page(self) -> None:
        if self.collecting is not None:
            self.collecting = None
            self.sr |= SR_SIZERR  # RM0367 §3.3.4: an interrupted half page is not written

    def stall_until_ready(self) -> None:
        self._interrupt_half_page()  # a flash read between the words aborts a half page
        super().stall_until_ready()

    def read_register(self, offset: int) -> int:
        self._interrupt_half_page()
        if offset == 0x04:
            return self.pecr | self._locks()
        if offset == 0x18:
            return self.sr | (SR_BSY if self.busy else SR_READY)
        if offset == 0x1C:
            return self.sim.option_bytes[0] | (self.sim.option_bytes[1] << 8)
        if offset in (0x00, 0x08, 0x0C, 0x10, 0x14, 0x20):
            return 0
        raise BusFault(self.base + offset)

    def write_register(self, offset: int, value: int) -> None:
        self._interrupt_half_page()
        if offset == 0x0C:
            self.pe_keys.write(value, self.base + offset)
        elif offset in (0x10, 0x14):
            if self.pe_keys.locked:
                raise BusFault(self.base + offset, "PELOCK must be cleared first")
            (self.prg_keys if offset == 0x10 else self.opt_keys).write(value, self.base + offset)
        elif offset == 0x18:
            self.sr = STATUS.cleared(self.sr, value)
        elif offset == 0x04:
            self._write_pecr(value)
        elif offset in (0x00, 0x08):
            pass
        else:
            raise BusFault(self.base + offset)

    def _write_pecr(self, value: int) -> None:
        if value & PECR_PELOCK:
            self.pe_keys.lock()
            self.prg_keys.lock()
            self.opt_keys.lock()
        if value & PECR_PRGLOCK:
            self.prg_keys.lock()
        if value & PECR_OPTLOCK:
            self.opt_keys.lock()
        if self.pe_keys.locked:
            return
        if value & PECR_OBL and not self.opt_keys.locked:
            self._load_options()
            return
        self.pecr = value & (PECR_PROG | PECR_ERASE | PECR_FPRG)

    def write_flash(self, address: int, data: bytes) -> None:
        if self.pe_keys.locked or self.prg_keys.locked:
            self.sr |= SR_WRPERR
            return
        if len(data) != 4:
            self.sr |= SR_SIZERR
            self.collecting = None
            return
        if address % 4:
            self.sr |= SR_PGAERR
            return
        mode = self.pecr & (PECR_PROG | PECR_ERASE | PECR_FPRG)
        if mode == PECR_PROG | PECR_ERASE:
            index = self.chip.flash.block_at(address).index
            self._finish(self.erase_unit(index))
        elif mode == PECR_PROG | PECR_FPRG:
            self._collect(address, data)
        elif mode == 0:
            if not self.accept_write_while_busy():
                return
            self._program(address, data, self.chip.timing.program_us / 1e6)
        else:
            self.sr |= SR_PGAERR

    def _collect(self, address: int, data: bytes) -> None:
        if self.collecting is None:
            if address % self.half_page:
                self.sr |= SR_PGAERR
                return
            if not self.accept_write_while_busy():
                return
            self.collecting = (address, bytearray())
        start, words = self.collecting
        if address != start + len(words):
            self.collecting = None
            self.sr |= SR_PGAERR
            return
        words += data
        if len(words) == self.half_page:
            self.collecting = None
            self._program(start, bytes(words), self.chip.timing.program_us / 1e6)

    def _program(self, address: int, data: bytes, seconds: float) -> None:
        current = self.sim.read_flash(address, len(data), debug=False)
        overwrites = any(c and d for c, d in zip(current, data, strict=True))
        if overwrites and self.chip.controller == "l0":
            self.sr |= SR_NOTZEROERR  # RM0367: the word was not erased
            return
        fault = self.program_array(address, data, require_erased=False)
        self.busy_until = self.now + seconds
        self._finish(fault)

    def _finish(self, fault: str | None) -> None:
        self.sr |= STATUS.outcome(fault)

    # -- option bytes --------------------------------------------------------------------

    def read_option_area(self, address: int, length: int) -> bytes | None:
        start = address - self.chip.option_bytes.address
        if start + length <= 4:
            return bytes(self.stored_options[start:start + length])
        return None

    def write_option_area(self, address: int, data: bytes) -> None:
        if self.opt_keys.locked or address != self.chip.option_bytes.address or len(data) != 4:
            self.sr |= SR_WRPERR
            return
        word = int.from_bytes(data, "little")
        if (word ^ (word >> 16)) & 0xFFFF != 0xFFFF:
            self.sr |= SR_OPTVERR
            return
        self.stored_options[:] = data
        self.occupy(self.chip.timing.page_erase_ms / 1000)
        self.sr |= SR_EOP

    def _apply_stored_options(self) -> None:
        if not self.load_option_bytes(0, bytes(self.stored_options)):
            self.sr |= SR_OPTVERR  # level 2 cannot be left
        self.stored_options[:] = self.sim.option_bytes[:4]

    def _load_options(self) -> None:
        self._apply_stored_options()
        self.system_reset()

    def system_reset(self) -> None:
        self.pe_keys.reset()
        self.prg_keys.reset()
        self.opt_keys.reset()
        self.pecr = 0
        self.collecting = None
        if bytes(self.stored_options) != self.sim.option_bytes[:4]:
            self._apply_stored_options()
