"""L4/L4+/G0/G4/WB/WL/C0 flash: 64-bit double words, pages per bank, OPTR.

RM0351 §3.3 (L4), RM0444 §3.3 (G0): KEYR 0x08, OPTKEYR 0x0C, SR 0x10 (EOP 0,
OPERR 1, PROGERR 3, WRPERR 4, PGAERR 5, SIZERR 6, PGSERR 7, MISERR 8,
FASTERR 9, BSY 16), CR 0x14 (PG 0, PER 1, MER1 2, PNB 3.., BKER 11 (G0: 13),
MER2 15, STRT 16, OPTSTRT 17, OBL_LAUNCH 27, OPTLOCK 30, LOCK 31), OPTR 0x20.
L5 and U5 (RM0438 §6.9, RM0456 §7.9) keep these bits in their non-secure
registers (NSKEYR 0x08, OPTKEYR 0x10, NSSR 0x20, NSCR 0x28, OPTR 0x40); U5
programs 128-bit quad words.
"""

from __future__ import annotations

from typing import Any

from transports.base import OptionBytes, OptionBytesChange, Progress, no_progress
from transports.chips import FlashBlock
from transports.errors import WriteError
from transports.stlink.flash.base import OPTION_KEYS, FlashDriver, check_rdp_change
from transports.stlink.loaders.ram import LoaderSpan

__all__ = ["L4FlashDriver"]

#: controller kind → (KEYR, OPTKEYR, SR, CR, OPTR) offsets
LAYOUTS = {"l5": (0x08, 0x10, 0x20, 0x28, 0x40), "u5": (0x08, 0x10, 0x20, 0x28, 0x40)}
L4_LAYOUT = (0x08, 0x0C, 0x10, 0x14, 0x20)
SR_EOP, SR_OPERR, SR_PROGERR, SR_WRPERR, SR_PGAERR, SR_SIZERR, SR_PGSERR, SR_MISERR, \
    SR_FASTERR, SR_BSY = (1 << 0, 1 << 1, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8,
                          1 << 9, 1 << 16)
CR_PG, CR_PER, CR_MER1, CR_MER2, CR_STRT, CR_OPTSTRT, CR_OBL_LAUNCH, CR_OPTLOCK, CR_LOCK = (
    1 << 0, 1 << 1, 1 << 2, 1 << 15, 1 << 16, 1 << 17, 1 << 27, 1 << 30, 1 << 31)
ERRORS = {SR_OPERR: "OPERR", SR_PROGERR: "PROGERR (not erased)",
          SR_WRPERR: "WRPERR (write-protected)", SR_PGAERR: "PGAERR (alignment)",
          SR_SIZERR: "SIZERR (size)", SR_PGSERR: "PGSERR (sequence)", SR_MISERR: "MISERR",
          SR_FASTERR: "FASTERR"}


