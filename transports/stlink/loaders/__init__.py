"""RAM flash loaders: Thumb code the ST-Link driver runs in the target's SRAM.

One image (``stm32_flash.s``, built with the GNU ARM assembler into the
checked-in ``stm32_flash.bin``) serves every flash-controller family: the
families differ only in data (status register, busy and error bits, program
unit), which each block carries in its header. See :mod:`.ram` for how the
host feeds it and what happens when it fails.
"""

from __future__ import annotations

from transports.stlink.loaders.image import IMAGE_NAME, LoaderImage, flash_loader
from transports.stlink.loaders.ram import LoaderError, LoaderSpan, RamLoader, loader_fits

__all__ = ["IMAGE_NAME", "LoaderError", "LoaderImage", "LoaderSpan", "RamLoader",
           "flash_loader", "loader_fits"]
