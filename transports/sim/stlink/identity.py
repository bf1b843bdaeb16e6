"""What simulated parts report on the debug port, genuine and clone.

Values for genuine parts are the ones the reference tables and public logs
show (DP IDCODE per core, CPUID, DBGMCU revision). Clone profiles differ the
way the evidence says they do:

* CKS32F103 (CS32F103): DP IDCODE 0x2BA01477 instead of the F1's 0x1BA01477
  (stlink-org/stlink PR #805; OpenOCD "UNEXPECTED idcode" reports on EEVblog).
* GD32F103: DBGMCU_IDCODE revision 0x1303 (a Greaseweazle test printout of a
  GD32F103CBT6; rusefi's libfirmware names it REAL_GD_F1_REV_CODE) and its own
  CPUID (blackmagic-debug #775); r2p1 is the model value here.
* APM32F103: same core IDs as the genuine part; it is told apart by the ROM
  table's JEP106 designer (blackmagic-debug #1148, #1200). The model reports
  ARM's designer code 0x43B where ST parts report 0x020. It also loses a
  flash write issued while BSY is set (embassy-rs: "While not waiting for the
  BSY flag to clear works on STM32F103C8T6, it does not on APM32F103C8T6").

Every clone profile drops writes during BSY: unknown silicon is modelled
pessimistically.
"""

from __future__ import annotations

from transports.chips import Chip
from transports.sim.stlink.target import CoreIdentity

__all__ = ["CLONES", "core_identity"]

#: core → (DP IDCODE, CPUID, MEM-AP auto-increment window)
_CORES: dict[str, tuple[int, int, int]] = {
    "cortex-m0": (0x0BB11477, 0x410CC200, 1024),
    "cortex-m0+": (0x0BC11477, 0x410CC601, 1024),
    "cortex-m3": (0x1BA01477, 0x411FC231, 4096),
    "cortex-m4": (0x2BA01477, 0x410FC241, 4096),
    "cortex-m7": (0x5BA02477, 0x411FC271, 4096),
    "cortex-m33": (0x0BE12477, 0x410FD214, 1024),
}

#: family-specific DP IDCODEs where the core's default does not hold
_DP_BY_CONTROLLER = {"h7": 0x6BA02477, "l4": 0x1BA01477, "f1": 0x1BA01477}
_REV_BY_CONTROLLER = {"f1": 0x2003, "f4": 0x1000, "l4": 0x1007, "g0": 0x2000, "h7": 0x2003}

CLONES = ("apm32", "gd32", "cks32")


def core_identity(chip: Chip, clone: str | None = None) -> CoreIdentity:
    """The identity a simulated ``chip`` reports (optionally as a clone of it)."""
    dp, cpuid, window = _CORES.get(chip.core, _CORES["cortex-m3"])
    dp = _DP_BY_CONTROLLER.get(chip.controller, dp)
    rev = _REV_BY_CONTROLLER.get(chip.controller, 0x1000)
    designer = 0x020
    if clone is not None and chip.controller not in ("f0", "f1"):
        raise ValueError(f"clone profiles model STM32F0/F1 look-alikes, not {chip.part}")
    if clone == "cks32":
        dp = 0x2BA01477
    elif clone == "gd32":
        cpuid, rev = 0x412FC231, 0x1303
    elif clone == "apm32":
        designer = 0x43B
    elif clone is not None:
        raise ValueError(f"unknown clone profile {clone!r}; use one of {', '.join(CLONES)}")
    return CoreIdentity(dp_idcode=dp, cpuid=cpuid, rev_id=rev, designer=designer,
                        tar_window=window)
