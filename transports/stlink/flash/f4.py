"""F2/F4/F7 flash: sectors, PSIZE parallelism, option control register.

RM0090 §3.5-3.7 (F4), RM0383 §3 (F411): KEYR 0x04, OPTKEYR 0x08, SR 0x0C
(EOP 0, OPERR 1, WRPERR 4, PGAERR 5, PGPERR 6, PGSERR 7, BSY 16), CR 0x10
(PG 0, SER 1, MER 2, SNB 3.., PSIZE 9:8, MER1 15, STRT 16, LOCK 31), OPTCR
0x14 (OPTLOCK 0, OPTSTRT 1, RDP 15:8).
"""

from __future__ import annotations

from transports.base import OptionBytes, OptionBytesChange, Progress, no_progress
from transports.chips import FlashBlock
from transports.errors import WriteError
from transports.stlink.flash.base import OPTION_KEYS, FlashDriver, check_rdp_change
from transports.stlink.loaders.ram import LoaderSpan

__all__ = ["F4FlashDriver"]

KEYR, OPTKEYR, SR, CR, OPTCR = 0x04, 0x08, 0x0C, 0x10, 0x14
SR_EOP, SR_OPERR, SR_WRPERR, SR_PGAERR, SR_PGPERR, SR_PGSERR, SR_BSY = (
    1 << 0, 1 << 1, 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 16)
CR_PG, CR_SER, CR_MER, CR_MER1, CR_STRT, CR_LOCK = 1 << 0, 1 << 1, 1 << 2, 1 << 15, 1 << 16, \
    1 << 31
OPTCR_OPTLOCK, OPTCR_OPTSTRT = 1 << 0, 1 << 1
ERRORS = {SR_OPERR: "OPERR", SR_WRPERR: "WRPERR (write-protected)",
          SR_PGAERR: "PGAERR (alignment)", SR_PGPERR: "PGPERR (parallelism)",
          SR_PGSERR: "PGSERR (sequence)"}
#: RM0090 §3.6.2: x32 needs VDD ≥ 2.7 V; x8 works down to 1.8 V.
PSIZE_X8, PSIZE_X32 = 0, 2


