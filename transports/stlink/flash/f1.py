"""F0/F1/F3 flash (FPEC): half-word programming, page and mass erase, option bytes.

PM0075 §2.3 (F1), RM0091 §3.2 (F0): KEYR 0x04, OPTKEYR 0x08, SR 0x0C (BSY 0,
PGERR 2, WRPRTERR 4, EOP 5), CR 0x10 (PG 0, PER 1, MER 2, OPTPG 4, OPTER 5,
STRT 6, LOCK 7, OPTWRE 9), AR 0x14, OBR 0x1C. XL-density parts (``f1xl``,
RM0008 §3.3.1) drive bank 2 through a second set at +0x40 (KEYR2, SR2, CR2, AR2).
"""

from __future__ import annotations

from collections.abc import Sequence

from transports.base import OptionBytes, OptionBytesChange, Progress, no_progress
from transports.chips import FlashBlock
from transports.errors import EraseError, WriteError
from transports.stlink.flash.base import KEYS, FlashDriver, check_rdp_change
from transports.stlink.loaders.ram import LoaderSpan

__all__ = ["F1FlashDriver"]

KEYR, OPTKEYR, SR, CR, AR, OBR = 0x04, 0x08, 0x0C, 0x10, 0x14, 0x1C
SR_BSY, SR_PGERR, SR_WRPRTERR, SR_EOP = 1 << 0, 1 << 2, 1 << 4, 1 << 5
CR_PG, CR_PER, CR_MER, CR_OPTPG, CR_OPTER, CR_STRT, CR_LOCK, CR_OPTWRE = (
    1 << 0, 1 << 1, 1 << 2, 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 9)
ERRORS = {SR_PGERR: "PGERR (not erased)", SR_WRPRTERR: "WRPRTERR (write-protected)"}


