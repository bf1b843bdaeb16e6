"""H74x/H75x/H72x/H73x flash: 256-bit flash words, two banks, OPTSR.

RM0433 §4.9: per bank (bank 2 at +0x100) KEYR 0x04, CR 0x0C (LOCK 0, PG 1,
SER 2, BER 3, PSIZE 5:4, FW 6, START 7, SNB 10:8), SR 0x10 (BSY 0, WBNE 1,
QW 2, EOP 16, WRPERR 17, PGSERR 18, STRBERR 19, INCERR 21, OPERR 22), CCR
0x14; shared OPTKEYR 0x08, OPTCR 0x18 (OPTLOCK 0, OPTSTART 1), OPTSR_CUR
0x1C (OPT_BUSY 0, RDP 15:8), OPTSR_PRG 0x20, OPTCCR 0x24.

H7A3/H7B3 (RM0455 §4.9, controller ``h7ab``) have the same map with 128-bit
flash words, 8 KiB sectors and no PSIZE: START is bit 5 and the sector number
sits at bits 12:6.
"""

from __future__ import annotations

from typing import Any

from transports.base import OptionBytes, OptionBytesChange, Progress, no_progress
from transports.chips import FlashBlock
from transports.errors import WriteError
from transports.stlink.flash.base import (
    OPTION_KEYS,
    SECTOR_HINT,
    FlashDriver,
    check_rdp_change,
)
from transports.stlink.loaders.ram import LoaderSpan

__all__ = ["H7FlashDriver"]

KEYR, CR, SR, CCR = 0x04, 0x0C, 0x10, 0x14
OPTKEYR, OPTCR, OPTSR_CUR, OPTSR_PRG, OPTCCR = 0x08, 0x18, 0x1C, 0x20, 0x24
SR_BSY, SR_WBNE, SR_QW, SR_EOP = 1 << 0, 1 << 1, 1 << 2, 1 << 16
SR_WRPERR, SR_PGSERR, SR_STRBERR, SR_INCERR, SR_OPERR = 1 << 17, 1 << 18, 1 << 19, 1 << 21, \
    1 << 22
CR_LOCK, CR_PG, CR_SER, CR_BER, CR_START = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 7
CR_START_AB = 1 << 5
PSIZE_X64 = 3 << 4
OPTCR_OPTLOCK, OPTCR_OPTSTART = 1 << 0, 1 << 1
ERRORS = {SR_WRPERR: "WRPERR (write-protected)", SR_PGSERR: "PGSERR (sequence)",
          SR_STRBERR: "STRBERR (strobe)", SR_INCERR: "INCERR (inconsistency)",
          SR_OPERR: "OPERR"}


