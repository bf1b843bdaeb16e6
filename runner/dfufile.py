"""DFU files: the DfuSe container (UM0391) read and written, plain DFU 1.1 read.

A DfuSe file is a prefix (``DfuSe``, version, size, target count), targets
(one per alternate setting, each a list of address-tagged elements) and the
standard 16-byte DFU suffix ending in a CRC. A plain DFU 1.1 file is a raw
binary followed by the same suffix (``bcdDFU`` 0x0100); it carries no
address, so it needs ``address:`` like a raw binary.

Reading checks everything a damaged file could get wrong — suffix
signature and CRC, prefix signature and size, each target's signature and
size, each element's length — and reports the byte offset at fault.
All integers are little-endian (UM0391 §2).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from runner.errors import ImageError
from runner.memmap import MemoryMap, OverlapError, Segment

__all__ = [
    "DFUSE_VERSION",
    "PLAIN_DFU_VERSION",
    "DfuFile",
    "DfuTarget",
    "dfu_crc",
    "dfuse_from_memory",
    "has_dfu_suffix",
    "read_dfu",
    "write_dfuse",
]

DFUSE_VERSION = 0x011A
PLAIN_DFU_VERSION = 0x0100
ANY = 0xFFFF

_PREFIX = struct.Struct("<5sBIB")          # szSignature, bVersion, DFUImageSize, bTargets
_TARGET = struct.Struct("<6sBI255sII")     # szSignature, bAlternateSetting, bTargetNamed,
#                                            szTargetName, dwTargetSize, dwNbElements
_ELEMENT = struct.Struct("<II")            # dwElementAddress, dwElementSize
_SUFFIX = struct.Struct("<HHHH3sB")        # bcdDevice, idProduct, idVendor, bcdDFU,
#                                            ucDfuSignature, bLength (then dwCRC)
_SUFFIX_SIZE = 16
_HINT = "the file is damaged or truncated; rebuild it or copy it again"


@dataclass(frozen=True, slots=True, kw_only=True)
class DfuTarget:
    """One DfuSe target: the elements for one alternate setting."""

    alt: int = 0
    name: str = ""
    elements: tuple[Segment, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DfuFile:
    """A parsed DFU file. ``targets`` is empty for a plain DFU 1.1 file (see ``payload``)."""

    targets: tuple[DfuTarget, ...] = ()
    payload: bytes = b""
    vendor: int = ANY
    product: int = ANY
    device: int = ANY
    dfu_version: int = DFUSE_VERSION

    @property
    def dfuse(self) -> bool:
        return self.dfu_version == DFUSE_VERSION

    def memory(self) -> MemoryMap:
        """Every target's elements in one map (addresses are absolute in DfuSe)."""
        elements = [element for target in self.targets for element in target.elements]
        return MemoryMap.from_segments(elements, label="a DfuSe element")


def dfu_crc(data: bytes) -> int:
    """DFU 1.1 suffix CRC: reflected CRC-32 without the final inversion."""
    return zlib.crc32(data) ^ 0xFFFFFFFF


def has_dfu_suffix(data: bytes) -> bool:
    """True when ``data`` ends in a DFU suffix with a correct CRC."""
    if len(data) < _SUFFIX_SIZE:
        return False
    *_, signature, length = _SUFFIX.unpack_from(data, len(data) - _SUFFIX_SIZE)
    crc: int = struct.unpack_from("<I", data, len(data) - 4)[0]
    return signature == b"UFD" and length >= _SUFFIX_SIZE and crc == dfu_crc(data[:-4])


def _fail(path: str, offset: int, what: str, hint: str = _HINT) -> ImageError:
    return ImageError(f"{path}: at offset 0x{offset:X}: {what}", path=path, offset=offset,
                      hint=hint)


def read_dfu(data: bytes, path: str) -> DfuFile:
    """Parse a DfuSe or plain DFU file; raise :class:`ImageError` at the first fault."""
    if len(data) < _SUFFIX_SIZE:
        raise _fail(path, 0, f"the file is {len(data)} bytes, too short for a DFU suffix")
    start = len(data) - _SUFFIX_SIZE
    device, product, vendor, version, signature, length = _SUFFIX.unpack_from(data, start)
    if signature != b"UFD":
        raise _fail(path, start + 8, "no DFU suffix: the signature 'UFD' is missing",
                    hint="the file is not a .dfu file; set `format:` on the image")
    if not _SUFFIX_SIZE <= length <= len(data):
        raise _fail(path, start + 11, f"the DFU suffix length {length} is invalid")
    stored, = struct.unpack_from("<I", data, len(data) - 4)
    computed = dfu_crc(data[:-4])
    if stored != computed:
        raise _fail(path, len(data) - 4, f"CRC mismatch: the suffix says 0x{stored:08X}, "
                                         f"the content gives 0x{computed:08X}")
    body = data[:len(data) - length]
    if version != DFUSE_VERSION and not body.startswith(b"DfuSe"):
        return DfuFile(payload=body, vendor=vendor, product=product, device=device,
                       dfu_version=version)
    targets = _read_dfuse_body(body, path)
    return DfuFile(targets=targets, vendor=vendor, product=product, device=device,
                   dfu_version=version)


