"""ELF executables, read through pyelftools.

What a programmer writes is what the loader would load: every ``PT_LOAD``
program header with file content (``p_filesz > 0``), placed at its physical
address ``p_paddr`` (the LMA: ``.data`` initialisers live in flash, not at
their RAM address). Sections are not consulted, so debug sections and
``.bss`` (no file content) contribute nothing.

pyelftools trusts the offsets in the headers; we check them against the file
size first so that a truncated file is reported with the offset at fault.
"""

from __future__ import annotations

import io
import struct

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.elffile import ELFFile

from runner.errors import ImageError
from runner.memmap import MemoryMap, OverlapError, Segment

__all__ = ["parse_elf"]

_HINT = "the file is damaged or truncated; rebuild it or copy it again"


def _fail(path: str, offset: int, what: str, hint: str = _HINT) -> ImageError:
    return ImageError(f"{path}: at offset 0x{offset:X}: {what}", path=path, offset=offset,
                      hint=hint)


def _header_bounds(data: bytes, path: str) -> tuple[bool, str]:
    """Check the identification bytes; return (64-bit, byte-order char)."""
    if len(data) < 16:
        raise _fail(path, len(data), "the ELF identification is truncated")
    elf_class, encoding = data[4], data[5]
    if elf_class not in (1, 2):
        raise _fail(path, 4, f"ELF class {elf_class} is neither 32- nor 64-bit")
    if encoding not in (1, 2):
        raise _fail(path, 5, f"ELF data encoding {encoding} is neither little- nor big-endian")
    wide = elf_class == 2
    header_size = 64 if wide else 52
    if len(data) < header_size:
        raise _fail(path, len(data), f"the ELF header is truncated ({len(data)} of "
                                     f"{header_size} bytes)")
    return wide, "<" if encoding == 1 else ">"


def _check_program_headers(data: bytes, path: str) -> None:
    wide, order = _header_bounds(data, path)
    if wide:
        phoff, = struct.unpack_from(order + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 54)
    else:
        phoff, = struct.unpack_from(order + "I", data, 28)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 42)
    if phnum == 0:
        raise _fail(path, 0, "the ELF file has no program headers, so nothing to load",
                    hint="give the linked executable, not an object file (.o)")
    if phoff + phnum * phentsize > len(data):
        raise _fail(path, phoff, f"the program header table ({phnum} entries) runs past the "
                                 f"end of the file ({len(data)} bytes)")


def parse_elf(data: bytes, path: str) -> MemoryMap:
    """Read the loadable content of an ELF executable."""
    _check_program_headers(data, path)
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf["e_machine"]
        loads = [segment.header for segment in elf.iter_segments()
                 if segment["p_type"] == "PT_LOAD" and segment["p_filesz"] > 0]
    except (ELFError, ConstructError, struct.error, ValueError) as error:
        raise _fail(path, 0, f"not a valid ELF file: {error}") from error
    if machine != "EM_ARM":
        raise _fail(path, 18, f"the ELF file is built for {machine}, not for an ARM core",
                    hint="give the firmware built for the STM32, or set `format:` "
                         "if this is not an ELF file")
    if not loads:
        raise _fail(path, 0, "the ELF file has no loadable segment with content",
                    hint="give the linked executable, not an object file (.o)")
    segments: list[Segment] = []
    for number, header in enumerate(loads):
        offset, size = header["p_offset"], header["p_filesz"]
        if size > header["p_memsz"]:
            raise _fail(path, offset, f"loadable segment {number} has more file bytes "
                                      f"({size}) than memory bytes ({header['p_memsz']})")
        if offset + size > len(data):
            raise _fail(path, offset, f"loadable segment {number} ({size} bytes) runs past "
                                      f"the end of the file ({len(data)} bytes)")
        segments.append(Segment(header["p_paddr"], data[offset:offset + size]))
    try:
        return MemoryMap.from_segments(segments, label="a loadable segment")
    except OverlapError as error:
        raise _fail(path, 0, f"two loadable segments overlap at physical address "
                             f"0x{error.address:08X}",
                    hint="check the linker script's AT> placements") from error
