"""The debug port and the AHB-AP behind a simulated ST-Link, for READ/WRITE_DAP_REG.

Hosts that drive the ADI registers themselves (pyOCD) reach the target through
the ST-Link's READ_DAP_REG / WRITE_DAP_REG (F2 45 / F2 46, V2 J24 on): port
0xFFFF is the DP, any other port the AP of that number. ADIv5 (IHI 0031)
§2.3 and §7: DP registers DPIDR/ABORT (0x0), CTRL/STAT (0x4, power-up
requests acknowledged at once), SELECT (0x8), RDBUFF (0xC), and on DPv2 the
banked TARGETID (0x24) and DLPIDR (0x34); MEM-AP registers CSW (0x00), TAR
(0x04), DRW (0x0C), BD0..3 (0x10..0x1C), CFG (0xF4), BASE (0xF8, the ROM
table) and IDR (0xFC). AP 0 is the core's AHB-AP; other APs read IDR 0 (none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transports.sim.stlink.target import SimSwdTarget

__all__ = ["SimDebugPort"]

CSYSPWRUPREQ, CDBGPWRUPREQ = 1 << 30, 1 << 28
#: IDR of the core's AHB-AP (ARM's JEP106 0x43B; class MEM-AP; variant per core).
AP_IDR = {"cortex-m0": 0x04770021, "cortex-m0+": 0x04770031, "cortex-m3": 0x24770011,
          "cortex-m4": 0x24770011, "cortex-m7": 0x74770001, "cortex-m33": 0x04770015}
ROM_BASE = 0xE00FF003  # ROM table at 0xE00FF000, ADIv5 format, present
CSW_RESET = 0x23000052  # DbgSwEnable-style prot bits, DeviceEn, single increment, word
_SIZES = {0: 1, 1: 2, 2: 4}


class SimDebugPort:
    """DP and AP register state of one target."""

    def __init__(self, target: SimSwdTarget) -> None:
        self.target = target
        self.ctrl_stat = 0
        self.select = 0
        self.csw = CSW_RESET
        self.tar = 0
        self.rdbuff = 0

    # -- the DP -----------------------------------------------------------------------

    def read_dp(self, address: int) -> int:
        identity = self.target.identity
        if address == 0x0:
            return identity.dp_idcode
        if address == 0x4:
            acks = (self.ctrl_stat & (CSYSPWRUPREQ | CDBGPWRUPREQ)) << 1
            return self.ctrl_stat | acks
        if address == 0x8:
            return 0  # RESEND
        if address == 0xC:
            return self.rdbuff
        if (identity.dp_idcode >> 12) & 0xF >= 2:  # DPv2 banked registers (ADIv5.2)
            if address == 0x24:  # TARGETID: revision, part (dev_id), designer ST (0x020)
                chip = self.target.chip
                return (identity.rev_id >> 12 & 0xF) << 28 | chip.dev_id << 12 | 0x020 << 1 | 1
            if address == 0x34:
                return 0x00000001  # DLPIDR: SWD protocol version 1, instance 0
        return 0

    def write_dp(self, address: int, value: int) -> None:
        if address == 0x4:
            self.ctrl_stat = value & 0xF0000F00
        elif address == 0x8:
            self.select = value
        # 0x0 ABORT: sticky flags are not kept, nothing to clear

    # -- the APs ---------------------------------------------------------------------

    def read_ap(self, ap: int, address: int) -> int:
        if ap != 0:
            return 0  # no such AP: IDR reads zero
        if address == 0x00:
            return self.csw
        if address == 0x04:
            return self.tar
        if address == 0x0C:
            value = self._transfer(self.tar, None)
            self._increment()
            self.rdbuff = value
            return value
        if 0x10 <= address <= 0x1C:
            return self._transfer((self.tar & ~0xF) + (address - 0x10), None, size=4)
        if address == 0xF4:
            return 0  # CFG: little-endian, 32-bit addresses
        if address == 0xF8:
            return ROM_BASE
        if address == 0xFC:
            return AP_IDR.get(self.target.chip.core, AP_IDR["cortex-m3"])
        return 0

    def write_ap(self, ap: int, address: int, value: int) -> None:
        if ap != 0:
            return
        if address == 0x00:
            self.csw = (self.csw & ~0x3F) | (value & 0x37)
        elif address == 0x04:
            self.tar = value & 0xFFFFFFFF
        elif address == 0x0C:
            self._transfer(self.tar, value)
            self._increment()
        elif 0x10 <= address <= 0x1C:
            self._transfer((self.tar & ~0xF) + (address - 0x10), value, size=4)

    def _transfer(self, address: int, value: int | None, *, size: int | None = None) -> int:
        """One MEM-AP access at ``address``; byte lanes as ADIv5 §7.2.3 places them."""
        width = size or _SIZES.get(self.csw & 0x7, 4)
        aligned = address & ~(width - 1)
        lane = (aligned & 3) * 8
        if value is None:
            data = self.target.read(aligned, width, width)
            return int.from_bytes(data, "little") << lane
        chunk = ((value >> lane) & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        self.target.write(aligned, chunk, width)
        return 0

    def _increment(self) -> None:
        if (self.csw >> 4) & 0x3 != 1:
            return
        window = self.target.identity.tar_window
        step = _SIZES.get(self.csw & 0x7, 4)
        base = self.tar - self.tar % window
        self.tar = base + (self.tar + step) % window  # TAR wraps inside its window

