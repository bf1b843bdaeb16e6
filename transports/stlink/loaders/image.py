"""The shipped images (flash loader, CRC routine) and where their entry points are."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = ["CRC_IMAGE_NAME", "IMAGE_NAME", "CrcImage", "LoaderImage", "crc_routine",
           "flash_loader"]

IMAGE_NAME = "stm32_flash"
CRC_IMAGE_NAME = "stm32_crc"


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


@dataclass(frozen=True, slots=True, kw_only=True)
class CrcImage:
    """The read-only CRC routine: entry at its start, parameter block inside it."""

    name: str
    code: bytes

    @property
    def params(self) -> int:
        """Offset of the parameter block (the half-word at offset 2, see ``stm32_crc.s``)."""
        return int.from_bytes(self.code[2:4], "little")


@cache
def crc_routine() -> CrcImage:
    """The shipped CRC routine (``stm32_crc.bin``, built from ``stm32_crc.s``)."""
    code = resources.files("transports.stlink.loaders").joinpath(f"{CRC_IMAGE_NAME}.bin") \
        .read_bytes()
    return CrcImage(name=CRC_IMAGE_NAME, code=code)
