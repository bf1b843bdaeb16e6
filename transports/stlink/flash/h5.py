"""H5 flash (RM0481 §7): 128-bit quad words, sectors per bank, product state.

Non-secure registers: NSKEYR 0x04, OPTKEYR 0x0C, OPTCR 0x1C (OPTLOCK 0,
OPTSTRT 1), NSSR 0x20 (BSY 0, WBNE 1, DBNE 3, EOP 16, WRPERR 17, PGSERR 18,
STRBERR 19, INCERR 20, OPTCHANGEERR 23), NSCR 0x28 (LOCK 0, PG 1, SER 2, BER 3,
FW 4, STRT 5, SNB 12:6, MER 15, BKSEL 31), NSCCR 0x30 (write 1 to clear the
SR bit of the same position), OPTSR_CUR 0x50 and OPTSR_PRG 0x54 (PRODUCT_STATE
15:8: 0xED open, 0x5C locked). One register set serves both banks; BKSEL
picks the bank to erase.

Readout protection is a product state here: leaving a closed state needs ST's
debug authentication, which a plain ST-Link session cannot do, so a change back
to "open" is refused with a hint.
"""

from __future__ import annotations

from transports.base import OptionBytes, OptionBytesChange, Progress, no_progress
from transports.chips import FlashBlock
from transports.errors import EraseError, Refused, WriteError
from transports.stlink.flash.base import (
    OPTION_KEYS,
    SECTOR_HINT,
    FlashDriver,
    check_rdp_change,
)
from transports.stlink.loaders.ram import LoaderSpan

__all__ = ["H5FlashDriver"]

NSKEYR, OPTKEYR, OPTCR, NSSR, NSCR, NSCCR, OPTSR_CUR, OPTSR_PRG = (
    0x04, 0x0C, 0x1C, 0x20, 0x28, 0x30, 0x50, 0x54)
SR_BSY, SR_WBNE, SR_DBNE, SR_EOP = 1 << 0, 1 << 1, 1 << 3, 1 << 16
SR_WRPERR, SR_PGSERR, SR_STRBERR, SR_INCERR, SR_OPTCHANGEERR = (
    1 << 17, 1 << 18, 1 << 19, 1 << 20, 1 << 23)
CR_LOCK, CR_PG, CR_SER, CR_BER, CR_STRT, CR_MER, CR_BKSEL = (
    1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 5, 1 << 15, 1 << 31)
OPTCR_OPTLOCK, OPTCR_OPTSTRT = 1 << 0, 1 << 1
#: The "closed" product state (codes as OpenOCD's stm32h5x driver lists them).
PRODUCT_CLOSED = 0x72
ERRORS = {SR_WRPERR: "WRPERR (write-protected)", SR_PGSERR: "PGSERR (sequence)",
          SR_STRBERR: "STRBERR (strobe)", SR_INCERR: "INCERR (inconsistency)",
          SR_OPTCHANGEERR: "OPTCHANGEERR (option change)"}


