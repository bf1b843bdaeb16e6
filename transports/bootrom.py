"""What a chip's ROM bootloader offers on each interface: chip knowledge, not protocol.

The protocol version and the optional commands an STM32's system bootloader
lists in its Get reply follow from the part (AN2606 device table, AN3155 §1.11
USART versions, AN4221 §2.2 I2C versions, AN3154 for CAN). Two readers share
this one rule: the bootloader links, which plan their capabilities from it
(Get Checksum present or not), and the simulated ROM, which builds the Get
list it answers from it. Functions are named here, not command codes: each
side speaks the wire in its own module.

A ROM may still differ from this (a newer silicon revision, an older ROM
than the database records); the link then learns the truth from the Get
reply and the runner reports where the plan was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _usart_version(chip: Chip) -> int:
    # AN3155 §1.11: F1-class ROMs speak v2.2 (Erase 0x43), newer ones v3.1 (0x44).
    if chip.bootloader.usart_version is not None:
        return chip.bootloader.usart_version
    return 0x22 if chip.family == "f1" else 0x31


def _i2c_version(chip: Chip) -> int:
    # AN4221 §2.2: v1.0 on F0/F3, v1.2 on G0/H7 (Get Checksum listed), v1.1 elsewhere.
    if chip.family in ("f0", "f3"):
        return 0x10
    if chip.family in ("g0", "h7"):
        return 0x12
    return 0x11


def rom_version(chip: Chip, interface: str) -> int:
    """The protocol version byte ``chip``'s ROM answers on ``interface``."""
    if interface == "usart":
        return _usart_version(chip)
    if interface == "i2c":
        return _i2c_version(chip)
    if interface == "can":
        return 0x20  # AN3154: every CAN ROM in the database answers v2.0
    raise ValueError(f"no ROM bootloader protocol for interface {interface!r}")


def rom_bootloader(chip: Chip, interface: str, *, version: int | None = None) -> RomBootloader:
    """What ``chip``'s ROM offers on ``interface``; ``version`` overrides the database's."""
    if version is None:
        version = rom_version(chip, interface)
    if interface == "usart":
        # Get Checksum appears on the H7 USART ROM only (reference §1.5.13); F4/L4/G0
        # v3.1 ROMs list 11 commands without it.
        return RomBootloader(interface=interface, version=version,
                             extended_erase=version >= 0x30, no_stretch=False,
                             checksum=chip.family == "h7", speed=False)
    if interface == "i2c":
        return RomBootloader(interface=interface, version=version, extended_erase=True,
                             no_stretch=version >= 0x11, checksum=version >= 0x12,
                             speed=False)
    if interface == "can":
        # AN3154: CAN ROMs list Speed and the 1-byte-page Erase 0x43.
        return RomBootloader(interface=interface, version=version, extended_erase=False,
                             no_stretch=False, checksum=False, speed=True)
    raise ValueError(f"no ROM bootloader protocol for interface {interface!r}")
