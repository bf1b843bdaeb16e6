"""L0/L1 flash (PECR): word and half-page programming, page erase, the option word.

RM0367 §3.3 (L0), RM0038 §3.4 (L1): PECR 0x04 (PELOCK 0, PRGLOCK 1, OPTLOCK 2,
PROG 3, ERASE 9, FPRG 10, OBL_LAUNCH 18), PEKEYR 0x0C, PRGKEYR 0x10, OPTKEYR
0x14, SR 0x18 (BSY 0, EOP 1, WRPERR 8, PGAERR 9, SIZERR 10, OPTVERR 11,
NOTZEROERR 16), OBR 0x1C. Erased flash reads 0x00 and there is no mass-erase
bit, so a mass erase is every page in turn.

The fast path programs whole half pages (L0 16 words, L1 32) with one memory
command each: the probe issues the words back to back while the core is
halted, which is what the half-page sequence needs (no other access to the
flash interface in between). Partial half pages at either end, and the safe
path, program one word at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

from transports.base import OptionBytes, OptionBytesChange, Progress, no_progress
from transports.chips import FlashBlock
from transports.errors import EraseError, WriteError
from transports.stlink.flash.base import FlashDriver, check_rdp_change
from transports.stlink.loaders.ram import LoaderSpan

__all__ = ["L0FlashDriver"]

PEKEY = (0x89ABCDEF, 0x02030405)
PRGKEY = (0x8C9DAEBF, 0x13141516)
OPTKEY = (0xFBEAD9C8, 0x24252627)
PECR, PEKEYR, PRGKEYR, OPTKEYR, SR, OBR = 0x04, 0x0C, 0x10, 0x14, 0x18, 0x1C
PECR_PELOCK, PECR_PRGLOCK, PECR_OPTLOCK, PECR_PROG, PECR_ERASE, PECR_FPRG, PECR_OBL = (
    1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 9, 1 << 10, 1 << 18)
SR_BSY, SR_EOP = 1 << 0, 1 << 1
SR_WRPERR, SR_PGAERR, SR_SIZERR, SR_OPTVERR, SR_NOTZEROERR = (
    1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 16)
ERRORS = {SR_WRPERR: "WRPERR (write-protected or locked)", SR_PGAERR: "PGAERR (alignment)",
          SR_SIZERR: "SIZERR (size)", SR_OPTVERR: "OPTVERR (option validity)",
          SR_NOTZEROERR: "NOTZEROERR (not erased)"}


class L0FlashDriver(FlashDriver):
    unit = 4
    busy_mask = SR_BSY
    error_mask = SR_WRPERR | SR_PGAERR | SR_SIZERR | SR_OPTVERR | SR_NOTZEROERR
    error_names = ERRORS

    @property
    def half_page(self) -> int:
        return 64 if self.chip.controller == "l0" else 128

    def _reg(self, offset: int) -> int:
        return self.base + offset

    def unlock(self) -> None:
        pecr = self.link.read_word(self._reg(PECR))
        if pecr & PECR_PELOCK:
            self.write_keys(self._reg(PEKEYR), PEKEY)
        if pecr & PECR_PRGLOCK:
            self.write_keys(self._reg(PRGKEYR), PRGKEY)
        if self.link.read_word(self._reg(PECR)) & (PECR_PELOCK | PECR_PRGLOCK):
            raise WriteError("the flash controller stayed locked after the key sequences",
                             address=self.base, hint="reset the target and try again")

    def lock(self) -> None:
        self.link.write_word(self._reg(PECR), PECR_PELOCK)

    def _settle(self, what: str, address: int, expected: float,
                error: type[EraseError] | type[WriteError]) -> None:
        self.settle(self._reg(SR), expected_s=expected, what=what, address=address, error=error)

    def erase_block(self, block: FlashBlock) -> None:
        self.erase_blocks([block], no_progress)

    def erase_blocks(self, blocks: Sequence[FlashBlock], progress: Progress) -> None:
        # RM0367 §3.3.5: ERASE|PROG, then a zero word written into the page erases it.
        self.link.write_word(self._reg(SR), self.error_mask | SR_EOP)
        self.link.write_word(self._reg(PECR), PECR_ERASE | PECR_PROG)
        for done, block in enumerate(blocks, 1):
            self.link.write_word(block.address, 0)
            self._settle("page erase", block.address,
                         self.chip.timing.erase_seconds(block.size), EraseError)
            progress(done, len(blocks))
        self.link.write_word(self._reg(PECR), 0)

    def mass_erase(self) -> None:
        self.erase_blocks(self.chip.flash.blocks, no_progress)

    def program(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        self.link.write_word(self._reg(SR), self.error_mask | SR_EOP)
        word_s = self.chip.timing.program_us / 1e6
        offset, end = 0, len(data)
        mode: int | None = None
        while offset < end:
            at = address + offset
            whole = self.fast and at % self.half_page == 0 and end - offset >= self.half_page
            wanted = PECR_FPRG | PECR_PROG if whole else 0
            if wanted != mode:
                self.link.write_word(self._reg(PECR), wanted)
                mode = wanted
            if whole:
                size = self.half_page
                self.link.write_memory(at, data[offset:offset + size], width=4)
            else:
                size = 4
                self.link.write_word(at, int.from_bytes(data[offset:offset + 4], "little"))
            self._settle("program", at, word_s, WriteError)
            offset += size
            if whole or offset % 1024 == 0:
                progress(offset, end)
        self.link.write_word(self._reg(PECR), 0)
        progress(end, end)

    def loader_spans(self, address: int, length: int) -> list[LoaderSpan]:
        # RM0367 §3.3.4: with PRGLOCK clear, a word write programs it (no PG bit).
        return [self.span(address, length, status=self._reg(SR),
                          setup=((self._reg(SR), self.error_mask | SR_EOP),
                                 (self._reg(PECR), 0)), teardown=())]

    # -- option bytes (RM0367 §3.4.1) ----------------------------------------------------------

    def read_option_bytes(self) -> OptionBytes:
        obr = self.link.read_word(self._reg(OBR))
        raw = self.link.read_memory(self.chip.option_bytes.address, 4)
        return OptionBytes(raw=raw, rdp_level=self.chip.option_bytes.rdp_level(obr & 0xFF),
                           fields={"user": (obr >> 16) & 0xFF})

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        check_rdp_change(self.chip, change)
        ob = self.chip.option_bytes
        if change.fields:
            raise WriteError("only rdp can be changed on L0/L1 parts here", address=ob.address,
                             hint="remove the other option fields from the step")
        current = int.from_bytes(self.link.read_memory(ob.address, 4), "little")
        low = current & 0xFFFF
        if change.rdp_level is not None:
            rdp = {0: ob.rdp_level0, 2: ob.rdp_level2}.get(change.rdp_level, 0x00)
            low = (low & 0xFF00) | rdp
        word = low | ((~low & 0xFFFF) << 16)  # each half-word with its complement
        self.unlock()
        try:
            self.write_keys(self._reg(OPTKEYR), OPTKEY)
            self.link.write_word(self._reg(SR), self.error_mask | SR_EOP)
            self.link.write_word(ob.address, word)
            self._settle("option write", ob.address, self.chip.timing.page_erase_ms / 1000,
                         WriteError)
            # OBL_LAUNCH reloads the options (1 → 0 erases everything) and resets.
            self.link.write_word(self._reg(PECR), PECR_OBL)
        finally:
            self.lock()
