"""DfuSe memory-layout strings: what each alternate setting of an ST ROM offers.

An alternate setting's interface string describes one memory region (UM0424,
AN3156 §3; the grammar below is the one the ST ROMs emit)::

    @Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg
    @Option Bytes  /0x1FFFC000/01*016 e
    @OTP Memory /0x1FFF7800/01*512 g,01*016 g

``@<name>/<address>/<count>*<size><multiplier><type>[,…]``, optionally repeated
(``/<address>/<segments>``) for a region made of several address ranges. The
multiplier is ``B`` or a space (bytes), ``K`` (KiB) or ``M`` (MiB); the type
letter ``a``..``g`` carries three flags in its low bits: readable (1),
erasable (2), writable (4).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from transports.errors import ProtocolError

__all__ = ["LayoutSector", "MemoryLayout", "parse_layout"]

READABLE = 1
ERASABLE = 2
WRITABLE = 4

_MULTIPLIERS = {"B": 1, " ": 1, "K": 1024, "M": 1024 * 1024}
_SEGMENT = re.compile(r"^\s*(\d+)\*(\d+)\s*([BKM ]?)([a-g])\s*$")
_ADDRESS = re.compile(r"^\s*0[xX]([0-9A-Fa-f]{1,8})\s*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class LayoutSector:
    """One erase unit as the layout string announces it."""

    address: int
    size: int
    flags: int

    @property
    def end(self) -> int:
        return self.address + self.size

    @property
    def readable(self) -> bool:
        return bool(self.flags & READABLE)

    @property
    def erasable(self) -> bool:
        return bool(self.flags & ERASABLE)

    @property
    def writable(self) -> bool:
        return bool(self.flags & WRITABLE)


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryLayout:
    """A parsed layout string: the region's name and every sector, in address order."""

    name: str
    sectors: tuple[LayoutSector, ...]
    text: str = ""

    @property
    def start(self) -> int:
        return self.sectors[0].address

    @property
    def end(self) -> int:
        return self.sectors[-1].end

    @property
    def size(self) -> int:
        return sum(sector.size for sector in self.sectors)

    def covers(self, address: int, length: int = 1) -> bool:
        """True when every byte of ``[address, address+length)`` lies in a sector."""
        return all(self._sector_at(a) is not None for a in self._probe_points(address, length))

    def sectors_in(self, address: int, length: int) -> Iterator[LayoutSector]:
        """Every sector that ``[address, address+length)`` touches."""
        end = address + max(length, 1)
        for sector in self.sectors:
            if sector.address < end and address < sector.end:
                yield sector

    def allows(self, address: int, length: int, flag: int) -> bool:
        """True when the range lies in sectors that all carry ``flag``."""
        if not self.covers(address, length):
            return False
        return all(sector.flags & flag for sector in self.sectors_in(address, length))

    def _sector_at(self, address: int) -> LayoutSector | None:
        for sector in self.sectors:
            if sector.address <= address < sector.end:
                return sector
        return None

    def _probe_points(self, address: int, length: int) -> Iterator[int]:
        """The start, the end and every sector boundary inside the range."""
        end = address + max(length, 1)
        yield address
        yield end - 1
        for sector in self.sectors:
            if address < sector.address < end:
                yield sector.address
                yield sector.address - 1


def _fail(text: str, problem: str) -> ProtocolError:
    return ProtocolError(f"the device's memory layout {text!r} is malformed: {problem}",
                         command="layout",
                         hint="this device does not describe its memory as an ST DfuSe ROM "
                              "does; check vid/pid select an STM32 in DFU mode")


def parse_layout(text: str) -> MemoryLayout:
    """Parse a DfuSe layout string; :class:`ProtocolError` says what is wrong with it."""
    if not text.startswith("@"):
        raise _fail(text, "it does not start with '@'")
    parts = text[1:].split("/")
    name = parts[0].strip()
    if not name:
        raise _fail(text, "the region has no name")
    groups = parts[1:]
    if not groups or len(groups) % 2:
        raise _fail(text, "expected '/<address>/<segments>' after the name")
    sectors: list[LayoutSector] = []
    for address_text, segments_text in zip(groups[0::2], groups[1::2], strict=True):
        match = _ADDRESS.match(address_text)
        if match is None:
            raise _fail(text, f"{address_text!r} is not a 0x-prefixed hex address")
        address = int(match.group(1), 16)
        if not segments_text.strip():
            raise _fail(text, f"no segments follow address {address_text.strip()}")
        for segment in segments_text.split(","):
            found = _SEGMENT.match(segment)
            if found is None:
                raise _fail(text, f"segment {segment!r} is not <count>*<size><K|M|B| ><a-g>")
            count, size = int(found.group(1)), int(found.group(2))
            size *= _MULTIPLIERS[found.group(3) or " "]
            flags = (ord(found.group(4)) - ord("a") + 1) & 0x7
            if count == 0 or size == 0:
                raise _fail(text, f"segment {segment!r} is empty")
            for _ in range(count):
                sectors.append(LayoutSector(address=address, size=size, flags=flags))
                address += size
    if name == "Device Feature":
        # dfu-util forces this region to readable+writable whatever it claims.
        sectors = [LayoutSector(address=s.address, size=s.size, flags=READABLE | WRITABLE)
                   for s in sectors]
    return MemoryLayout(name=name, sectors=tuple(sectors), text=text)