class H7FlashDriver(FlashDriver):
    busy_mask = SR_BSY | SR_QW
    error_mask = SR_WRPERR | SR_PGSERR | SR_STRBERR | SR_INCERR | SR_OPERR
    error_names = ERRORS
    error_hint = SECTOR_HINT
    eop_mask = SR_EOP

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ab = self.chip.controller == "h7ab"
        self.start_bit = CR_START_AB if ab else CR_START
        self.snb_shift = 6 if ab else 8
        self.psize = 0 if ab else PSIZE_X64

    def _bank_base(self, bank: int) -> int:
        return self.base + (0x100 if bank == 2 else 0)

    def _bank_of(self, address: int) -> int:
        bank2 = self.chip.flash.bank2_base
        return 2 if bank2 is not None and address >= bank2 else 1

    def _banks(self) -> range:
        return range(1, self.chip.flash.banks + 1)

    def unlock(self) -> None:
        for bank in self._banks():
            base = self._bank_base(bank)
            self.unlock_control(base + CR, CR_LOCK, base + KEYR, name=f"flash bank {bank}",
                                address=base)

    def lock(self) -> None:
        for bank in self._banks():
            self.link.write_word(self._bank_base(bank) + CR, CR_LOCK)

    def _run(self, bank: int, cr: int, *, expected_s: float, what: str, address: int) -> None:
        base = self._bank_base(bank)
        self.run_operation(cr, cr_address=base + CR, start_bit=self.start_bit,
                           sr_address=base + SR, clear_address=base + CCR,
                           expected_s=expected_s, what=what, address=address)

    def erase_block(self, block: FlashBlock) -> None:
        cr = CR_SER | (block.index_in_bank << self.snb_shift) | self.psize
        self._run(block.bank, cr, expected_s=self.chip.timing.erase_seconds(block.size),
                  what="sector erase", address=block.address)

    def mass_erase(self) -> None:
        for bank in self._banks():
            self.erase_bank(bank)

    def erase_bank(self, bank: int) -> bool:
        self._run(bank, CR_BER | self.psize,
                  expected_s=self.chip.timing.mass_erase_ms / 1000 / self.chip.flash.banks,
                  what="bank erase", address=self.bank_start(bank))
        return True

    def program(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        done = 0
        for start, length in self.blocks_by_bank(address, len(data)):
            base = self._bank_base(self._bank_of(start))
            self.link.write_word(base + CCR, self.error_mask | SR_EOP)
            self.link.write_word(base + CR, CR_PG | self.psize)
            # Fast: one command per TAR window; safe: one flash word per command.
            step = self.link.window if self.fast else self.unit
            for _, at, size in self.windows(start, length, step):
                chunk = data[at - address:at - address + size]
                self.link.write_memory(at, chunk, width=4)
                self.settle(base + SR, expected_s=0, what="program", address=at, error=WriteError,
                            clear_address=base + CCR)
                done += size
                if self.fast or done % 1024 == 0:
                    progress(done, len(data))
            self.link.write_word(base + CR, 0)
        progress(len(data), len(data))

    def loader_spans(self, address: int, length: int) -> list[LoaderSpan]:
        spans = []
        for start, size in self.blocks_by_bank(address, length):
            base = self._bank_base(self._bank_of(start))
            spans.append(self.span(start, size, status=base + SR, clear=base + CCR,
                                   setup=((base + CCR, self.error_mask | SR_EOP),
                                          (base + CR, CR_PG | self.psize)),
                                   teardown=((base + CR, 0),)))
        return spans

    # -- option bytes (RM0433 §4.4) -----------------------------------------------------------

    def read_option_bytes(self) -> OptionBytes:
        current = self.link.read_word(self.base + OPTSR_CUR)
        return OptionBytes(raw=current.to_bytes(4, "little"),
                           rdp_level=self.chip.option_bytes.rdp_level((current >> 8) & 0xFF),
                           fields={"optsr": current})

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        check_rdp_change(self.chip, change)
        ob = self.chip.option_bytes
        if self.link.read_word(self.base + OPTCR) & OPTCR_OPTLOCK:
            self.write_keys(self.base + OPTKEYR, OPTION_KEYS)
        value = self.link.read_word(self.base + OPTSR_PRG)
        if change.rdp_level is not None:
            rdp = {0: ob.rdp_level0, 2: ob.rdp_level2}.get(change.rdp_level, 0xBB)
            value = (value & ~0xFF00) | (rdp << 8)
        if change.fields:
            raise WriteError("only rdp can be changed on H7 parts here", address=ob.address,
                             hint="remove the other option fields from the step")
        self.link.write_word(self.base + OPTSR_PRG, value)
        self.link.write_word(self.base + OPTCR, OPTCR_OPTSTART)
        timebase = self.link.timebase
        deadline = timebase.monotonic() + self.chip.timing.mass_erase_ms / 1000 * 2 + 1
        while self.link.read_word(self.base + OPTSR_CUR) & 0x1:
            if timebase.monotonic() > deadline:
                raise WriteError("the option change did not finish in time", address=ob.address)
            timebase.sleep(0.01)
        if self.link.read_word(self.base + OPTSR_CUR) & (1 << 30):
            self.link.write_word(self.base + OPTCCR, 1 << 30)
            raise WriteError("the option change was refused (OPTCHANGEERR)", address=ob.address)
        self.link.write_word(self.base + OPTCR, OPTCR_OPTLOCK)
