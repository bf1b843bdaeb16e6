"""What a chip's ROM bootloader offers on each interface, read from the chip data.

The protocol version each family's ROM answers on USART, I2C and CAN is chip
data (the ``rom`` entry of each family file, a line's ``usart-version``
winning); which optional commands a version lists is the application notes'
rule and lives here (AN3155 §1.11: Extended Erase from v3.0; AN4221 §2.2: the
I2C no-stretch commands from v1.1, Get Checksum from v1.2; AN3154: CAN ROMs
list Speed). Two readers share this one function: the bootloader links, which
plan their capabilities from it (Get Checksum present or not), and the
simulated ROM, which builds the Get list it answers from it. Functions are
named here, not command codes: each side speaks the wire in its own module.

A ROM may still differ from this (a newer silicon revision, an older ROM
than the database records); the link then learns the truth from the Get
reply and the runner reports where the plan was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transports.chips import Chip

__all__ = ["INTERFACES", "RomBootloader", "rom_bootloader", "rom_version"]

#: The serial interfaces whose protocol this describes (AN2606 names).
INTERFACES = ("usart", "i2c", "can")


@dataclass(frozen=True, slots=True, kw_only=True)
class RomBootloader:
    """The commands one chip's ROM lists on one interface, by function."""

    interface: str
    version: int
    #: Extended Erase (2-byte page numbers) instead of the legacy Erase (USART ≥ v3.0).
    extended_erase: bool
    #: The I2C no-stretch variants of Write, Erase and the protection commands (≥ v1.1).
    no_stretch: bool
    #: Get Checksum (CRC over a memory area) — on-target verification.
    checksum: bool
    #: CAN's Speed command (AN3154 §3.4).
    speed: bool


def rom_version(chip: Chip, interface: str) -> int:
    """The protocol version byte ``chip``'s ROM answers on ``interface``."""
    if interface not in INTERFACES:
        raise ValueError(f"no ROM bootloader protocol for interface {interface!r}")
    return chip.bootloader.rom_versions[interface]


def rom_bootloader(chip: Chip, interface: str, *, version: int | None = None) -> RomBootloader:
    """What ``chip``'s ROM offers on ``interface``; ``version`` overrides the database's."""
    if version is None:
        version = rom_version(chip, interface)
    if interface == "usart":
        return RomBootloader(interface=interface, version=version,
                             extended_erase=version >= 0x30, no_stretch=False,
                             checksum=chip.bootloader.usart_checksum, speed=False)
    if interface == "i2c":
        return RomBootloader(interface=interface, version=version, extended_erase=True,
                             no_stretch=version >= 0x11, checksum=version >= 0x12,
                             speed=False)
    if interface == "can":
        # AN3154: CAN ROMs list Speed and the 1-byte-page Erase 0x43.
        return RomBootloader(interface=interface, version=version, extended_erase=False,
                             no_stretch=False, checksum=False, speed=True)
    raise ValueError(f"no ROM bootloader protocol for interface {interface!r}")
