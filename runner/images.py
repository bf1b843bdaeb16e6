"""Firmware files → sparse memory maps.

:func:`load_image` reads an :class:`~runner.model.ImageSpec`'s file, checks its
pin, detects the format from content (or takes ``format:``), and returns a
:class:`LoadedImage`. Parsing of text formats is delegated to bincopy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from runner.errors import ImageError
from runner.memmap import MemoryMap, Segment
from runner.model import ImageSpec

__all__ = ["FORMATS", "LoadedImage", "detect_format", "file_sha256", "load_image"]

FORMATS = ("bin", "ihex", "srec", "elf", "dfu")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedImage:
    name: str
    path: Path
    format: str
    sha256: str
    memory: MemoryMap


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def detect_format(data: bytes) -> str:
    """Guess the format from the first bytes of the file."""
    if data.startswith(b"\x7fELF"):
        return "elf"
    if data.startswith(b"DfuSe"):
        return "dfu"
    head = data.lstrip()[:1]
    if head == b":":
        return "ihex"
    if head == b"S" and data.lstrip()[1:2].isdigit():
        return "srec"
    return "bin"


def load_image(spec: ImageSpec) -> LoadedImage:
    """Read and parse ``spec``'s file; raise :class:`ImageError` saying what is wrong."""
    path = spec.path
    try:
        data = path.read_bytes()
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
    memory = _parse(spec, path, data, fmt)
    if spec.address is not None and fmt != "bin" and memory:
        memory = memory.shifted(spec.address - memory.start)
    return LoadedImage(name=spec.name, path=path, format=fmt, sha256=digest, memory=memory)


def _parse(spec: ImageSpec, path: Path, data: bytes, fmt: str) -> MemoryMap:
    if fmt == "bin":
        if spec.address is None:
            raise ImageError(f"image {spec.name}: {path} is a raw binary and has no address",
                             path=str(path), hint="add `address:` to the image")
        if not data:
            raise ImageError(f"image {spec.name}: {path} is empty", path=str(path))
        return MemoryMap((Segment(spec.address, data),))
    if fmt in ("ihex", "srec"):
        import bincopy

        binfile = bincopy.BinFile()
        try:
            text = data.decode("ascii")
            if fmt == "ihex":
                binfile.add_ihex(text)
            else:
                binfile.add_srec(text)
        except (UnicodeDecodeError, bincopy.Error) as error:
            raise ImageError(f"image {spec.name}: {path} is not valid {fmt}: {error}",
                             path=str(path)) from error
        return MemoryMap.from_segments(
            Segment(segment.minimum_address, bytes(segment.data))
            for segment in binfile.segments)
    raise ImageError(f"image {spec.name}: format {fmt} is not supported yet", path=str(path),
                     hint="convert the file to Intel HEX or a raw binary")
