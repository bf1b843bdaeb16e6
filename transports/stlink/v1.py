"""ST-Link/V1: commands inside USB mass-storage Bulk-Only Transport, over pyusb.

USB MSC BOT 1.0 §5.1/§5.2 and reference §6: each command is a 31-byte CBW
(signature "USBC", tag, data length, direction flag, LUN 0, CB length, the
16-byte ST-Link block as the CB), then the data phase, then a 13-byte CSW
(signature "USBS", the same tag, residue, status). The kernel's usb-storage
driver is detached from interface 0 by :class:`~transports.stlink.usb.UsbPipe`
— no SCSI generic ioctls are involved.
"""

from __future__ import annotations

import struct

from transports.errors import ProtocolError, Refused
from transports.stlink.usb import UsbPipe

__all__ = ["BotFraming"]

CBW_SIGNATURE = 0x43425355  # "USBC"
CSW_SIGNATURE = 0x53425355  # "USBS"
CSW_LENGTH = 13
DIRECTION_IN = 0x80


class BotFraming:
    """Carries ST-Link blocks in CBW/CSW pairs."""

    def __init__(self, pipe: UsbPipe) -> None:
        self.pipe = pipe
        self.tag = 0

    @property
    def packet(self) -> int:
        return self.pipe.packet

    def exchange(self, block: bytes, *, data_out: bytes = b"", reply: int = 0) -> bytes:
        self.tag = (self.tag + 1) & 0xFFFFFFFF
        length = len(data_out) if data_out else reply
        flags = DIRECTION_IN if reply else 0
        cbw = struct.pack("<IIIBBB", CBW_SIGNATURE, self.tag, length, flags, 0, 10) \
            + block.ljust(16, b"\0")
        self.pipe.write(cbw)
        data = b""
        if data_out:
            self.pipe.write(data_out)
        elif reply:
            data = self.pipe.read(reply)[:reply]
        csw = self.pipe.read(CSW_LENGTH)
        signature, tag, _residue, status = struct.unpack_from("<IIIB", csw)
        if signature != CSW_SIGNATURE or tag != self.tag:
            raise ProtocolError("ST-Link/V1 answered with a malformed CSW", command="BOT",
                                reply=bytes(csw),
                                hint="replug the probe; a V1 cannot recover from this")
        if status != 0:
            raise Refused(f"ST-Link/V1 rejected command 0x{block[0]:02X} "
                          f"(CSW status {status})", command="BOT", reply=bytes(csw))
        return data

    def close(self) -> None:
        self.pipe.close()
