"""Chip names as people type them: ordering codes, any case, with or without ``STM32``.

The chip database is keyed by part (``stm32f103c8``: line, pin count, flash
size). What is printed on the package and the distributor's invoice is the
full ordering code, ``STM32F103C8T6``: the part followed by the package letter,
the temperature range digit, optionally a variant letter (``STM32L151C8T6A``
is the ``stm32l151c8a`` die) and ``TR`` for tape and reel. None of those
change how a chip is flashed, so :func:`resolve_part` accepts them and says
which part it chose. :func:`search_parts` is what ``flashrunner chips f103``
lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from transports.chips import Chip, ChipDatabase

__all__ = ["PartMatch", "resolve_part", "search_parts"]

#: What may follow a part in an ordering code: package, temperature, variant, tape and reel.
_ORDERING_SUFFIX = re.compile(r"(?P<package>[a-z])(?P<temperature>\d)(?P<variant>[a-z]?)(tr)?")


@dataclass(frozen=True, slots=True, kw_only=True)
class PartMatch:
    """The part chosen for a name; ``note`` says how when it was not the name itself."""

    chip: Chip
    note: str | None = None


def _canonical(name: str) -> str:
    text = re.sub(r"[\s_-]", "", name.strip().lower())
    return text if text.startswith("stm32") else f"stm32{text}"


def resolve_part(database: ChipDatabase, name: str) -> PartMatch:
    """The part ``name`` means: a part, in any case, or a full ordering code.

    Raises:
        KeyError: no part matches (the message names near misses).
    """
    text = _canonical(name)
    if text in database:
        chip = database.part(text)
        return PartMatch(chip=chip, note=None if name.strip() == chip.part else
                         f"{name.strip()} is {chip.part}")
    for cut in range(len(text) - 1, len("stm32") + 3, -1):
        base, rest = text[:cut], text[cut:]
        suffix = _ORDERING_SUFFIX.fullmatch(rest)
        if base not in database or suffix is None:
            continue
        variant = suffix.group("variant")
        part = base + variant if variant and base + variant in database else base
        chip = database.part(part)
        return PartMatch(chip=chip, note=f"{name.strip()} is {chip.part} (package "
                                         f"{suffix.group('package').upper()}, temperature "
                                         f"range {suffix.group('temperature')}: flashed alike)")
    return PartMatch(chip=database.part(name.strip()))   # raises KeyError with near misses


def search_parts(database: ChipDatabase, text: str) -> list[Chip]:
    """Every part whose name contains ``text`` (case and an ``STM32`` prefix ignored)."""
    wanted = re.sub(r"[\s_-]", "", text.strip().lower())
    if wanted.startswith("stm32"):
        wanted = wanted[len("stm32"):]
    return [chip for chip in database if wanted in chip.part[len("stm32"):]]
