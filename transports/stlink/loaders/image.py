"""The shipped loader image and where its entry points are."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["IMAGE_NAME", "LoaderImage", "flash_loader"]

IMAGE_NAME = "stm32_flash"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoaderImage:
    """A position-independent loader: its bytes and the offsets of its entry points."""

    name: str
    code: bytes
    program_entry: int = 0
    crc_entry: int = 2
    #: bytes of the block header the program entry reads before the data
    header: int = 24


@cache
def flash_loader() -> LoaderImage:
    """The shipped loader image (``stm32_flash.bin``, built from ``stm32_flash.s``)."""
    code = resources.files("transports.stlink.loaders").joinpath(f"{IMAGE_NAME}.bin") \
        .read_bytes()
    return LoaderImage(name=IMAGE_NAME, code=code)