class F1FlashDriver(FlashDriver):
    unit = 2
    busy_mask = SR_BSY
    error_mask = SR_PGERR | SR_WRPRTERR
    error_names = ERRORS

    def _reg(self, offset: int, bank: int = 1) -> int:
        return self.base + offset + (0x40 if bank == 2 else 0)

    @property
    def _banks(self) -> tuple[int, ...]:
        return (1, 2) if self.chip.controller == "f1xl" else (1,)

    def _bank_of(self, address: int) -> int:
        bank2 = self.chip.flash.bank2_base
        return 2 if len(self._banks) > 1 and bank2 is not None and address >= bank2 else 1

    def unlock(self) -> None:
        for bank in self._banks:
            self.unlock_control(self._reg(CR, bank), CR_LOCK, self._reg(KEYR, bank))

    def lock(self) -> None:
        for bank in self._banks:
            self.link.write_word(self._reg(CR, bank), CR_LOCK)

    def erase_block(self, block: FlashBlock) -> None:
        self.erase_blocks([block], no_progress)

    def erase_blocks(self, blocks: Sequence[FlashBlock], progress: Progress) -> None:
        # PM0075 §2.3.4: PER, AR = page, STRT, wait BSY. PER stays set across pages.
        done = 0
        for bank in self._banks:
            mine = [b for b in blocks if self._bank_of(b.address) == bank]
            if not mine:
                continue
            sr, cr, ar = self._reg(SR, bank), self._reg(CR, bank), self._reg(AR, bank)
            self.link.write_word(sr, SR_EOP | SR_PGERR | SR_WRPRTERR)
            self.link.write_word(cr, CR_PER)
            for block in mine:
                self.link.write_word(ar, block.address)
                self.link.write_word(cr, CR_PER | CR_STRT)
                self.settle(sr, expected_s=self.chip.timing.erase_seconds(block.size),
                            what="page erase", address=block.address, error=EraseError)
                done += 1
                progress(done, len(blocks))
            self.link.write_word(cr, 0)

    def mass_erase(self) -> None:
        for bank in self._banks:
            self.erase_bank(bank)

    def erase_bank(self, bank: int) -> bool:
        if bank not in self._banks:
            return False
        sr, cr = self._reg(SR, bank), self._reg(CR, bank)
        self.link.write_word(cr, CR_MER)
        self.link.write_word(cr, CR_MER | CR_STRT)
        address = self.chip.flash.base if bank == 1 else (self.chip.flash.bank2_base or 0)
        self.settle(sr, expected_s=self.chip.timing.mass_erase_ms / 1000, what="mass erase",
                    address=address, error=EraseError)
        self.link.write_word(sr, SR_EOP)
        self.link.write_word(cr, 0)
        return True

    def program(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        done = 0
        for start, length in self.blocks_by_bank(address, len(data)):
            bank = self._bank_of(start)
            sr, cr = self._reg(SR, bank), self._reg(CR, bank)
            self.link.write_word(sr, SR_EOP | SR_PGERR | SR_WRPRTERR)
            self.link.write_word(cr, CR_PG)
            chunk = data[start - address:start - address + length]

            def report(now: int, _total: int, base: int = done) -> None:
                progress(base + now, len(data))

            if self.fast:
                self._program_blocks(start, chunk, sr, report)
            else:
                self._program_units(start, chunk, sr, report)
            self.link.write_word(cr, 0)
            done += length

    def _program_blocks(self, address: int, data: bytes, sr: int, progress: Progress) -> None:
        """One 16-bit memory command per MEM-AP window; the bus stalls while BSY.

        PM0075 §2.3.3: any write that is not a half-word is a bus error, so a
        probe without 16-bit access (V1, V2 before J26) uses the RAM loader.
        """
        for offset, at, size in self.windows(address, len(data), self.link.window):
            self.link.write_memory(at, data[offset:offset + size], width=2)
            self.settle(sr, expected_s=0, what="program", address=at, error=WriteError)
            progress(offset + size, len(data))

    def _program_units(self, address: int, data: bytes, sr: int, progress: Progress) -> None:
        """One half-word per command, BSY polled before the next (clones, unknown parts)."""
        if not self.link.version.has("mem-16bit"):
            raise WriteError(f"ST-Link firmware {self.link.version} cannot write single "
                             f"half-words, which the safe write path needs", address=address,
                             hint="update the probe (V2 J26 or later), or set write-mode: "
                                  "fast on a genuine part")
        expected = self.chip.timing.program_seconds(2, 2)
        for offset in range(0, len(data), 2):
            at = address + offset
            self.link.write_block(at, data[offset:offset + 2], 2)
            self.settle(sr, expected_s=expected, what="program", address=at, error=WriteError)
            if offset % 1024 == 0:
                progress(offset + 2, len(data))
        progress(len(data), len(data))

    def loader_spans(self, address: int, length: int) -> list[LoaderSpan]:
        spans = []
        for start, size in self.blocks_by_bank(address, length):
            bank = self._bank_of(start)
            sr, cr = self._reg(SR, bank), self._reg(CR, bank)
            spans.append(self.span(start, size, status=sr,
                                   setup=((sr, SR_EOP | SR_PGERR | SR_WRPRTERR), (cr, CR_PG)),
                                   teardown=((cr, 0),)))
        return spans

    # -- option bytes (RM0008 §2.5, PM0075 §2.5) ---------------------------------------------

    def read_option_bytes(self) -> OptionBytes:
        ob = self.chip.option_bytes
        raw = self.link.read_memory(ob.address, ob.size)
        obr = self.link.read_word(self._reg(OBR))
        level = 1 if obr & 0x2 else 0  # OBR.RDPRT is what the chip enforces
        fields = {"user": raw[2], "data0": raw[4], "data1": raw[6]}
        return OptionBytes(raw=raw, rdp_level=level, fields=fields)

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        check_rdp_change(self.chip, change)
        ob = self.chip.option_bytes
        current = bytearray(self.link.read_memory(ob.address, ob.size))
        wanted = bytearray(current)
        if change.rdp_level is not None:
            wanted[0] = {0: ob.rdp_level0, 2: ob.rdp_level2}.get(change.rdp_level, 0x00)
        for name, value in change.fields.items():
            index = {"user": 2, "data0": 4, "data1": 6, "wrp0": 8, "wrp1": 10, "wrp2": 12,
                     "wrp3": 14}.get(name)
            if index is None:
                raise WriteError(f"unknown F1 option field {name!r}", address=ob.address,
                                 hint="use user, data0, data1 or wrp0..wrp3")
            wanted[index] = value & 0xFF
        for i in range(0, ob.size, 2):
            wanted[i + 1] = wanted[i] ^ 0xFF  # each byte is stored with its complement
        self.unlock()
        try:
            self.write_keys(self._reg(OPTKEYR), KEYS)  # F0/F1/F3: OPTKEYR takes KEYR's keys
            # RM0008 §2.5: writing CR without OPTWRE would clear it, so keep it set.
            self.link.write_word(self._reg(CR), CR_OPTER | CR_OPTWRE)
            self.link.write_word(self._reg(CR), CR_OPTER | CR_OPTWRE | CR_STRT)
            self.settle(self._reg(SR), expected_s=self.chip.timing.page_erase_ms / 1000,
                        what="option erase", address=ob.address, error=EraseError)
            self.link.write_word(self._reg(CR), CR_OPTPG | CR_OPTWRE)
            for i in range(0, ob.size, 2):
                self.link.write_block(ob.address + i, bytes(wanted[i:i + 2]), 2)
                self.settle(self._reg(SR), expected_s=0, what="option program",
                            address=ob.address + i, error=WriteError)
            self.link.write_word(self._reg(CR), 0)
        finally:
            self.lock()