def _read_dfuse_body(body: bytes, path: str) -> tuple[DfuTarget, ...]:
    if len(body) < _PREFIX.size:
        raise _fail(path, 0, "the DfuSe prefix is truncated")
    signature, version, image_size, count = _PREFIX.unpack_from(body, 0)
    if signature != b"DfuSe":
        raise _fail(path, 0, f"bad DfuSe prefix: signature is {signature!r}, not b'DfuSe'")
    if version != 1:
        raise _fail(path, 5, f"DfuSe version {version} is not supported (only version 1)")
    if image_size != len(body):
        raise _fail(path, 6, f"size mismatch: the prefix says {image_size} bytes before the "
                             f"suffix, the file has {len(body)}")
    offset = _PREFIX.size
    targets: list[DfuTarget] = []
    for number in range(count):
        target, offset = _read_target(body, offset, number, path)
        targets.append(target)
    if offset != len(body):
        raise _fail(path, offset, f"{len(body) - offset} bytes after the last target")
    return tuple(targets)


def _read_target(body: bytes, offset: int, number: int, path: str) -> tuple[DfuTarget, int]:
    if offset + _TARGET.size > len(body):
        raise _fail(path, offset, f"target {number}'s header is truncated")
    signature, alt, named, raw_name, size, count = _TARGET.unpack_from(body, offset)
    if signature != b"Target":
        raise _fail(path, offset, f"bad target {number}: signature is {signature!r}, "
                                  f"not b'Target'")
    name = raw_name.split(b"\0", 1)[0].decode("latin-1") if named else ""
    start = offset + _TARGET.size
    end = start + size
    if end > len(body):
        raise _fail(path, offset + 266, f"target {number} says {size} bytes, only "
                                        f"{len(body) - start} remain")
    elements: list[Segment] = []
    cursor = start
    for element_number in range(count):
        if cursor + _ELEMENT.size > end:
            raise _fail(path, cursor, f"element {element_number} of target {number}: "
                                      f"header is truncated")
        address, length = _ELEMENT.unpack_from(body, cursor)
        cursor += _ELEMENT.size
        if cursor + length > end:
            raise _fail(path, cursor - 4, f"element {element_number} of target {number} is "
                                          f"truncated: it says {length} bytes, only "
                                          f"{end - cursor} remain in the target")
        elements.append(Segment(address, body[cursor:cursor + length]))
        cursor += length
    if cursor != end:
        raise _fail(path, cursor, f"size mismatch: target {number} says {size} bytes, its "
                                  f"{count} elements take {cursor - start}")
    try:
        MemoryMap.from_segments(elements)
    except OverlapError as error:
        raise _fail(path, start, f"elements of target {number} overlap at "
                                 f"0x{error.address:08X}") from error
    return DfuTarget(alt=alt, name=name, elements=tuple(e for e in elements if e.data)), end


def write_dfuse(targets: Iterable[DfuTarget], *, vendor: int = ANY, product: int = ANY,
                device: int = ANY) -> bytes:
    """Serialise ``targets`` as a DfuSe file with a DFU 1.1 suffix."""
    blocks: list[bytes] = []
    targets = tuple(targets)
    if not 0 < len(targets) < 256:
        raise ValueError("a DfuSe file holds 1 to 255 targets")
    for target in targets:
        payload = b"".join(_ELEMENT.pack(element.address, len(element)) + element.data
                           for element in target.elements)
        name = target.name.encode("latin-1")
        if len(name) > 254:
            raise ValueError("a DfuSe target name is at most 254 bytes")
        blocks.append(_TARGET.pack(b"Target", target.alt, 1 if name else 0, name, len(payload),
                                   len(target.elements)) + payload)
    size = _PREFIX.size + sum(len(block) for block in blocks)
    body = _PREFIX.pack(b"DfuSe", 1, size, len(targets)) + b"".join(blocks)
    unsigned = body + _SUFFIX.pack(device, product, vendor, DFUSE_VERSION, b"UFD",
                                   _SUFFIX_SIZE)
    return unsigned + struct.pack("<I", dfu_crc(unsigned))


def dfuse_from_memory(memory: MemoryMap, *, alt: int = 0, name: str = "Internal Flash",
                      vendor: int = ANY, product: int = ANY, device: int = ANY) -> bytes:
    """One target holding one element per segment of ``memory``."""
    target = DfuTarget(alt=alt, name=name, elements=memory.segments)
    return write_dfuse((target,), vendor=vendor, product=product, device=device)
