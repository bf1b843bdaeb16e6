"""Confirming the chip behind a ROM DFU device before anything is written.

The ROM does not report its DEV_ID in-band. What it does show, and what we
check against the chip the manifest names:

* the product string, which names the DEV_ID on some ROMs
  ("STM32 0x418 DFU Bootloader");
* the Internal Flash layout string, whose sectors must match the chip
  database's flash geometry (a ROM describes its die; a part with less flash
  sees a prefix of it);
* where readout protection allows, the UID and flash-size registers read by
  DfuSe upload (the serial string carries only 48 bits of the UID).
"""

from __future__ import annotations

import re
import struct

from transports.chips import Chip
from transports.dfu.layout import MemoryLayout
from transports.dfu.usb import LinkNames
from transports.errors import ChipMismatch

__all__ = ["check_flash_layout", "check_product", "product_dev_id", "rom_serial"]

_DEV_ID_IN_PRODUCT = re.compile(r"\b0x([0-9A-Fa-f]{3})\b")


def product_dev_id(product: str) -> int | None:
    """The DEV_ID some ROMs put in their product string, when they do."""
    match = _DEV_ID_IN_PRODUCT.search(product)
    return int(match.group(1), 16) if match else None


def rom_serial(uid: bytes) -> str:
    """The serial ST's USB device code derives from the UID (only 48 of its 96 bits)."""
    w0, w1, w2 = struct.unpack("<III", uid)
    return f"{(w0 + w2) & 0xFFFFFFFF:08X}{w1 >> 16:04X}"


def _mismatch(message: str, names: LinkNames) -> ChipMismatch:
    return ChipMismatch(message, transport=names.link, device=names.device,
                        hint="this is not the chip the manifest names: check which board is "
                             "plugged into this port (set port-path or uid on the link)")


def check_product(product: str, chip: Chip, names: LinkNames) -> None:
    found = product_dev_id(product)
    if found is not None and found != chip.dev_id:
        raise _mismatch(f"the DFU device of {names.device} is a DEV_ID 0x{found:03X} chip "
                        f"({product!r}), not {chip.part} (0x{chip.dev_id:03X})", names)


def check_flash_layout(layout: MemoryLayout, chip: Chip, names: LinkNames) -> None:
    """Every erase unit of ``chip`` must be a sector of the ROM's flash layout."""
    sectors = {(s.address, s.size) for s in layout.sectors}
    for block in chip.flash.blocks:
        if (block.address, block.size) not in sectors:
            raise _mismatch(
                f"the DFU device of {names.device} describes its flash as {layout.text!r}, "
                f"which has no {block.size // 1024} KiB erase unit at 0x{block.address:08X} "
                f"as {chip.part} has", names)


def check_registers(*, uid: bytes | None, flash_kib: int | None, expected_uid: str | None,
                    chip: Chip, names: LinkNames, unreadable: str | None = None) -> None:
    """The UID (when the link pins one) and the flash-size register must agree.

    ``unreadable`` says why the UID could not be read, when it could not.
    """
    if flash_kib is not None and flash_kib != chip.flash_kib:
        raise _mismatch(f"{names.device} reports {flash_kib} KiB of flash; {chip.part} has "
                        f"{chip.flash_kib} KiB", names)
    if expected_uid is None:
        return
    if uid is None:
        why = unreadable or "readout protection hides it"
        raise _mismatch(f"cannot confirm the UID of {names.device}: {why}; the link pins uid "
                        f"{expected_uid.lower()}, so nothing is written (remove uid: from the "
                        f"link and pick the board by serial or port-path instead)", names)
    if uid.hex().lower() != expected_uid.lower():
        raise _mismatch(f"{names.device} has UID {uid.hex()}, the link expects "
                        f"{expected_uid.lower()}", names)
