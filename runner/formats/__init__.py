"""Firmware file formats → :class:`~runner.memmap.MemoryMap`.

One module per format family; each ``parse_*`` function takes the file's bytes
and its path (for messages) and either returns the memory map or raises
:class:`~runner.errors.ImageError` locating the problem: a line for the text
formats, a byte offset for the binary ones.

Text formats go through bincopy and ELF through pyelftools, both well-kept
and widely used; the DfuSe container is ours (:mod:`runner.dfufile`), as no
maintained library reads and writes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.memmap import MemoryMap

__all__ = ["parse_elf", "parse_ihex", "parse_srec"]

# The parsers import their libraries when a file of their format is read, not at
# start-up: most runs read raw binaries, and bincopy with pyelftools cost ~40 ms.


def parse_elf(data: bytes, path: str) -> MemoryMap:
    """An ELF file's loadable segments (:func:`runner.formats.elf.parse_elf`)."""
    from runner.formats import elf

    return elf.parse_elf(data, path)


def parse_ihex(data: bytes, path: str) -> MemoryMap:
    """An Intel HEX file (:func:`runner.formats.text.parse_ihex`)."""
    from runner.formats import text

    return text.parse_ihex(data, path)


def parse_srec(data: bytes, path: str) -> MemoryMap:
    """A Motorola S-record file (:func:`runner.formats.text.parse_srec`)."""
    from runner.formats import text

    return text.parse_srec(data, path)
