"""The register set the KEYR/CR/SR flash controllers share, and their status rules.

F0/F1/F3, F2/F4/F7, L4 and its kin, H7 (one set per bank) and H5 each keep a
set of three registers that behave alike on every family: KEY1 then KEY2 in
KEYR unlocks CR, whose LOCK bit reads back from that lock and locks it again
when written; a locked CR ignores writes; SR carries BSY while an operation
runs and its error flags and EOP clear when ones are written over them.

What differs per family is data, and stays in the family's module: where the
bits sit (``StatusBits``, the CR bit numbers) and which status flag a refused
operation raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from transports.sim.stlink.controller import KEY1, KEY2, KeyLock

__all__ = ["RegisterSet", "StatusBits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusBits:
    """One family's status register: busy and end-of-operation flags, error flags.

    ``refused`` is the flag an operation sets when the array refuses it (a
    SimChip fault); ``by_reason`` names the fault reasons that set another flag
    (F1: protection faults set WRPRTERR, the rest PGERR; L4: "not-erased" sets
    PROGERR).
    """

    busy: int
    eop: int
    errors: int
    refused: int
    by_reason: Mapping[str, int] = field(default_factory=dict)

    def outcome(self, fault: str | None) -> int:
        """The flag an operation that ended with ``fault`` (``None``: success) sets."""
        if fault is None:
            return self.eop
        return self.by_reason.get(fault, self.refused)

    def cleared(self, sr: int, written: int) -> int:
        """SR after ``written`` is stored into it: error flags and EOP are write-1-to-clear."""
        return sr & ~(written & (self.errors | self.eop))


class RegisterSet:
    """One KEYR/CR/SR set: its key lock, control word and status word."""

    def __init__(self, status: StatusBits, *, cr_lock: int, cr_start: int) -> None:
        self.status = status
        self.cr_lock = cr_lock
        self.cr_start = cr_start
        self.keys = KeyLock(KEY1, KEY2)
        self.cr = 0
        self.sr = 0

    def read_cr(self) -> int:
        return self.cr | (self.cr_lock if self.keys.locked else 0)

    def read_sr(self, busy: bool) -> int:
        return self.sr | (self.status.busy if busy else 0)

    def clear_status(self, written: int) -> None:
        self.sr = self.status.cleared(self.sr, written)

    def write_cr(self, value: int) -> bool:
        """Store a CR write; True when it was taken and sets START.

        LOCK written locks CR; a locked CR ignores the write (RM0090 §3.5.1:
        it cannot be written until unlocked). START and LOCK are not stored.
        """
        if value & self.cr_lock:
            self.keys.lock()
        if self.keys.locked:
            return False
        self.cr = value & ~(self.cr_start | self.cr_lock)
        return bool(value & self.cr_start)

    def finish(self, fault: str | None) -> None:
        """An operation ended: set EOP, or the flag for the reason it was refused."""
        self.sr |= self.status.outcome(fault)

    def reset(self) -> None:
        """A system reset locks CR again and clears it; SR keeps its flags."""
        self.keys.reset()
        self.cr = 0
