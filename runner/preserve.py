"""Keeping the bytes of a partly written erase unit.

Erasing is per page or sector; an image rarely fills its last one. On parts
with small uniform pages that loses little, but on the F2/F4/F7/H7 sector maps
a 1 KiB image in a 128 KiB sector erases 127 KiB of something else
(calibration, a bootloader's settings, a second image).

The remedy is read, erase, write back: :func:`preserve_plan` says which bytes
to read before the erase (the compiler, :mod:`runner.layout`), and
:func:`merge_preserved` and :func:`overlay` fold what was read into the map to
write and the map to verify, which then covers the whole sector (the
executor, :mod:`runner.unitrun`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from runner.errors import FlashError
from runner.memmap import MemoryMap, Segment
from transports.chips import FlashBlock, FlashGeometry

__all__ = [
    "PreserveRange",
    "PreservedWrite",
    "merge_preserved",
    "overlay",
    "preserve_plan",
]

#: Runs of erased bytes at least this long are not written back (they already are).
ERASED_RUN = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class PreserveRange:
    """Bytes of ``block`` that the erase would destroy and the write would not restore."""

    block: FlashBlock
    address: int
    length: int

    @property
    def end(self) -> int:
        return self.address + self.length


@dataclass(frozen=True, slots=True, kw_only=True)
class PreservedWrite:
    """``write``: what to program (image + kept bytes, erased runs left out).
    ``verify``: what flash must hold afterwards (image + every kept byte)."""

    write: MemoryMap
    verify: MemoryMap


def _gaps(memory: MemoryMap, block: FlashBlock) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of ``block`` that ``memory`` does not cover."""
    gaps: list[tuple[int, int]] = []
    cursor = block.address
    for segment in memory.segments:
        if segment.end <= block.address or segment.address >= block.end:
            continue
        if segment.address > cursor:
            gaps.append((cursor, segment.address))
        cursor = max(cursor, segment.end)
    if cursor < block.end:
        gaps.append((cursor, block.end))
    return gaps


def preserve_plan(memory: MemoryMap, geometry: FlashGeometry,
                  blocks: Iterable[FlashBlock] | None = None) -> list[PreserveRange]:
    """What to read before erasing the units ``memory`` touches (or only ``blocks``).

    ``memory`` is the device's unpadded map: padding bytes are gaps too, as
    the erase destroys whatever was there.
    """
    chosen = memory.blocks(geometry) if blocks is None else tuple(blocks)
    return [PreserveRange(block=block, address=start, length=end - start)
            for block in chosen for start, end in _gaps(memory, block)]


def _without_erased_runs(segment: Segment, erased: int) -> list[Segment]:
    data = segment.data
    pieces: list[Segment] = []
    start = 0
    index = 0
    while index < len(data):
        if data[index] != erased:
            index += 1
            continue
        run_end = index
        while run_end < len(data) and data[run_end] == erased:
            run_end += 1
        if run_end - index >= ERASED_RUN:
            if index > start:
                pieces.append(Segment(segment.address + start, data[start:index]))
            start = run_end
        index = run_end
    if start < len(data):
        pieces.append(Segment(segment.address + start, data[start:]))
    return pieces


def merge_preserved(memory: MemoryMap, kept: Sequence[tuple[PreserveRange, bytes]],
                    erased: int = 0xFF) -> PreservedWrite:
    """Fold the bytes read before the erase into the maps to write and to verify."""
    verify: list[Segment] = list(memory.segments)
    write: list[Segment] = list(memory.segments)
    for span, data in kept:
        if len(data) != span.length:
            raise FlashError(f"reading the {span.length} bytes to keep at 0x{span.address:08X} "
                             f"returned {len(data)}; nothing was erased",
                             address=span.address, hint="retry; if it persists, the link "
                                                        "is unreliable")
        segment = Segment(span.address, bytes(data))
        verify.append(segment)
        write.extend(_without_erased_runs(segment, erased))
    return PreservedWrite(write=MemoryMap.from_segments(write, label="kept bytes"),
                          verify=MemoryMap.from_segments(verify, label="kept bytes"))


def overlay(base: MemoryMap, top: Iterable[Segment]) -> MemoryMap:
    """``base`` with ``top``'s bytes laid over it (``top`` wins where both have a byte).

    Used at run time to put kept bytes into the padding of a write (padding
    holds only fill bytes there, as kept ranges never hold image bytes) and
    into the map a verify compares, and to add per-unit values.
    """
    top = tuple(top)
    pieces = sorted([*base.segments, *top], key=lambda s: s.address)
    spans: list[list[int]] = []
    for piece in pieces:
        if spans and piece.address <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], piece.end)
        elif piece.data:
            spans.append([piece.address, piece.end])
    buffers = [bytearray(end - start) for start, end in spans]
    starts = [start for start, _ in spans]
    for layer in (base.segments, top):
        for segment in layer:
            index = bisect.bisect_right(starts, segment.address) - 1
            offset = segment.address - starts[index]
            buffers[index][offset:offset + len(segment)] = segment.data
    return MemoryMap.from_segments(Segment(start, bytes(buffer))
                                   for start, buffer in zip(starts, buffers, strict=True))
