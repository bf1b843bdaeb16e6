"""Sparse memory maps: what bytes go where, independent of any file format.

A :class:`MemoryMap` is a sorted tuple of non-overlapping, non-adjacent
:class:`Segment` s. Images load into one; the compiler merges a device's images
(overlaps are errors), pads to the chip's write unit with the erased value, and
asks which erase units are touched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise

from transports.chips import FlashBlock, FlashGeometry

__all__ = ["MemoryMap", "OverlapError", "Segment"]


class OverlapError(ValueError):
    """Two segments claim the same address (``address`` is the first shared byte)."""

    def __init__(self, address: int, first: str, second: str) -> None:
        super().__init__(f"{first} and {second} overlap at 0x{address:08X}")
        self.address = address
        self.first = first
        self.second = second


@dataclass(frozen=True, slots=True)
class Segment:
    """``data`` placed at ``address``."""

    address: int
    data: bytes

    @property
    def end(self) -> int:
        return self.address + len(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Segment(0x{self.address:08X}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class MemoryMap:
    """Sorted, disjoint segments; adjacent ones are joined."""

    segments: tuple[Segment, ...] = ()
    #: The digest once computed: a plan shares one map between thousands of devices.
    _digest: list[str] = field(default_factory=list, init=False, repr=False, compare=False)

    @classmethod
    def from_segments(cls, segments: Iterable[Segment], *, label: str = "image") -> MemoryMap:
        """Sort and join ``segments``; raise :class:`OverlapError` if any two overlap."""
        ordered = sorted((s for s in segments if s.data), key=lambda s: s.address)
        joined: list[Segment] = []
        for segment in ordered:
            if joined and segment.address < joined[-1].end:
                raise OverlapError(segment.address, label, label)
            if joined and segment.address == joined[-1].end:
                joined[-1] = Segment(joined[-1].address, joined[-1].data + segment.data)
            else:
                joined.append(segment)
        return cls(tuple(joined))

    @classmethod
    def merge(cls, named: Iterable[tuple[str, MemoryMap]]) -> MemoryMap:
        """Combine several images' maps; an overlap names both images."""
        owners: list[tuple[Segment, str]] = []
        for name, memory in named:
            owners.extend((segment, name) for segment in memory.segments)
        owners.sort(key=lambda pair: pair[0].address)
        for (left, left_name), (right, right_name) in pairwise(owners):
            if right.address < left.end:
                raise OverlapError(right.address, left_name, right_name)
        return cls.from_segments(segment for segment, _ in owners)

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    def __bool__(self) -> bool:
        return bool(self.segments)

    @property
    def size(self) -> int:
        """Bytes of data (gaps excluded)."""
        return sum(len(s) for s in self.segments)

    @property
    def start(self) -> int:
        return self.segments[0].address if self.segments else 0

    @property
    def end(self) -> int:
        return self.segments[-1].end if self.segments else 0

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        """``(start, end)`` of each segment, end exclusive."""
        return tuple((s.address, s.end) for s in self.segments)

    def sha256(self) -> str:
        """Digest over (address, length, data) of every segment: the map's identity."""
        if self._digest:
            return self._digest[0]
        digest = hashlib.sha256()
        for segment in self.segments:
            digest.update(segment.address.to_bytes(4, "little"))
            digest.update(len(segment).to_bytes(4, "little"))
            digest.update(segment.data)
        self._digest.append(digest.hexdigest())
        return self._digest[0]

    def shifted(self, delta: int) -> MemoryMap:
        return MemoryMap(tuple(Segment(s.address + delta, s.data) for s in self.segments))

    def padded(self, unit: int, fill: int = 0xFF) -> MemoryMap:
        """Extend every segment to ``unit`` alignment at both ends with ``fill``.

        Segments that end up sharing a write unit are joined, the gap between
        them filled, so the result can be programmed unit by unit.
        """
        if unit <= 1:
            return self
        padded: list[Segment] = []
        for segment in self.segments:
            start = segment.address - segment.address % unit
            end = -(-segment.end // unit) * unit
            if padded and start < padded[-1].end:
                start = padded[-1].address
                buffer = bytearray(padded.pop().data)
                buffer.extend(bytes([fill]) * (end - start - len(buffer)))
            else:
                buffer = bytearray([fill]) * (end - start)
            offset = segment.address - start
            buffer[offset:offset + len(segment)] = segment.data
            padded.append(Segment(start, bytes(buffer)))
        return MemoryMap.from_segments(padded)

    def blocks(self, geometry: FlashGeometry) -> tuple[FlashBlock, ...]:
        """Erase units touched by any byte of the map, in order, without repeats."""
        seen: dict[int, FlashBlock] = {}
        for segment in self.segments:
            for block in geometry.blocks_covering(segment.address, len(segment)):
                seen.setdefault(block.index, block)
        return tuple(seen[i] for i in sorted(seen))

    def outside(self, geometry: FlashGeometry) -> Segment | None:
        """The first segment not wholly inside flash, if any."""
        for segment in self.segments:
            if not geometry.contains(segment.address, len(segment)):
                return segment
        return None

    def bytes_at(self, address: int, length: int, fill: int = 0xFF) -> bytes:
        """The map's content over ``[address, address+length)``, gaps filled."""
        out = bytearray([fill]) * length
        for segment in self.segments:
            lo = max(address, segment.address)
            hi = min(address + length, segment.end)
            if lo < hi:
                out[lo - address:hi - address] = segment.data[lo - segment.address:
                                                              hi - segment.address]
        return bytes(out)
