"""Cortex-M run control and STM32 identification through the ST-Link.

Halt, reset-and-halt and run use the debug registers (ARMv7-M C1.6, reference
§7); identification reads the DP IDCODE, CPUID, DBGMCU_IDCODE (address from
the chip database, else the CPUID rule of reference §8.2), the flash-size
register and the 96-bit UID, and the ROM table's JEP106 designer, which
together tell a genuine STM32 from a known clone (see :data:`CLONE_SIGNS`).
"""

from __future__ import annotations

from dataclasses import dataclass

from transports.chips import Chip
from transports.errors import ConnectError
from transports.stlink.protocol import MemoryFault, StLink

__all__ = ["CLONE_SIGNS", "Target", "TargetInfo", "idcode_address_for"]

CPUID, AIRCR, DFSR, DHCSR, DEMCR = 0xE000ED00, 0xE000ED0C, 0xE000ED30, 0xE000EDF0, 0xE000EDFC
DHCSR_KEY = 0xA05F0000
C_DEBUGEN, C_HALT = 0x1, 0x2
S_HALT, S_RESET_ST = 1 << 17, 1 << 25
ROM_PIDR4, ROM_PIDR1, ROM_PIDR2 = 0xE00FFFD0, 0xE00FFFE4, 0xE00FFFE8
ST_DESIGNER = 0x020  # JEP106 bank 0, code 0x20: STMicroelectronics

#: Genuine values per controller kind: DP IDCODEs, DBGMCU revisions seen on ST silicon.
#: RM0008 / ES0340 errata sheets list the F1 revisions: 0x0000 (A), 0x1000, 0x1001,
#: 0x1003 (low/high density, value and connectivity lines), 0x2000, 0x2001, 0x2003
#: (medium density B, Z, Y/1/2/X).
GENUINE = {
    "f1": ({0x1BA01477}, {0x0000, 0x1000, 0x1001, 0x1003, 0x2000, 0x2001, 0x2003}),
}

#: How known clones of STM32 parts give themselves away, reported with the identity.
#: Evidence: CKS32 — stlink-org/stlink PR #805 and OpenOCD "UNEXPECTED idcode"
#: reports; GD32 — revision 0x1303 in a Greaseweazle printout of a GD32F103 and
#: rusefi's libfirmware, own CPUID per blackmagic-debug #775; APM32 — told apart by
#: the ROM table's JEP106 designer in blackmagic-debug #1148/#1200.
CLONE_SIGNS = {
    "cks32": "DP IDCODE 0x2BA01477 on an F1 (genuine: 0x1BA01477)",
    "gd32": "DBGMCU revision 0x1303 or CPUID variant 2 on an F1",
    "apm32": "ROM table designer is not STMicroelectronics (JEP106 0x020)",
    "unknown-clone": "DP IDCODE or DBGMCU revision unknown for a genuine F1",
}

# Reference §8.2: where DBGMCU_IDCODE lives, by CPUID part number.
_IDCODE_BY_PART = {0xC20: 0x40015800, 0xC60: 0x40015800, 0xD21: 0xE0044000}


def idcode_address_for(cpuid: int, dp_idcode: int) -> int:
    part = (cpuid >> 4) & 0xFFF
    if part == 0xC27 and dp_idcode in (0x6BA02477, 0x6BA00477):
        return 0x5C001000  # H7
    return _IDCODE_BY_PART.get(part, 0xE0042000)


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetInfo:
    dp_idcode: int
    cpuid: int
    idcode: int
    flash_kib: int | None
    uid: bytes
    designer: int | None
    clone: str | None

    @property
    def dev_id(self) -> int:
        return self.idcode & 0xFFF

    @property
    def rev_id(self) -> int:
        return self.idcode >> 16

    @property
    def core_part(self) -> int:
        return (self.cpuid >> 4) & 0xFFF


