"""Skip unchanged: compare each erase unit first, rewrite only those that differ.

A write step with ``skip-unchanged: true`` decides per *erase unit* (the chip
database's page or sector), never per smaller piece: the unit's content is
compared with what it must hold after the write (the step's bytes, the
preserved bytes kept in it, the erased value everywhere else), by an
on-target checksum where the link offers one, else by reading the unit back.
A unit that differs in any byte is erased and rewritten *whole*. Deciding per
page inside a larger sector loses data: erase the sector, rewrite only the
changed page, and the rest of the sector reads back erased (pyOCD issue
#1983, 16 KiB sectors with 4 KiB pages). The verify step after it still runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runner.memmap import MemoryMap, Segment
from transports.base import Capability, Transport
from transports.checksums import compute
from transports.chips import FlashBlock

__all__ = ["UnitComparison", "compare_units", "rewrite_units", "unit_share"]

#: ``(bytes done) -> None``: the write step's cumulative progress.
Advance = Callable[[int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitComparison:
    """Which units already hold what they must (``same``) and which do not."""

    method: str                      # "checksum" or "readback"
    same: tuple[FlashBlock, ...]
    differ: tuple[FlashBlock, ...]


def unit_share(memory: MemoryMap, unit: FlashBlock) -> list[Segment]:
    """The pieces of ``memory`` that lie inside ``unit``."""
    pieces = []
    for segment in memory:
        lo, hi = max(unit.address, segment.address), min(unit.end, segment.end)
        if lo < hi:
            pieces.append(Segment(lo, segment.data[lo - segment.address:hi - segment.address]))
    return pieces


def compare_units(transport: Transport, memory: MemoryMap, units: Sequence[FlashBlock], *,
                  erased: int, checksums: bool = True) -> UnitComparison:
    """Compare every unit of ``units`` with what it must hold once ``memory`` is written.

    The expected content of a unit is the whole unit: ``memory``'s bytes in it
    and ``erased`` elsewhere, so stale bytes left outside the new image count
    as a difference too. ``checksums`` false: read back although the link
    offers a checksum (it was proven wrong earlier in the session).
    """
    by_checksum = checksums and Capability.CHECKSUM in transport.capabilities
    same: list[FlashBlock] = []
    differ: list[FlashBlock] = []
    for unit in units:
        expected = memory.bytes_at(unit.address, unit.size, erased)
        if by_checksum:
            reported = transport.checksum(unit.address, unit.size)
            if Capability.CHECKSUM not in transport.capabilities:
                # The checksum failed on the way (the link said so, loudly): no unit
                # may rest on it, so the whole comparison is read back.
                return compare_units(transport, memory, units, erased=erased, checksums=False)
            matches = compute(reported.algorithm, expected) == reported.value
        else:
            matches = transport.read(unit.address, unit.size) == expected
        (same if matches else differ).append(unit)
    return UnitComparison(method="checksum" if by_checksum else "readback",
                          same=tuple(same), differ=tuple(differ))


def rewrite_units(transport: Transport, memory: MemoryMap, comparison: UnitComparison,
                  advance: Advance) -> int:
    """Erase the differing units and program all of ``memory`` inside them.

    Returns the bytes programmed. Progress counts ``memory``'s bytes: those of
    the units left alone are done at once.
    """
    done = sum(len(piece) for unit in comparison.same for piece in unit_share(memory, unit))
    advance(done)
    if not comparison.differ:
        return 0
    transport.erase(comparison.differ)
    written = 0
    for unit in comparison.differ:
        for piece in unit_share(memory, unit):
            base = done

            def progress(part: int, _total: int, base: int = base) -> None:
                advance(base + part)

            transport.write(piece.address, piece.data, progress)
            done += len(piece)
            written += len(piece)
            advance(done)
    return written
