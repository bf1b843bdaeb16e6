"""``flashrunner dfu-pack``: any supported images → one DfuSe file.

Each argument is ``PATH`` or ``PATH@ADDRESS`` (an address is needed for raw
binaries and moves other formats as a whole). The images are merged (an
overlap is an error naming both) into one target for alternate setting 0,
one element per contiguous segment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.dfufile import ANY, DfuTarget, write_dfuse
from runner.errors import ImageError
from runner.images import LoadedImage, load_image, merge_images
from runner.model import ImageSpec

__all__ = ["PackResult", "pack_dfu", "parse_image_argument"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PackResult:
    path: Path
    images: tuple[LoadedImage, ...]
    elements: int
    size: int


def parse_image_argument(argument: str) -> ImageSpec:
    """``build/app.bin@0x08004000`` → an image spec (the name is the file's stem)."""
    path_text, _, address_text = argument.rpartition("@") if "@" in argument \
        else (argument, "", "")
    address: int | None = None
    if address_text:
        try:
            address = int(address_text, 0)
        except ValueError as error:
            raise ImageError(f"{argument}: {address_text!r} is not an address",
                             path=path_text, hint="write e.g. app.bin@0x08004000") from error
    path = Path(path_text)
    return ImageSpec(name=path.stem, path=path, address=address)


def pack_dfu(out: Path, images: Sequence[str], *, vendor: int = ANY, product: int = ANY,
             device: int = ANY, alt: int = 0, name: str = "Internal Flash") -> PackResult:
    """Load ``images``, merge them, write ``out``; raise :class:`ImageError` on any fault."""
    loaded = tuple(load_image(parse_image_argument(argument)) for argument in images)
    memory = merge_images(loaded)
    data = write_dfuse((DfuTarget(alt=alt, name=name, elements=memory.segments),),
                       vendor=vendor, product=product, device=device)
    try:
        out.write_bytes(data)
    except OSError as error:
        raise ImageError(f"cannot write {out}: {error.strerror}", path=str(out),
                         hint="check the folder exists and is writable") from error
    return PackResult(path=out, images=loaded, elements=len(memory.segments), size=len(data))
