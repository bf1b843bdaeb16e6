"""Choosing the write path: RAM loader, block writes, or one unit at a time.

Three paths exist (see :mod:`transports.stlink.flash.base`):

* ``loader`` — the RAM flash loader (:mod:`transports.stlink.loaders`) programs
  blocks the host streams into SRAM; it waits for BSY itself, so it is the
  fastest path and the only one for an F0/F1/F3 behind a probe without 16-bit
  memory access (ST-Link/V1, V2 before J26): that controller answers any write
  that is not a half-word with a bus error (PM0075 §2.3.3).
* ``fast`` — block writes from the host, relying on the flash interface
  holding the bus while a program operation is busy. On genuine STM32F103 the
  write waits for the previous one (pystlink writes 1 KiB per command with no
  BSY polling); on APM32F103 the second half-word is lost (embassy-rs: "While
  not waiting for the BSY flag to clear works on STM32F103C8T6, it does not on
  APM32F103C8T6").
* ``safe`` — one program unit per command, BSY polled in between.

``auto`` takes the loader where the probe cannot write the program unit
itself, and on genuine parts of the families in :data:`LOADER_PROVEN` (those
whose loader has been proven on silicon; the simulator proves the logic, not
the part). Otherwise it takes block writes on genuine parts and one unit at a
time on clones and unknown parts. Whenever the loader is chosen it must first
prove itself on the target at connect (it computes the CRC of its own image,
see :meth:`~transports.stlink.loaders.RamLoader.load`); if it does not,
``auto`` falls back to the register path where one exists. Where no path can
work the session refuses at connect, before anything is erased.
"""

from __future__ import annotations

from transports.chips import Chip
from transports.errors import ConnectError
from transports.stlink.loaders.ram import loader_fits
from transports.stlink.target import TargetInfo

__all__ = ["FAST_CONTROLLERS", "HALF_WORD_CONTROLLERS", "LOADER_CONTROLLERS", "LOADER_PROVEN",
           "WRITE_MODES",
           "choose_write_mode", "loader_possible"]

WRITE_MODES = ("auto", "loader", "fast", "safe")

#: Controller kinds whose genuine parts are taken to hold the bus while a program
#: operation is busy. Public evidence exists for the F1 (pystlink); the other
#: families share the AHB flash-interface design and are assumed to behave the
#: same — the read-back verify of every run checks that assumption. On H7 the
#: next flash word waits in the write queue (QW) by design. On L0/L1 "fast" means
#: half pages in one memory command (see :mod:`transports.stlink.flash.l0`).
FAST_CONTROLLERS = frozenset({"f0", "f1", "f1xl", "f2", "f4", "f7", "l4", "g0", "g4", "wb",
                              "wl", "c0", "h7", "h7ab", "h5", "l0", "l1", "l5", "u5"})
#: Controllers that take only half-word writes (PM0075 §2.3.3, RM0091 §3.2.2).
HALF_WORD_CONTROLLERS = frozenset({"f0", "f1", "f1xl"})
#: Controller kinds the RAM loader programs (every driver describes its spans).
LOADER_CONTROLLERS = FAST_CONTROLLERS
#: Controller kinds on whose genuine parts ``auto`` prefers the loader. Empty until
#: a family's loader has run on real silicon; ``write-mode: loader`` opts in.
LOADER_PROVEN: frozenset[str] = frozenset()


def loader_possible(chip: Chip, voltage: float | None = None) -> bool:
    """Whether the RAM loader can program ``chip`` (family, SRAM size, PSIZE)."""
    if chip.controller not in LOADER_CONTROLLERS or not loader_fits(chip):
        return False
    # RM0090 §3.6.2: below 2.7 V F2/F4/F7 program bytes (PSIZE x8); the loader stores words.
    return not (chip.controller in ("f2", "f4", "f7") and voltage is not None and voltage < 2.7)


def register_path_possible(chip: Chip, half_word_writes: bool) -> bool:
    """Whether the host can write the program unit itself through this probe."""
    return half_word_writes or chip.controller not in HALF_WORD_CONTROLLERS


def choose_write_mode(requested: str, chip: Chip, info: TargetInfo, *, half_word_writes: bool,
                      voltage: float | None = None) -> str:
    """``loader``, ``fast`` or ``safe`` for this part, probe and ``write-mode``.

    Raises :class:`ConnectError` when the requested path, or every path,
    cannot work with this probe and part.
    """
    registers = register_path_possible(chip, half_word_writes)
    loader = loader_possible(chip, voltage)
    if requested == "loader" and not loader:
        raise ConnectError(f"the RAM flash loader cannot program {chip.part}: "
                           f"{_why_no_loader(chip, voltage)}",
                           hint="use write-mode: auto, fast or safe")
    if requested in ("fast", "safe") and not registers:
        raise ConnectError(f"this ST-Link cannot write half-words, and {chip.part}'s flash "
                           f"takes nothing else, so write-mode: {requested} cannot work",
                           hint="use write-mode: loader (or auto), or update the probe "
                                "(V2 J26 or later)")
    if requested != "auto":
        return requested
    if loader and (not registers or (info.clone is None
                                     and chip.controller in LOADER_PROVEN)):
        return "loader"
    if not registers:
        raise ConnectError(f"nothing can write {chip.part}'s flash through this ST-Link: it "
                           f"has no half-word writes and the RAM flash loader cannot be used "
                           f"({_why_no_loader(chip, voltage)})",
                           hint="update the probe (V2 J26 or later) or use the system "
                                "bootloader")
    if info.clone is None and chip.controller in FAST_CONTROLLERS:
        return "fast"
    return "safe"


def fallback_mode(chip: Chip, info: TargetInfo, *, half_word_writes: bool) -> str | None:
    """The register path to take when the loader fails its check at connect; None: none."""
    if not register_path_possible(chip, half_word_writes):
        return None
    return "fast" if info.clone is None and chip.controller in FAST_CONTROLLERS else "safe"


def _why_no_loader(chip: Chip, voltage: float | None) -> str:
    if chip.controller not in LOADER_CONTROLLERS:
        return f"there is no loader for {chip.controller} flash controllers"
    if not loader_fits(chip):
        return f"its {(chip.ram[1] - chip.ram[0]) // 1024} KiB of SRAM is too small"
    return f"at {voltage:.2f} V the flash is programmed by bytes (PSIZE x8)"
