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

from runner.formats.elf import parse_elf
from runner.formats.text import parse_ihex, parse_srec

__all__ = ["parse_elf", "parse_ihex", "parse_srec"]
