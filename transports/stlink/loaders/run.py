"""Running code in a halted target's SRAM: registers, resume, wait for the bkpt.

Shared by the RAM flash loader (:mod:`.ram`) and the read-only CRC routine
(:mod:`.crc`). The host sets core registers through DCRSR/DCRDR (ARMv7-M
C1.6.3), resumes with interrupts masked, and waits for the core to halt at the
code's ``bkpt``. A run that does not halt in time or locks up raises
:class:`LoaderError` and leaves the core halted; a fault halts the core through
the hard-fault vector catch set at :meth:`CoreRunner.prepare` (DFSR.VCATCH).
"""

from __future__ import annotations

from collections.abc import Sequence

from transports.errors import TransportError
from transports.stlink.protocol import StLink

__all__ = ["CoreRunner", "LoaderError"]

DHCSR, DCRSR, DCRDR, DFSR, DEMCR = 0xE000EDF0, 0xE000EDF4, 0xE000EDF8, 0xE000ED30, 0xE000EDFC
DHCSR_KEY = 0xA05F0000
C_DEBUGEN, C_HALT, C_MASKINTS = 0x1, 0x2, 0x8
S_HALT, S_LOCKUP = 1 << 17, 1 << 19
DFSR_VCATCH = 1 << 3
REGWNR = 1 << 16
XPSR, PC = 16, 15
#: xPSR with EPSR.T set: Thumb state (ARMv7-M B1.4.2)
XPSR_THUMB = 1 << 24
#: DEMCR: keep TRCENA and catch hard and bus faults (code that faults halts).
DEMCR_CATCH = 0x01000500


class LoaderError(TransportError):
    """Code run in SRAM did not run as it should (timeout, fault, lockup, bad result)."""

    category = "write"


class CoreRunner:
    """Run control of the halted core behind ``link`` for code at ``base``."""

    def __init__(self, link: StLink, base: int) -> None:
        self.link = link
        self.base = base
        self.runs = 0

    def write_register(self, regsel: int, value: int) -> None:
        self.link.write_word(DCRDR, value)
        self.link.write_word(DCRSR, regsel | REGWNR)

    def read_register(self, regsel: int) -> int:
        self.link.write_word(DCRSR, regsel)
        return self.link.read_word(DCRDR)

    def prepare(self) -> None:
        """Halt, catch faults, clear the debug fault status, set Thumb state."""
        link = self.link
        link.write_word(DHCSR, DHCSR_KEY | C_DEBUGEN | C_HALT)
        link.write_word(DEMCR, DEMCR_CATCH)
        link.write_word(DFSR, 0x1F)
        self.write_register(XPSR, XPSR_THUMB)

    def start(self, entry: int, arguments: Sequence[int] = ()) -> float:
        """Set r0.. to ``arguments`` and PC to ``base + entry``, resume; when it started."""
        for regsel, value in enumerate(arguments):
            self.write_register(regsel, value)
        self.write_register(PC, self.base + entry)
        self.link.write_word(DHCSR, DHCSR_KEY | C_DEBUGEN | C_MASKINTS)
        self.runs += 1
        return self.link.timebase.monotonic()

    def wait(self, expected_s: float, what: str, since: float, *, hint: str) -> None:
        """Wait for the core to halt; the run started at ``since``.

        The time spent meanwhile (sending the next block) counts towards the
        expected duration. Raises :class:`LoaderError` (the core halted again)
        when it does not halt within ten times that, at least 0.5 s, or locks up.
        """
        timebase = self.link.timebase
        deadline = since + max(expected_s * 10, 0.5)
        remaining = since + expected_s - timebase.monotonic()
        if remaining > 0.0005:
            timebase.sleep(remaining)
        step = max(expected_s / 32, 0.0002)
        while True:
            status = self.link.read_word(DHCSR)
            if status & S_HALT:
                return
            if status & S_LOCKUP or timebase.monotonic() > deadline:
                self.link.write_word(DHCSR, DHCSR_KEY | C_DEBUGEN | C_HALT)
                why = "locked up" if status & S_LOCKUP else "did not finish in time"
                raise LoaderError(f"the {what} {why}", hint=hint)
            timebase.sleep(step)

    def faulted(self) -> bool:
        """Whether the last run halted on the fault vector catch (DFSR cleared if so)."""
        if self.link.read_word(DFSR) & DFSR_VCATCH:
            self.link.write_word(DFSR, 0x1F)
            return True
        return False
