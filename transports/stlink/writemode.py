"""Choosing the write path: block writes only where the part is known to take them.

The question is what a flash write issued while BSY is set does. Reference
manuals promise only that *reads* stall. On genuine STM32F103 the write waits
for the previous one (pystlink writes 1 KiB per command with no BSY polling);
on APM32F103 the second half-word is lost (embassy-rs: "While not waiting for
the BSY flag to clear works on STM32F103C8T6, it does not on APM32F103C8T6").
So ``auto`` streams blocks on genuine parts of the families below and polls
BSY per program unit on clones and on anything unknown; the manifest's
``write-mode`` overrides; the runner verifies by read-back either way.
"""

from __future__ import annotations

from transports.chips import Chip
from transports.stlink.target import TargetInfo

__all__ = ["FAST_CONTROLLERS", "choose_write_mode"]

#: Controller kinds whose genuine parts are taken to hold the bus while a program
#: operation is busy. Public evidence exists for the F1 (pystlink); the other
#: families share the AHB flash-interface design and are assumed to behave the
#: same — the read-back verify of every run checks that assumption. On H7 the
#: next flash word waits in the write queue (QW) by design. On L0/L1 "fast" means
#: half pages in one memory command (see :mod:`transports.stlink.flash.l0`).
FAST_CONTROLLERS = frozenset({"f0", "f1", "f1xl", "f2", "f4", "f7", "l4", "g0", "g4", "wb",
                              "wl", "c0", "h7", "h7ab", "h5", "l0", "l1", "l5", "u5"})


def choose_write_mode(requested: str, chip: Chip, info: TargetInfo) -> str:
    """``fast`` or ``safe`` for this part and the manifest's ``write-mode``."""
    if requested in ("fast", "safe"):
        return requested
    if info.clone is None and chip.controller in FAST_CONTROLLERS:
        return "fast"
    return "safe"
