"""RAM flash loaders: Thumb code the ST-Link driver runs in the target's SRAM.

One image (``stm32_flash.s``, built with the GNU ARM assembler into the
checked-in ``stm32_flash.bin``) serves every flash-controller family: the
families differ only in data (status register, busy and error bits, program
unit), which each block carries in its header. See :mod:`.ram` for how the
host feeds it and what happens when it fails. A second, read-only image
(``stm32_crc.s``) computes CRCs for the register write path (:mod:`.crc`).
"""

from __future__ import annotations

from transports.stlink.loaders.crc import CrcRoutine, crc_routine_fits
from transports.stlink.loaders.image import (
    IMAGE_NAME,
    CrcImage,
    LoaderImage,
    crc_routine,
    flash_loader,
)
from transports.stlink.loaders.ram import LoaderSpan, RamLoader, loader_fits
from transports.stlink.loaders.run import LoaderError

__all__ = ["IMAGE_NAME", "CrcImage", "CrcRoutine", "LoaderError", "LoaderImage", "LoaderSpan",
           "RamLoader", "crc_routine", "crc_routine_fits", "flash_loader", "loader_fits"]