class F4FlashDriver(FlashDriver):
    unit = 4
    busy_mask = SR_BSY
    error_mask = SR_OPERR | SR_WRPERR | SR_PGAERR | SR_PGPERR | SR_PGSERR
    error_names = ERRORS
    eop_mask = SR_EOP

    @property
    def psize(self) -> int:
        return PSIZE_X8 if self.voltage is not None and self.voltage < 2.7 else PSIZE_X32

    @property
    def psize_bytes(self) -> int:
        return 1 << self.psize

    def _reg(self, offset: int) -> int:
        return self.base + offset

    def unlock(self) -> None:
        self.unlock_control(self._reg(CR), CR_LOCK, self._reg(KEYR))

    def lock(self) -> None:
        self.link.write_word(self._reg(CR), CR_LOCK)

    def _run(self, cr: int, *, expected_s: float, what: str, address: int) -> None:
        self.run_operation(cr, cr_address=self._reg(CR), start_bit=CR_STRT,
                           sr_address=self._reg(SR), clear_address=self._reg(SR),
                           expected_s=expected_s, what=what, address=address)

    def erase_block(self, block: FlashBlock) -> None:
        # RM0090 §3.6.3: bank-2 sectors of dual-bank parts are numbered from 16.
        snb = block.index if block.bank == 1 else 16 + block.index_in_bank
        cr = CR_SER | (snb << 3) | (self.psize << 8)
        self._run(cr, expected_s=self.chip.timing.erase_seconds(block.size),
                  what="sector erase", address=block.address)

    def mass_erase(self) -> None:
        cr = CR_MER | (CR_MER1 if self.chip.flash.banks > 1 else 0) | (self.psize << 8)
        self._run(cr, expected_s=self.chip.timing.mass_erase_ms / 1000, what="mass erase",
                  address=self.chip.flash.base)

    def erase_bank(self, bank: int) -> bool:
        """RM0090 §3.6.4: on dual-bank parts MER erases bank 1 and MER1 bank 2."""
        self._run((CR_MER if bank == 1 else CR_MER1) | (self.psize << 8),
                  expected_s=self.chip.timing.mass_erase_ms / 1000 / self.chip.flash.banks,
                  what="bank erase", address=self.bank_start(bank))
        return True

    def program(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        self.link.write_word(self._reg(SR), self.error_mask | SR_EOP)
        self.link.write_word(self._reg(CR), CR_PG | (self.psize << 8))
        if self.fast:
            self._program_blocks(address, data, progress)
        else:
            self._program_units(address, data, progress)
        self.link.write_word(self._reg(CR), 0)

    def _program_blocks(self, address: int, data: bytes, progress: Progress) -> None:
        for offset, at, size in self.windows(address, len(data), self.link.window):
            self.link.write_memory(at, data[offset:offset + size], width=self.psize_bytes)
            self.settle(self._reg(SR), expected_s=0, what="program", address=at, error=WriteError)
            progress(offset + size, len(data))

    def _program_units(self, address: int, data: bytes, progress: Progress) -> None:
        expected = self.chip.timing.program_seconds(4, 4)
        width = self.psize_bytes
        for offset in range(0, len(data), width):
            at = address + offset
            if width == 4:
                self.link.write_word(at, int.from_bytes(data[offset:offset + 4], "little"))
            else:
                self.link.write_block(at, data[offset:offset + width], width)
            self.settle(self._reg(SR), expected_s=expected, what="program", address=at,
                        error=WriteError)
            if offset % 1024 == 0:
                progress(offset + width, len(data))
        progress(len(data), len(data))

    def loader_spans(self, address: int, length: int) -> list[LoaderSpan] | None:
        if self.psize_bytes != self.unit:
            return None  # x8 below 2.7 V: the loader stores words only
        sr, cr = self._reg(SR), self._reg(CR)
        return [self.span(address, length, status=sr,
                          setup=((sr, self.error_mask | SR_EOP), (cr, CR_PG | (self.psize << 8))),
                          teardown=((cr, 0),))]

    # -- option bytes (RM0090 §3.7) ---------------------------------------------------------

    def read_option_bytes(self) -> OptionBytes:
        optcr = self.link.read_word(self._reg(OPTCR))
        rdp = (optcr >> 8) & 0xFF
        raw = optcr.to_bytes(4, "little")
        return OptionBytes(raw=raw, rdp_level=self.chip.option_bytes.rdp_level(rdp),
                           fields={"user": (optcr >> 5) & 0x7, "bor_lev": (optcr >> 2) & 0x3,
                                   "nwrp": (optcr >> 16) & 0xFFF})

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        check_rdp_change(self.chip, change)
        ob = self.chip.option_bytes
        self.unlock()
        try:
            if self.link.read_word(self._reg(OPTCR)) & OPTCR_OPTLOCK:
                self.write_keys(self._reg(OPTKEYR), OPTION_KEYS)
            optcr = self.link.read_word(self._reg(OPTCR)) & ~(OPTCR_OPTLOCK | OPTCR_OPTSTRT)
            if change.rdp_level is not None:
                rdp = {0: ob.rdp_level0, 2: ob.rdp_level2}.get(change.rdp_level, 0x55)
                optcr = (optcr & ~0xFF00) | (rdp << 8)
            for name, value in change.fields.items():
                shift, mask = {"user": (5, 0x7), "bor_lev": (2, 0x3),
                               "nwrp": (16, 0xFFF)}.get(name, (-1, 0))
                if shift < 0:
                    raise WriteError(f"unknown F4 option field {name!r}", address=ob.address,
                                     hint="use user, bor_lev or nwrp")
                optcr = (optcr & ~(mask << shift)) | ((value & mask) << shift)
            regression = change.rdp_level == 0 and \
                ob.rdp_level((self.link.read_word(self._reg(OPTCR)) >> 8) & 0xFF) != 0
            self.link.write_word(self._reg(OPTCR), optcr)
            self.link.write_word(self._reg(OPTCR), optcr | OPTCR_OPTSTRT)
            # A 1 → 0 regression mass-erases the flash before BSY clears.
            expected = self.chip.timing.mass_erase_ms if regression else \
                self.chip.timing.page_erase_ms
            self.settle(self._reg(SR), expected_s=expected / 1000, what="option write",
                        address=ob.address, error=WriteError)
            self.link.write_word(self._reg(OPTCR), optcr | OPTCR_OPTLOCK)
        finally:
            self.lock()
