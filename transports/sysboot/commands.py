"""Bootloader command codes and the command set a ROM offers (AN3155 §2, AN4221 §2.3).

A ROM lists its commands in its Get reply. Several functions have two codes —
the legacy and the newer Erase (0x43 / 0x44), the clock-stretching and the
no-stretch I2C variants (0x31 / 0x32 …) — and a ROM lists the one (or both)
it understands; like stm32flash we take the numerically higher code present.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Command", "CommandSet", "command_name"]


class Command(enum.IntEnum):
    GET = 0x00
    GET_VERSION = 0x01
    GET_ID = 0x02
    SPEED = 0x03
    READ = 0x11
    GO = 0x21
    WRITE = 0x31
    WRITE_NS = 0x32
    ERASE = 0x43
    EXTENDED_ERASE = 0x44
    ERASE_NS = 0x45
    SPECIAL = 0x50
    EXTENDED_SPECIAL = 0x51
    WRITE_PROTECT = 0x63
    WRITE_PROTECT_NS = 0x64
    WRITE_UNPROTECT = 0x73
    WRITE_UNPROTECT_NS = 0x74
    READOUT_PROTECT = 0x82
    READOUT_PROTECT_NS = 0x83
    READOUT_UNPROTECT = 0x92
    READOUT_UNPROTECT_NS = 0x93
    GET_CHECKSUM = 0xA1


_NAMES = {
    Command.GET: "Get", Command.GET_VERSION: "Get Version", Command.GET_ID: "Get ID",
    Command.SPEED: "Speed", Command.READ: "Read Memory", Command.GO: "Go",
    Command.WRITE: "Write Memory", Command.WRITE_NS: "No-Stretch Write Memory",
    Command.ERASE: "Erase", Command.EXTENDED_ERASE: "Extended Erase",
    Command.ERASE_NS: "No-Stretch Erase", Command.SPECIAL: "Special",
    Command.EXTENDED_SPECIAL: "Extended Special", Command.WRITE_PROTECT: "Write Protect",
    Command.WRITE_PROTECT_NS: "No-Stretch Write Protect",
    Command.WRITE_UNPROTECT: "Write Unprotect",
    Command.WRITE_UNPROTECT_NS: "No-Stretch Write Unprotect",
    Command.READOUT_PROTECT: "Readout Protect",
    Command.READOUT_PROTECT_NS: "No-Stretch Readout Protect",
    Command.READOUT_UNPROTECT: "Readout Unprotect",
    Command.READOUT_UNPROTECT_NS: "No-Stretch Readout Unprotect",
    Command.GET_CHECKSUM: "Get Checksum",
}


def command_name(code: int) -> str:
    """``Write Memory (0x31)``; unknown codes by number."""
    try:
        return f"{_NAMES[Command(code)]} (0x{code:02X})"
    except ValueError:
        return f"command 0x{code:02X}"


#: AN3155 §2 / AN4221 §2.3: the variants of one function, oldest first.
_VARIANTS: dict[str, tuple[Command, ...]] = {
    "write": (Command.WRITE, Command.WRITE_NS),
    "erase": (Command.ERASE, Command.EXTENDED_ERASE, Command.ERASE_NS),
    "write_protect": (Command.WRITE_PROTECT, Command.WRITE_PROTECT_NS),
    "write_unprotect": (Command.WRITE_UNPROTECT, Command.WRITE_UNPROTECT_NS),
    "readout_protect": (Command.READOUT_PROTECT, Command.READOUT_PROTECT_NS),
    "readout_unprotect": (Command.READOUT_UNPROTECT, Command.READOUT_UNPROTECT_NS),
}

#: Commands a read-protected chip still accepts (AN3155 §2, read protection).
ALLOWED_UNDER_RDP = frozenset({Command.GET, Command.GET_VERSION, Command.GET_ID,
                               Command.READOUT_UNPROTECT, Command.READOUT_UNPROTECT_NS})


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandSet:
    """The commands one ROM listed in its Get reply."""

    version: int
    codes: frozenset[int]

    @classmethod
    def from_get(cls, version: int, codes: Iterable[int]) -> CommandSet:
        return cls(version=version, codes=frozenset(codes))

    def __contains__(self, code: object) -> bool:
        return code in self.codes

    def pick(self, function: str) -> int | None:
        """The code this ROM uses for ``function`` (highest listed variant), or None."""
        listed = [code for code in _VARIANTS[function] if code in self.codes]
        return max(listed) if listed else None

    @property
    def version_text(self) -> str:
        return f"{self.version >> 4}.{self.version & 0xF}"

    @property
    def unknown(self) -> tuple[int, ...]:
        known = {int(code) for code in Command}
        return tuple(sorted(code for code in self.codes if code not in known))

    @property
    def missing_mandatory(self) -> tuple[int, ...]:
        # stm32flash refuses a ROM whose Get omits Get, Get Version or Get ID.
        return tuple(code for code in (Command.GET, Command.GET_VERSION, Command.GET_ID)
                     if code not in self.codes)
