"""ST-Link/V1: the same command blocks inside USB mass-storage Bulk-Only Transport.

USB MSC BOT 1.0 §5: the host sends a 31-byte CBW ("USBC", tag, data length,
flags, LUN, CB length, 16-byte CB) on the OUT endpoint, then the data phase
(OUT payload or IN reply), then reads a 13-byte CSW ("USBS", tag, residue,
status). The ST-Link command block travels in the CB field. The kernel's
usb-storage driver claims interface 0 until the host detaches it.
"""

from __future__ import annotations

import struct
from collections import deque

from transports.sim.stlink.probe import PROBE_MODELS, SimStLinkProbe
from transports.sim.stlink.target import SimSwdTarget
from transports.sim.usb import UsbStall, UsbTimeout

__all__ = ["SimStLinkV1"]

CBW_SIGNATURE = 0x43425355
CSW_SIGNATURE = 0x53425355


class SimStLinkV1(SimStLinkProbe):
    def __init__(self, target: SimSwdTarget | None, *, serial: str,
                 port_numbers: tuple[int, ...] = (1,), target_voltage: float = 3.3) -> None:
        super().__init__(PROBE_MODELS["v1"], target, serial=serial, port_numbers=port_numbers,
                         target_voltage=target_voltage)
        self.kernel_driver.add(0)  # usb-storage has it until detached
        self.pending_in: deque[bytes] = deque()
        self.data_out: tuple[int, int] | None = None  # (tag, length) awaiting payload

    def reenumerate(self) -> None:
        super().reenumerate()
        self.pending_in.clear()
        self.data_out = None
        self.kernel_driver.add(0)  # usb-storage binds again on re-enumeration

    def _csw(self, tag: int, status: int = 0, residue: int = 0) -> bytes:
        return struct.pack("<IIIB", CSW_SIGNATURE, tag, residue, status)

    def bulk_out(self, endpoint: int, data: bytes) -> None:
        self._charge(len(data))
        if endpoint != self.model.out_ep:
            raise UsbStall
        if self.data_out is not None:
            tag, length = self.data_out
            self.data_out = None
            if self.expect_payload is not None:
                _, handler = self.expect_payload
                self.expect_payload = None
                handler(data[:length])
            self.pending_in.append(self._csw(tag))
            return
        if len(data) != 31:
            raise UsbStall
        signature, tag, length, flags, _lun, _cb_length = struct.unpack_from("<IIIBBB", data)
        if signature != CBW_SIGNATURE:
            raise UsbStall
        block = data[15:31]
        reply = self.execute(block)
        if self.expect_payload is not None:
            self.data_out = (tag, length or self.expect_payload[0])
            return
        if flags & 0x80 and length:
            self.pending_in.append(reply[:length].ljust(length, b"\0"))
        self.pending_in.append(self._csw(tag))

    def bulk_in(self, endpoint: int, length: int) -> bytes:
        if endpoint != 0x81:
            raise UsbStall
        if not self.pending_in:
            raise UsbTimeout
        chunk = self.pending_in.popleft()
        self._charge(len(chunk))
        return chunk
