"""The read-only CRC-32 routine: verify and skip-unchanged without reading flash back.

The register write path (``write-mode: fast`` and ``safe``, and ``auto`` where
it takes them) programs flash from the host, but compares and verifies with
this routine: ``stm32_crc.s`` loaded at the start of SRAM, which reads a range
of flash on the core and leaves the STM32 CRC of it in its parameter block in
SRAM. It stores nowhere else, so whatever goes wrong it cannot change flash.
A comparison costs a few USB transfers instead of the range's bytes.

Trust is earned and lost loudly (docs/architecture.md, "On-target CRC"):

* :meth:`CrcRoutine.load` uploads it and runs it over a known pattern written
  into SRAM next to it; a CRC other than the host's own is a :class:`LoaderError`.
  It loads at its first use (a session that never compares or verifies never
  runs it) and again after anything that reclaims SRAM (a reset).
* Every run carries a tag the routine echoes after its result, and the address
  it stopped at: a run that halts without the echo (a fault through the
  vector catch, a stray bkpt), stops anywhere but the range's end, or does not
  halt in time (the core is halted again) raises :class:`LoaderError`.

The session turns any of these into a read-back and a warning; the core is
halted between runs and after each, as the register path expects.
"""

from __future__ import annotations

import struct

from transports.checksums import stm32_crc32
from transports.chips import Chip
from transports.stlink.loaders.image import CrcImage, crc_routine
from transports.stlink.loaders.ram import RESET_CLOCK_HZ
from transports.stlink.loaders.run import CoreRunner, LoaderError
from transports.stlink.protocol import StLink

__all__ = ["CRC_CYCLES_PER_WORD", "SELF_CHECK_PATTERN", "CrcRoutine", "crc_routine_fits"]

#: Cycles per word of the routine's loop on a Cortex-M0 (the slowest core it runs on);
#: the host waits that long before it polls.
CRC_CYCLES_PER_WORD = 32
#: What the routine sums at load: every byte value once, so every table entry is used.
SELF_CHECK_PATTERN = bytes(range(256))
_RESULTS = 16  # offset of the results in the parameter block
_HINT = ("the register path reads flash back instead (slower); reset the target, and "
         "report the part if it persists")


def _pattern_offset(image: CrcImage) -> int:
    return -(-len(image.code) // 64) * 64


def crc_routine_fits(chip: Chip, image: CrcImage | None = None) -> bool:
    """Whether the routine and its self-check pattern fit in ``chip``'s SRAM."""
    image = image or crc_routine()
    start, end = chip.ram
    return _pattern_offset(image) + len(SELF_CHECK_PATTERN) <= end - start


class CrcRoutine:
    """The CRC routine in one halted target's SRAM."""

    def __init__(self, link: StLink, chip: Chip, image: CrcImage | None = None) -> None:
        self.link = link
        self.chip = chip
        self.image = image or crc_routine()
        if not crc_routine_fits(chip, self.image):
            raise LoaderError(f"{chip.part}'s {(chip.ram[1] - chip.ram[0])} bytes of SRAM "
                              f"cannot hold the CRC routine", hint=_HINT)
        self.base = chip.ram[0]
        self.params = self.base + self.image.params
        self.pattern = self.base + _pattern_offset(self.image)
        self.clock_hz = RESET_CLOCK_HZ.get(chip.controller, 2.0e6)
        self.core = CoreRunner(link, self.base)
        self.loaded = False
        self._tag = 0

    @property
    def runs(self) -> int:
        return self.core.runs

    def load(self) -> None:
        """Upload the routine and check it on a known pattern against the host's CRC."""
        self.loaded = False
        self.core.prepare()
        # The pattern lies right after the code: one upload for both.
        code = self.image.code.ljust(self.pattern - self.base, b"\0")
        self.link.write_memory(self.base, code + SELF_CHECK_PATTERN, width=4)
        expected = stm32_crc32(SELF_CHECK_PATTERN)
        got = self._run(self.pattern, len(SELF_CHECK_PATTERN), "self-check")
        if got != expected:
            raise LoaderError(f"the on-target CRC routine's self-check computed 0x{got:08X} "
                              f"for a known SRAM pattern, not 0x{expected:08X}: the core "
                              f"does not run it correctly", hint=_HINT)
        self.loaded = True

    def crc32(self, address: int, length: int) -> int:
        """The STM32 CRC-32 of ``length`` bytes (a multiple of 4) at ``address`` (aligned)."""
        if not self.loaded:
            self.load()
        return self._run(address, length, f"run over 0x{address:08X}+0x{length:X}")

    def _run(self, address: int, length: int, what: str) -> int:
        self._tag = self._tag % 0xFFFFFFFF + 1
        tag = self._tag
        self.link.write_memory(self.params,
                               struct.pack("<4I", address, length, 0xFFFFFFFF, tag), width=4)
        started = self.core.start(0)
        expected_s = length // 4 * CRC_CYCLES_PER_WORD / self.clock_hz
        self.core.wait(expected_s, f"on-target CRC routine's {what}", started, hint=_HINT)
        crc, stopped, echoed = struct.unpack(
            "<3I", self.link.read_memory(self.params + _RESULTS, 12))
        if echoed != tag:
            why = "faulted (hard-fault vector catch)" if self.core.faulted() \
                else "halted without finishing"
            raise LoaderError(f"the on-target CRC routine's {what} {why}", hint=_HINT)
        if stopped != address + length:
            raise LoaderError(f"the on-target CRC routine's {what} stopped at "
                              f"0x{stopped:08X}, not at 0x{address + length:08X}: its "
                              f"result cannot be right", hint=_HINT)
        return int(crc)
