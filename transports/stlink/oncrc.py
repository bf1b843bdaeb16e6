"""Which on-target CRC an ST-Link session compares with, or why it reads back.

Verify and skip-unchanged compare each erase unit by a CRC-32 computed on the
target (a few bytes on the wire instead of the unit's bytes):

* ``write-mode: loader`` (and ``auto`` where it takes the loader): the RAM flash
  loader's own CRC entry (:mod:`transports.stlink.loaders.ram`);
* ``write-mode: fast``, ``safe`` (the register path, and ``auto`` where it takes
  it): the read-only CRC routine (:mod:`transports.stlink.loaders.crc`).

Read-back instead when the link says ``on-target-crc: false``, connects with
``connect: hot-plug`` on the register path (the running program's SRAM and
registers are left alone), or the part's SRAM cannot hold the routine (a note in the device's
identity; the plan already says read-back), and, with a warning, whenever the CRC fails at run
time (its self-check at connect, a timeout, a fault, a result that cannot be
right).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from transports.chips import Chip
from transports.stlink.loaders import crc_routine_fits
from transports.stlink.writemode import loader_possible

__all__ = ["OnTargetCrc", "crc_planned", "crc_unavailable"]


class OnTargetCrc(Protocol):
    """Code in the target's SRAM that sums flash; raises LoaderError when it fails."""

    def crc32(self, address: int, length: int) -> int:
        """The STM32 CRC-32 of ``length`` bytes (a multiple of 4) at ``address``."""
        ...


def crc_unavailable(options: Mapping[str, Any], chip: Chip) -> str | None:
    """Why sessions with these options on ``chip`` compare by read-back; None: they do not."""
    if options.get("on-target-crc", True) is False:
        return "on-target-crc: false"
    if options.get("write-mode") == "loader":
        return None if loader_possible(chip) else "the RAM flash loader cannot be used"
    if options.get("connect") == "hot-plug":
        return "connect: hot-plug leaves the running program's SRAM alone"
    if not crc_routine_fits(chip):
        return (f"{chip.part}'s {chip.ram[1] - chip.ram[0]} bytes of SRAM cannot hold the "
                f"on-target CRC routine")
    return None


def crc_planned(options: Mapping[str, Any], chip: Chip) -> bool:
    """Whether a session is expected to compare by on-target CRC (no I/O)."""
    return crc_unavailable(options, chip) is None
