"""Firmware files → sparse memory maps.

:func:`load_image` reads an :class:`~runner.model.ImageSpec`'s file, checks its
pin, detects the format from content (or takes ``format:``), and returns a
:class:`LoadedImage`. The formats live in :mod:`runner.formats` (Intel HEX and
S-record through bincopy, ELF through pyelftools) and :mod:`runner.dfufile`.

:func:`merge_images` combines several images into one map, an overlap naming
both images (``flashrunner dfu-pack``; the compiler applies the same rule per
device in :mod:`runner.layout`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from runner.dfufile import has_dfu_suffix, read_dfu
from runner.errors import ImageError
from runner.formats import parse_elf, parse_ihex, parse_srec
from runner.inputs import IMAGE_LIMIT, read_input
from runner.memmap import MemoryMap, OverlapError, Segment
from runner.model import ImageSpec

__all__ = [
    "FORMATS",
    "LoadedImage",
    "detect_format",
    "file_sha256",
    "load_image",
    "merge_images",
    "parse_image",
]

FORMATS = ("bin", "ihex", "srec", "elf", "dfu")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedImage:
    name: str
    path: Path
    format: str
    sha256: str
    memory: MemoryMap
    preserve: bool = False


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _is_srec_start(head: bytes) -> bool:
    return len(head) >= 2 and head[:1] == b"S" and head[1:2] in b"0123456789"


def detect_format(data: bytes) -> str:
    """Guess the format from the file's content (anything unrecognised is raw binary)."""
    if data.startswith(b"\x7fELF"):
        return "elf"
    if data.startswith(b"DfuSe") or has_dfu_suffix(data):
        return "dfu"
    head = data.lstrip()[:2]
    if head[:1] == b":":
        return "ihex"
    if _is_srec_start(head):
        return "srec"
    return "bin"


def parse_image(data: bytes, fmt: str, path: str, address: int | None = None) -> MemoryMap:
    """Parse ``data`` as ``fmt``; ``address`` places raw content (bin, plain DFU)."""
    if fmt == "ihex":
        return parse_ihex(data, path)
    if fmt == "srec":
        return parse_srec(data, path)
    if fmt == "elf":
        if not data.startswith(b"\x7fELF"):
            raise ImageError(f"{path}: at offset 0x0: not an ELF file (no \\x7fELF magic)",
                             path=path, offset=0,
                             hint="check `format:` on the image, or the file")
        return parse_elf(data, path)
    if fmt == "dfu":
        dfu = read_dfu(data, path)
        if dfu.dfuse:
            try:
                memory = dfu.memory()
            except OverlapError as error:
                raise ImageError(f"{path}: two DfuSe targets both write 0x{error.address:08X}",
                                 path=path, hint="rebuild the .dfu file") from error
            if not memory:
                raise ImageError(f"{path}: the DfuSe file has no data", path=path)
            return memory
        return _raw(dfu.payload, path, address, "a plain DFU file")
    if fmt == "bin":
        return _raw(data, path, address, "a raw binary")
    raise ImageError(f"{path}: unknown image format {fmt!r}", path=path,
                     hint=f"use one of: {', '.join(FORMATS)}")


def _raw(data: bytes, path: str, address: int | None, what: str) -> MemoryMap:
    if address is None:
        raise ImageError(f"{path} is {what} and has no address", path=path,
                         hint="give its address: `address: 0x08000000` on the image, or "
                              "FILE@0x08000000 on the command line")
    if not data:
        raise ImageError(f"{path} is empty", path=path, hint="rebuild the image")
    return MemoryMap((Segment(address, data),))


def load_image(spec: ImageSpec) -> LoadedImage:
    """Read and parse ``spec``'s file; raise :class:`ImageError` saying what is wrong."""
    path = spec.path
    try:
        data = read_input(path, limit=IMAGE_LIMIT)
    except OSError as error:
        raise ImageError(f"image {spec.name}: cannot read {path}: {error.strerror}",
                         path=str(path), hint="check the path in the manifest") from error
    digest = hashlib.sha256(data).hexdigest()
    if spec.sha256 and spec.sha256.lower() != digest:
        raise ImageError(
            f"image {spec.name}: {path} has sha256 {digest}, but the manifest pins "
            f"{spec.sha256.lower()}", path=str(path),
            hint="the file is not the released one; rebuild it or update the pin "
                 "with `flashrunner pin`")
    fmt = detect_format(data) if spec.format == "auto" else spec.format
    try:
        memory = parse_image(data, fmt, str(path), spec.address)
    except ImageError as error:
        raise ImageError(f"image {spec.name}: {error.message}", path=error.path,
                         offset=error.offset, line=error.line, hint=error.hint) from error
    if spec.address is not None:
        # Raw content is already placed there; other formats move as a whole.
        memory = memory.shifted(spec.address - memory.start)
    return LoadedImage(name=spec.name, path=path, format=fmt, sha256=digest, memory=memory,
                       preserve=spec.preserve)


def merge_images(images: Iterable[LoadedImage]) -> MemoryMap:
    """One device's images in one map; an overlap names both images and the address."""
    images = tuple(images)
    try:
        return MemoryMap.merge((image.name, image.memory) for image in images)
    except OverlapError as error:
        raise ImageError(f"images {error.first} and {error.second} both write 0x"
                         f"{error.address:08X}",
                         hint="images of one device must not overlap; check their "
                              "addresses or link scripts") from error