class L4FlashDriver(FlashDriver):
    busy_mask = SR_BSY
    error_mask = SR_OPERR | SR_PROGERR | SR_WRPERR | SR_PGAERR | SR_SIZERR | SR_PGSERR \
        | SR_MISERR | SR_FASTERR
    error_names = ERRORS
    eop_mask = SR_EOP

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offsets = LAYOUTS.get(self.chip.controller, L4_LAYOUT)

    def _reg(self, name: str) -> int:
        index = ("KEYR", "OPTKEYR", "SR", "CR", "OPTR").index(name)
        return self.base + self.offsets[index]

    @property
    def bker(self) -> int:
        return 1 << (13 if self.chip.controller == "g0" else 11)

    def unlock(self) -> None:
        self.unlock_control(self._reg("CR"), CR_LOCK, self._reg("KEYR"))

    def lock(self) -> None:
        self.link.write_word(self._reg("CR"), CR_LOCK)

    def _run(self, cr: int, *, expected_s: float, what: str, address: int) -> None:
        self.run_operation(cr, cr_address=self._reg("CR"), start_bit=CR_STRT,
                           sr_address=self._reg("SR"), clear_address=self._reg("SR"),
                           expected_s=expected_s, what=what, address=address)

    def erase_block(self, block: FlashBlock) -> None:
        # RM0351 §3.3.6: PNB is the page index within its bank, BKER selects bank 2.
        cr = CR_PER | (block.index_in_bank << 3) | (self.bker if block.bank == 2 else 0)
        self._run(cr, expected_s=self.chip.timing.erase_seconds(block.size),
                  what="page erase", address=block.address)

    def mass_erase(self) -> None:
        cr = CR_MER1 | (CR_MER2 if self.chip.flash.banks > 1 else 0)
        self._run(cr, expected_s=self.chip.timing.mass_erase_ms / 1000, what="mass erase",
                  address=self.chip.flash.base)

    def erase_bank(self, bank: int) -> bool:
        self._run(CR_MER1 if bank == 1 else CR_MER2,
                  expected_s=self.chip.timing.mass_erase_ms / 1000, what="bank erase",
                  address=self.bank_start(bank))
        return True

    def program(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        self.link.write_word(self._reg("SR"), self.error_mask | SR_EOP)
        self.link.write_word(self._reg("CR"), CR_PG)
        if self.fast:
            for offset, at, size in self.windows(address, len(data), self.link.window):
                self.link.write_memory(at, data[offset:offset + size], width=4)
                self._settle(at)
                progress(offset + size, len(data))
        else:
            expected = self.chip.timing.program_seconds(self.unit, self.unit)
            for offset in range(0, len(data), self.unit):
                at = address + offset
                # RM0351 §3.3.7: the last word of the unit starts programming.
                for word in range(0, self.unit, 4):
                    value = int.from_bytes(data[offset + word:offset + word + 4], "little")
                    self.link.write_word(at + word, value)
                self._settle(at, expected=expected)
                if offset % 1024 == 0:
                    progress(offset + 8, len(data))
            progress(len(data), len(data))
        self.link.write_word(self._reg("CR"), 0)

    def loader_spans(self, address: int, length: int) -> list[LoaderSpan]:
        sr, cr = self._reg("SR"), self._reg("CR")
        return [self.span(address, length, status=sr,
                          setup=((sr, self.error_mask | SR_EOP), (cr, CR_PG)),
                          teardown=((cr, 0),))]

    def _settle(self, address: int, expected: float = 0.0) -> None:
        self.settle(self._reg("SR"), expected_s=expected, what="program", address=address,
                    error=WriteError)

    # -- option bytes (RM0351 §3.4.2) ---------------------------------------------------------

    def read_option_bytes(self) -> OptionBytes:
        optr = self.link.read_word(self._reg("OPTR"))
        return OptionBytes(raw=optr.to_bytes(4, "little"),
                           rdp_level=self.chip.option_bytes.rdp_level(optr & 0xFF),
                           fields={"optr": optr})

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        check_rdp_change(self.chip, change)
        ob = self.chip.option_bytes
        self.unlock()
        try:
            if self.link.read_word(self._reg("CR")) & CR_OPTLOCK:
                self.write_keys(self._reg("OPTKEYR"), OPTION_KEYS)
            optr = self.link.read_word(self._reg("OPTR"))
            if change.rdp_level is not None:
                rdp = {0: ob.rdp_level0, 2: ob.rdp_level2}.get(change.rdp_level, 0xBB)
                optr = (optr & ~0xFF) | rdp
            for name, value in change.fields.items():
                if name != "optr":
                    raise WriteError(f"unknown option field {name!r}", address=ob.address,
                                     hint="set the whole register with optr")
                optr = (value & ~0xFF) | (optr & 0xFF)
            self.link.write_word(self._reg("SR"), self.error_mask | SR_EOP)
            self.link.write_word(self._reg("OPTR"), optr)
            self.link.write_word(self._reg("CR"), CR_OPTSTRT)
            self.settle(self._reg("SR"), expected_s=self.chip.timing.page_erase_ms / 1000,
                        what="option write", address=ob.address, error=WriteError)
            # OBL_LAUNCH reloads the options (a 1 → 0 regression mass-erases) and resets.
            self.link.write_word(self._reg("CR"), CR_OBL_LAUNCH)
        finally:
            self.lock()