class Target:
    """The halted Cortex-M behind the probe."""

    def __init__(self, link: StLink) -> None:
        self.link = link

    def halt(self) -> None:
        self.link.write_word(DHCSR, DHCSR_KEY | C_DEBUGEN | C_HALT)

    def is_halted(self) -> bool:
        return bool(self.link.read_word(DHCSR) & S_HALT)

    def run(self) -> None:
        self.link.write_word(DEMCR, 0)
        self.link.write_word(DHCSR, DHCSR_KEY | C_DEBUGEN)
        self.link.write_word(DHCSR, DHCSR_KEY)  # leave debug: the part runs on its own

    def reset(self, *, halt: bool) -> None:
        """Reference §7.4 soft reset: vector catch (if halting), AIRCR.SYSRESETREQ."""
        self.link.write_word(DHCSR, DHCSR_KEY | C_DEBUGEN | C_HALT)
        self.link.write_word(DEMCR, 0x01000501 if halt else 0x01000500)
        self.link.write_word(DFSR, 0x8)
        self.link.read_word(DHCSR)  # clears the sticky S_RESET_ST
        self.link.write_word(AIRCR, 0x05FA0004)
        deadline = self.link.timebase.monotonic() + 0.5
        while True:
            status = self.link.read_word(DHCSR)
            if not status & S_RESET_ST and (not halt or status & S_HALT):
                break
            if self.link.timebase.monotonic() > deadline:
                raise ConnectError("the target did not come out of reset within 500 ms",
                                   hint="check NRST and the target's power")
            self.link.timebase.sleep(0.001)
        self.link.write_word(DFSR, 0x1F)
        if not halt:
            self.run()

    def hardware_reset(self, *, halt: bool) -> None:
        """NRST pulse through the probe, then halt or run."""
        if halt:
            self.link.write_word(DHCSR, DHCSR_KEY | C_DEBUGEN | C_HALT)
            self.link.write_word(DEMCR, 0x01000501)
        self.link.drive_nrst(0)
        self.link.timebase.sleep(0.0001)  # RM0008: ≥ 20 µs
        self.link.drive_nrst(1)
        if not halt:
            self.run()

    def _designer(self) -> int | None:
        try:
            pidr4 = self.link.read_word(ROM_PIDR4)
            pidr1 = self.link.read_word(ROM_PIDR1)
            pidr2 = self.link.read_word(ROM_PIDR2)
        except MemoryFault:
            return None
        # JEP106: continuation code (PIDR4[3:0]) << 8 | identity (PIDR2[2:0], PIDR1[7:4])
        return ((pidr4 & 0xF) << 8) | ((pidr2 & 0x7) << 4) | ((pidr1 >> 4) & 0xF)

    def identify(self, chip: Chip) -> TargetInfo:
        dp = self.link.read_dp_idcode()
        cpuid = self.link.read_word(CPUID)
        address = chip.idcode_address or idcode_address_for(cpuid, dp)
        idcode = self.link.read_word(address)
        if idcode & 0xFFF == 0 and address != idcode_address_for(cpuid, dp):
            idcode = self.link.read_word(idcode_address_for(cpuid, dp))
        if idcode & 0xFFF == 0x411 and (cpuid >> 4) & 0xFFF == 0xC24:
            idcode = (idcode & ~0xFFF) | 0x413  # reference §8.2: F4 rev A errata
        flash_kib: int | None
        try:
            word = self.link.read_word(chip.flash_size_address & ~3)
            flash_kib = (word >> 16 if chip.flash_size_address & 2 else word) & 0xFFFF
        except MemoryFault:
            flash_kib = None
        uid = b"".join(self.link.read_word(chip.uid_address + off).to_bytes(4, "little")
                       for off in chip.uid_offsets)
        designer = self._designer()
        return TargetInfo(dp_idcode=dp, cpuid=cpuid, idcode=idcode, flash_kib=flash_kib,
                          uid=uid, designer=designer,
                          clone=detect_clone(chip, dp, cpuid, idcode, designer))


def detect_clone(chip: Chip, dp: int, cpuid: int, idcode: int, designer: int | None) -> \
        str | None:
    """Name the clone family a part belongs to, or None for a genuine-looking STM32."""
    if designer is not None and designer != ST_DESIGNER:
        return "apm32"
    if chip.controller in ("f0", "f1", "f1xl"):
        dps, revisions = GENUINE["f1"]
        f1 = chip.controller in ("f1", "f1xl")
        if f1 and dp == 0x2BA01477:
            return "cks32"
        if idcode >> 16 == 0x1303 or (f1 and (cpuid >> 20) & 0xF == 2):
            return "gd32"
        if f1 and (dp not in dps or idcode >> 16 not in revisions):
            return "unknown-clone"
    return None
