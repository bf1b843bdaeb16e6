"""Intel HEX and Motorola S-record files, read through bincopy.

bincopy decodes each record (length, checksum, type) and assembles the
segments. What it leaves to its caller we check here, because a truncated or
concatenated file must not flash half a firmware: Intel HEX must end with
its end-of-file record and have nothing after it; an S-record file must end
with a termination record (S7/S8/S9) or a count record (S5/S6; some writers,
bincopy among them, omit the termination record when there is no start
address), and a count record must match the data records before it. Every
problem names the line.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import bincopy

from runner.errors import ImageError
from runner.memmap import MemoryMap, Segment

__all__ = ["parse_ihex", "parse_srec"]

_HINT = "the file is damaged or truncated; rebuild it or copy it again"

# Intel HEX record types (Intel HEX specification rev A).
_IHEX_DATA, _IHEX_EOF, _IHEX_ESA, _IHEX_SSA, _IHEX_ELA, _IHEX_SLA = range(6)
_IHEX_PAYLOAD = {_IHEX_EOF: 0, _IHEX_ESA: 2, _IHEX_SSA: 4, _IHEX_ELA: 2, _IHEX_SLA: 4}


def _fail(path: str, line: int, what: str, hint: str = _HINT) -> ImageError:
    return ImageError(f"{path}:{line}: {what}", path=path, line=line, hint=hint)


def _explain(error: Exception, kind: str) -> str:
    """bincopy's (or bytes.fromhex's) complaint about one record, in our words."""
    text = str(error)
    if isinstance(error, ValueError) and "non-hexadecimal" in text:
        return f"{kind} record has a character that is not a hexadecimal digit"
    if match := re.search(r"expected crc '([0-9A-F]+)'.*but got '([0-9A-F]+)'", text):
        return (f"{kind} record checksum is 0x{match[2]}, but its bytes give 0x{match[1]}")
    if "too short" in text:
        return f"{kind} record is too short"
    if "wrong size" in text:
        return f"{kind} record's length byte does not match the bytes that follow"
    if "not starting with" in text:
        start = "':'" if kind == "Intel HEX" else "'S'"
        return f"line is not a {kind} record (it does not start with {start})"
    if match := re.search(r"expected record type.*got '(.)'", text):
        return f"{kind} record type S{match[1]} does not exist"
    return f"{kind} record is invalid: {text}"


def _decode(data: bytes, path: str) -> list[str]:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise _fail(path, line, f"byte 0x{data[error.start]:02X} is not text; "
                                "is the format right?",
                    hint="set `format:` on the image if the file is not what its "
                         "content suggests") from error
    return text.splitlines()


def _records(lines: list[str]) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers."""
    return [(number, line.strip()) for number, line in enumerate(lines, 1) if line.strip()]


def _assemble(lines: list[str], path: str, add: Callable[[bincopy.BinFile, str], None],
              ) -> MemoryMap:
    """Let bincopy build the segments; locate an overlap by the shortest failing prefix."""
    def fails(count: int) -> bool:
        try:
            add(bincopy.BinFile(), "\n".join(lines[:count]))
        except bincopy.Error:
            return True
        return False

    binfile = bincopy.BinFile()
    try:
        add(binfile, "\n".join(lines))
    except bincopy.Error as error:
        # Records were all checked already, so this is data written twice. bincopy
        # reads in order, hence "prefix fails" is monotonic: bisect for the line.
        low, high = 1, len(lines)
        while low < high:
            middle = (low + high) // 2
            if not fails(middle):
                low = middle + 1
            else:
                high = middle
        raise _fail(path, low, "record writes to addresses an earlier record already wrote",
                    hint="the file was merged from overlapping images; rebuild it") from error
    memory = MemoryMap.from_segments(Segment(segment.minimum_address, bytes(segment.data))
                                     for segment in binfile.segments)
    if not memory:
        raise _fail(path, len(lines) or 1, "the file has no data records", hint=_HINT)
    return memory


def parse_ihex(data: bytes, path: str) -> MemoryMap:
    """Read an Intel HEX file (I8HEX, I16HEX or I32HEX)."""
    lines = _decode(data, path)
    records = _records(lines)
    end_line: int | None = None
    for number, record in records:
        if end_line is not None:
            raise _fail(path, number, f"record after the end-of-file record of line {end_line}",
                        hint="two files were joined; keep only the first, or rebuild")
        try:
            kind, _, size, _ = bincopy.unpack_ihex(record)
        except (bincopy.Error, ValueError) as error:
            raise _fail(path, number, _explain(error, "Intel HEX")) from error
        if kind > _IHEX_SLA:
            raise _fail(path, number, f"Intel HEX record type 0x{kind:02X} does not exist")
        if kind in _IHEX_PAYLOAD and size != _IHEX_PAYLOAD[kind]:
            raise _fail(path, number, f"Intel HEX record of type 0x{kind:02X} must carry "
                                      f"{_IHEX_PAYLOAD[kind]} bytes, not {size}")
        if kind == _IHEX_EOF:
            end_line = number
    if end_line is None:
        last = records[-1][0] if records else 1
        raise _fail(path, last, "no end-of-file record (:00000001FF); the file is truncated")
    return _assemble(lines, path, lambda binfile, text: binfile.add_ihex(text))


def parse_srec(data: bytes, path: str) -> MemoryMap:
    """Read a Motorola S-record file (S19, S28 or S37)."""
    lines = _decode(data, path)
    records = _records(lines)
    data_records = 0
    end_line: int | None = None
    for number, record in records:
        if end_line is not None:
            raise _fail(path, number, f"record after the termination record of line {end_line}",
                        hint="two files were joined; keep only the first, or rebuild")
        try:
            kind, address, _, _ = bincopy.unpack_srec(record)
        except (bincopy.Error, ValueError) as error:
            raise _fail(path, number, _explain(error, "S-record")) from error
        if kind in "123":
            data_records += 1
        elif kind in "56" and address != data_records:
            raise _fail(path, number, f"count record says {address} data records, but "
                                      f"{data_records} precede it; records are missing")
        elif kind in "789":
            end_line = number
    counted = bool(records) and records[-1][1][:2] in ("S5", "S6")
    if end_line is None and not counted:
        last = records[-1][0] if records else 1
        raise _fail(path, last, "no termination record (S7, S8 or S9) nor count record "
                                "(S5, S6) at the end; the file is truncated")
    return _assemble(lines, path, lambda binfile, text: binfile.add_srec(text))