class H5FlashDriver(FlashDriver):
    busy_mask = SR_BSY | SR_DBNE
    error_mask = SR_WRPERR | SR_PGSERR | SR_STRBERR | SR_INCERR | SR_OPTCHANGEERR
    error_names = ERRORS
    error_hint = SECTOR_HINT
    eop_mask = SR_EOP

    def _reg(self, offset: int) -> int:
        return self.base + offset

    def unlock(self) -> None:
        self.unlock_control(self._reg(NSCR), CR_LOCK, self._reg(NSKEYR))

    def lock(self) -> None:
        self.link.write_word(self._reg(NSCR), CR_LOCK)

    def _settle(self, what: str, address: int, expected: float,
                error: type[EraseError] | type[WriteError]) -> None:
        self.settle(self._reg(NSSR), expected_s=expected, what=what, address=address, error=error,
                    clear_address=self._reg(NSCCR))

    def _start(self, cr: int, what: str, address: int, expected: float) -> None:
        self.run_operation(cr, cr_address=self._reg(NSCR), start_bit=CR_STRT,
                           sr_address=self._reg(NSSR), clear_address=self._reg(NSCCR),
                           expected_s=expected, what=what, address=address)

    def erase_block(self, block: FlashBlock) -> None:
        cr = CR_SER | (block.index_in_bank << 6) | (CR_BKSEL if block.bank == 2 else 0)
        self._start(cr, "sector erase", block.address,
                    self.chip.timing.erase_seconds(block.size))

    def erase_bank(self, bank: int) -> bool:
        self._start(CR_BER | (CR_BKSEL if bank == 2 else 0), "bank erase", self.bank_start(bank),
                    self.chip.timing.mass_erase_ms / 1000 / self.chip.flash.banks)
        return True

    def mass_erase(self) -> None:
        self._start(CR_MER, "mass erase", self.chip.flash.base,
                    self.chip.timing.mass_erase_ms / 1000)

    def program(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        self.link.write_word(self._reg(NSCCR), self.error_mask | SR_EOP)
        self.link.write_word(self._reg(NSCR), CR_PG)
        # Fast: one command per MEM-AP window; safe: one quad word per command.
        step = self.link.window if self.fast else self.unit
        for offset, at, size in self.windows(address, len(data), step):
            self.link.write_memory(at, data[offset:offset + size], width=4)
            self._settle("program", at, 0.0, WriteError)
            if self.fast or (offset + size) % 1024 == 0:
                progress(offset + size, len(data))
        self.link.write_word(self._reg(NSCR), 0)
        progress(len(data), len(data))

    def loader_spans(self, address: int, length: int) -> list[LoaderSpan]:
        return [self.span(address, length, status=self._reg(NSSR), clear=self._reg(NSCCR),
                          setup=((self._reg(NSCCR), self.error_mask | SR_EOP),
                                 (self._reg(NSCR), CR_PG)),
                          teardown=((self._reg(NSCR), 0),))]

    # -- product state (RM0481 §7.6) -----------------------------------------------------------

    def read_option_bytes(self) -> OptionBytes:
        current = self.link.read_word(self._reg(OPTSR_CUR))
        state = (current >> 8) & 0xFF
        return OptionBytes(raw=current.to_bytes(4, "little"),
                           rdp_level=self.chip.option_bytes.rdp_level(state),
                           fields={"product_state": state})

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        check_rdp_change(self.chip, change)
        ob = self.chip.option_bytes
        if change.fields:
            raise WriteError("only the protection level can be changed on H5 parts here",
                             address=ob.address, hint="remove the other option fields")
        if change.rdp_level is None:
            return
        current = self.link.read_word(self._reg(OPTSR_CUR))
        if change.rdp_level == 0:
            if ob.rdp_level((current >> 8) & 0xFF) == 0:
                return
            raise Refused("reopening an H5 needs ST's debug authentication",
                          command="option-bytes",
                          hint="regress the product state with STM32CubeProgrammer "
                               "(debug authentication); flashrunner cannot")
        state = ob.rdp_level2 if change.rdp_level == 2 else PRODUCT_CLOSED
        self.unlock()
        try:
            if self.link.read_word(self._reg(OPTCR)) & OPTCR_OPTLOCK:
                self.write_keys(self._reg(OPTKEYR), OPTION_KEYS)
            prg = self.link.read_word(self._reg(OPTSR_PRG))
            self.link.write_word(self._reg(OPTSR_PRG), (prg & ~0xFF00) | (state << 8))
            self.link.write_word(self._reg(OPTCR), OPTCR_OPTSTRT)
            self._settle("option change", ob.address, self.chip.timing.page_erase_ms / 1000,
                         WriteError)
            self.link.write_word(self._reg(OPTCR), OPTCR_OPTLOCK)
        finally:
            self.lock()
