"""The ST-Link command protocol (API v2/v3), generic over how blocks travel.

A :class:`Framing` moves one 16-byte command block, an optional OUT data
phase and an optional reply (V2/V3: plain bulk transfers; V1: Bulk-Only
Transport, :mod:`transports.stlink.v1`). :class:`StLink` builds the blocks,
checks status bytes through the one table :data:`STATUS`, retries WAIT with
back-off, and splits memory transfers by width, alignment, the firmware's
limits and the MEM-AP auto-increment window.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from transports.endpoints import Clock
from transports.errors import BusFault, ConnectError, ProtocolError, Refused, TransportError
from transports.trace import NO_TRACE, Trace

__all__ = ["STATUS", "Framing", "MemoryFault", "ProbeVersion", "StLink", "Timebase",
           "parse_version"]

# Reference §4.1/§4.3 command bytes
GET_VERSION, DEBUG, DFU, SWIM, GET_CURRENT_MODE, GET_TARGET_VOLTAGE, GET_VERSION_EX = (
    0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF7, 0xFB)
DFU_EXIT, SWIM_EXIT = 0x07, 0x01
D_EXIT, D_ENTER, D_READ_IDCODES, D_RESETSYS = 0x21, 0x30, 0x31, 0x32
D_WRITE_DEBUGREG, D_READ_DEBUGREG, D_LASTRW, D_DRIVE_NRST, D_LASTRW2 = (
    0x35, 0x36, 0x3B, 0x3C, 0x3E)
D_SWD_SET_FREQ, D_SET_COM_FREQ, D_GET_COM_FREQ = 0x43, 0x61, 0x62
READ_MEM = {4: 0x07, 2: 0x47, 1: 0x0C}
WRITE_MEM = {4: 0x08, 2: 0x48, 1: 0x0D}
ENTER_SWD = 0xA3
MODE_DFU, MODE_MASS, MODE_DEBUG, MODE_SWIM = 0, 1, 2, 3
SWD_DIVISORS = ((4000, 0), (1800, 1), (1200, 2), (950, 3), (480, 7), (240, 15), (125, 31),
                (100, 40), (50, 79), (25, 158), (15, 265), (5, 798))
MAX_MEMORY_BLOCK = 6144  # reference §4.8: the firmware's buffer


@dataclass(frozen=True, slots=True)
class StatusInfo:
    kind: str  # ok | wait | fault (memory access) | bus (SWD/AP) | connect | error
    text: str


#: Reference §4.7: every status byte, what it means and how it is handled.
STATUS: dict[int, StatusInfo] = {
    0x80: StatusInfo("ok", "ok"),
    0x81: StatusInfo("fault", "fault"),
    0x01: StatusInfo("fault", "memory access failed"),
    0x02: StatusInfo("error", "SPI error"),
    0x03: StatusInfo("error", "DMA error"),
    0x04: StatusInfo("connect", "unknown JTAG chain"),
    0x05: StatusInfo("connect", "no device connected"),
    0x06: StatusInfo("error", "probe internal error"),
    0x07: StatusInfo("error", "command wait"),
    0x08: StatusInfo("error", "command error"),
    0x09: StatusInfo("connect", "cannot read the target's IDCODE"),
    0x0A: StatusInfo("error", "alignment error"),
    0x0B: StatusInfo("connect", "debug power-up failed"),
    0x0C: StatusInfo("error", "write error"),
    0x0D: StatusInfo("error", "write verification error"),
    0x0E: StatusInfo("connect", "probe already opened in another mode"),
    0x10: StatusInfo("wait", "SWD AP wait"),
    0x11: StatusInfo("fault", "SWD AP fault"),
    0x12: StatusInfo("bus", "SWD AP error"),
    0x13: StatusInfo("bus", "SWD AP parity error"),
    0x14: StatusInfo("wait", "SWD DP wait"),
    0x15: StatusInfo("fault", "SWD DP fault"),
    0x16: StatusInfo("bus", "SWD DP error"),
    0x17: StatusInfo("bus", "SWD DP parity error"),
    0x18: StatusInfo("fault", "AP WDATA error"),
    0x19: StatusInfo("fault", "AP sticky error"),
    0x1A: StatusInfo("bus", "AP sticky overrun"),
    0x1D: StatusInfo("bus", "bad AP"),
    0x20: StatusInfo("error", "SWV not available"),
    0x40: StatusInfo("ok", "configuration changed"),
    0x41: StatusInfo("error", "frequency not supported"),
    0x42: StatusInfo("error", "unknown command"),
}


class MemoryFault(BusFault):
    """A memory access faulted on the target's bus (AP/DP fault); ``address`` is where."""

    def __init__(self, message: str, *, address: int, command: str,
                 reply: bytes | None = None) -> None:
        super().__init__(message, command=command, reply=reply,
                         hint="the address is not mapped, or readout protection blocks it")
        self.address = address


class Framing(Protocol):
    """How one command block and its phases travel over USB."""

    @property
    def packet(self) -> int: ...

    def exchange(self, block: bytes, *, data_out: bytes = b"", reply: int = 0) -> bytes: ...

    def close(self) -> None: ...


#: Time as the link sees it: the session's clock from the endpoint provider.
Timebase = Clock


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeVersion:
    """GET_VERSION(_EX) decoded (reference §3)."""

    hardware: int
    jtag: int
    swim: int = 0
    msc: int = 0
    bridge: int = 0
    vid: int = 0x0483
    pid: int = 0

    @property
    def api(self) -> int:
        if self.hardware >= 3:
            return 3
        if self.hardware == 1 and self.jtag < 11:  # OpenOCD: J < 11 → API v1
            return 1
        return 2

    def has(self, feature: str) -> bool:
        """Reference §3.4 feature gates."""
        need = FEATURE_GATES[feature]
        if self.hardware < 2 and feature in V2_ONLY:
            return False  # reference §6.4: V1 has no voltage reading, clock or NRST
        minimum = need[1] if self.hardware >= 3 else need[0]
        return minimum is not None and self.jtag >= minimum

    def __str__(self) -> str:
        if self.hardware >= 3:
            parts = [f"V{self.hardware}J{self.jtag}", f"M{self.msc}" if self.msc else "",
                     f"B{self.bridge}" if self.bridge else "", f"S{self.swim}" if self.swim else ""]
            return "".join(parts)
        second = f"M{self.msc}" if self.msc else (f"S{self.swim}" if self.swim else "")
        return f"V{self.hardware}J{self.jtag}{second}"


#: feature → (minimum J on V1/V2, minimum J on V3; None = not available)
FEATURE_GATES: dict[str, tuple[int | None, int | None]] = {
    "target-voltage": (13, 0),
    "nrst": (0, 0),
    "rw-status2": (15, 0),
    "swd-set-freq": (22, None),
    "com-freq": (None, 0),
    "dap-registers": (24, 0),
    "mem-16bit": (26, 0),
    "init-ap": (28, 0),
    "csw-honoured": (32, 2),
    "mem-8bit-512": (None, 6),
}


V2_ONLY = frozenset({"target-voltage", "swd-set-freq", "nrst"})


def parse_version(reply: bytes, reply_ex: bytes | None, pid: int, generation: str) -> \
        ProbeVersion:
    """Decode GET_VERSION (6 bytes, big-endian word) and, on V3, GET_VERSION_EX."""
    word = struct.unpack(">H", reply[:2])[0]
    hardware, jtag, low = word >> 12, (word >> 6) & 0x3F, word & 0x3F
    if hardware >= 3 and reply_ex is not None:
        return ProbeVersion(hardware=reply_ex[0], swim=reply_ex[1], jtag=reply_ex[2],
                            msc=reply_ex[3], bridge=reply_ex[4],
                            vid=struct.unpack_from("<H", reply_ex, 8)[0],
                            pid=struct.unpack_from("<H", reply_ex, 10)[0])
    vid, pid_reply = struct.unpack_from("<HH", reply, 2)
    if generation == "v2-1":
        return ProbeVersion(hardware=hardware, jtag=jtag, msc=low, vid=vid, pid=pid_reply)
    return ProbeVersion(hardware=hardware, jtag=jtag, swim=low, vid=vid, pid=pid_reply)


def _block(*parts: bytes) -> bytes:
    return b"".join(parts).ljust(16, b"\0")


def _reply_text(name: str, answer: bytes, *, status: bool, sent: bytes) -> str:
    """A reply as a trace line says it: the status by name, else what came back."""
    if status or name.startswith("GETLASTRWSTATUS"):
        if not answer:
            return "empty reply"
        info = STATUS.get(answer[0], StatusInfo("error", f"status 0x{answer[0]:02X}"))
        return "OK" if info.kind == "ok" else f"{info.text} (0x{answer[0]:02X})"
    if sent:
        return "sent"
    return f"{len(answer)} B" if answer else "done"


class StLink:
    """One probe's command set. Raises :mod:`transports.errors` classes only."""

    def __init__(self, framing: Framing, timebase: Timebase, *, pid: int, generation: str,
                 wait_retries: int = 8, trace: Trace = NO_TRACE) -> None:
        self.framing = framing
        #: Each command and its status (``-v``).
        self.trace = trace
        self.timebase = timebase
        self.pid = pid
        self.generation = generation
        self.wait_retries = wait_retries
        self.version = ProbeVersion(hardware=0, jtag=0)
        #: MEM-AP auto-increment window; widened once the core is known.
        self.window = 1024
        self.swd_khz = 0

    # -- plumbing -------------------------------------------------------------------------

    def _check(self, status: int, command: str, reply: bytes) -> None:
        info = STATUS.get(status)
        if info is None:
            # Not a status the firmware sends (reference §4.7): a garbled reply.
            raise ProtocolError(f"ST-Link {command}: unknown status 0x{status:02X}",
                                command=command, reply=reply)
        if info.kind == "ok":
            return
        message = f"ST-Link {command}: {info.text} (status 0x{status:02X})"
        if info.kind == "connect":
            raise ConnectError(message, hint="check the SWD wiring (SWDIO, SWCLK, GND) and the "
                                             "target's power, or try connect: under-reset; a "
                                             "part at RDP level 2 never answers")
        if info.kind in ("fault", "bus"):
            raise BusFault(message, command=command, reply=reply)
        raise Refused(message, command=command, reply=reply)

    def command(self, block: bytes, *, reply: int, name: str, status: bool = True,
                data_out: bytes = b"", detail: str = "", traced: bool = True) -> bytes:
        """Send one command; with ``status`` check byte 0, retrying WAIT with back-off.

        ``detail`` (address, size) and the reply go to the trace; ``traced``
        False leaves the line to the caller, which knows what the reply means.
        """
        delay = 0.001
        for _attempt in range(self.wait_retries + 1):
            started = time.monotonic() if self.trace.commands else 0.0
            answer = self.framing.exchange(block, data_out=data_out, reply=reply)
            if self.trace.commands and traced:
                self.trace.command(name, _reply_text(name, answer, status=status, sent=data_out),
                                   started=started, detail=detail)
            if not status:
                return answer
            if len(answer) < 1:
                raise ProtocolError(f"ST-Link {name}: empty reply", command=name, reply=answer)
            if STATUS.get(answer[0], StatusInfo("error", "")).kind == "wait":
                # Reference §2: OpenOCD retries up to 8 times, 1, 2, 4 … 128 ms.
                self.timebase.sleep(delay)
                delay *= 2
                continue
            self._check(answer[0], name, answer)
            return answer
        raise BusFault(f"ST-Link {name}: target kept answering WAIT", command=name,
                       hint="lower clock-khz; the target may be in a low-power mode")

    # -- probe-level commands ---------------------------------------------------------------

    def read_version(self) -> ProbeVersion:
        started = time.monotonic() if self.trace.commands else 0.0
        reply = self.command(_block(bytes([GET_VERSION])), reply=6, name="GET_VERSION",
                             status=False, traced=False)
        extended = None
        if reply[0] >> 4 >= 3:
            extended = self.command(_block(bytes([GET_VERSION_EX])), reply=12,
                                    name="GET_VERSION_EX", status=False)
        self.version = parse_version(reply, extended, self.pid, self.generation)
        if self.trace.commands:
            self.trace.command("GET_VERSION", str(self.version), started=started)
        if self.version.jtag == 0:
            raise ConnectError(f"ST-Link firmware {self.version} cannot do SWD",
                               hint="update the probe's firmware with ST's ST-LinkUpgrade")
        return self.version

    def current_mode(self) -> int:
        return self.command(_block(bytes([GET_CURRENT_MODE])), reply=2, name="GET_CURRENT_MODE",
                            status=False)[0]

    def leave_current_mode(self) -> None:
        """Reference §4.2: DFU → DFU_EXIT, debug → DEBUG_EXIT, SWIM → SWIM_EXIT."""
        mode = self.current_mode()
        if mode == MODE_DFU:
            self.command(_block(bytes([DFU, DFU_EXIT])), reply=0, name="DFU_EXIT", status=False)
        elif mode == MODE_DEBUG:
            self.command(_block(bytes([DEBUG, D_EXIT])), reply=0, name="DEBUG_EXIT",
                         status=False)
        elif mode == MODE_SWIM:
            self.command(_block(bytes([SWIM, SWIM_EXIT])), reply=0, name="SWIM_EXIT",
                         status=False)

    def target_voltage(self) -> float | None:
        """Reference §4.5: 2 x 1.2 V x vdd / reference; None when not measurable."""
        if not self.version.has("target-voltage"):
            return None
        reply = self.command(_block(bytes([GET_TARGET_VOLTAGE])), reply=8,
                             name="GET_TARGET_VOLTAGE", status=False)
        reference, vdd = struct.unpack("<II", reply[:8])
        if reference == 0:
            return None
        return float(2 * 1.2 * vdd / reference)

    def set_swd_clock(self, khz: int) -> int:
        """Set the SWD clock to the fastest supported rate not above ``khz``."""
        if self.version.has("com-freq"):
            reply = self.command(_block(bytes([DEBUG, D_GET_COM_FREQ, 0])), reply=52,
                                 name="GET_COM_FREQ")
            count = min(struct.unpack_from("<I", reply, 8)[0], 10)
            rates = [struct.unpack_from("<I", reply, 12 + 4 * i)[0] for i in range(count)]
            usable = [r for r in rates if r <= khz] or [min(rates)]
            chosen = int(max(usable))
            self.command(_block(bytes([DEBUG, D_SET_COM_FREQ, 0, 0]), struct.pack("<I", chosen)),
                         reply=8, name="SET_COM_FREQ")
        elif self.version.has("swd-set-freq"):
            usable = [(k, d) for k, d in SWD_DIVISORS if k <= khz] or [SWD_DIVISORS[-1]]
            chosen, divisor = usable[0]
            self.command(_block(bytes([DEBUG, D_SWD_SET_FREQ]), struct.pack("<H", divisor)),
                         reply=2, name="SWD_SET_FREQ")
        else:
            chosen = 1800  # firmware default (reference §4.9)
        self.swd_khz = chosen
        return chosen

    def enter_swd(self) -> None:
        self.command(_block(bytes([DEBUG, D_ENTER, ENTER_SWD])), reply=2, name="ENTER_SWD")

    def exit_debug(self) -> None:
        self.command(_block(bytes([DEBUG, D_EXIT])), reply=0, name="DEBUG_EXIT", status=False)

    def drive_nrst(self, level: int) -> None:
        """0 low, 1 high, 2 pulse (reference §4.3, 0x3C)."""
        self.command(_block(bytes([DEBUG, D_DRIVE_NRST, level])), reply=2, name="DRIVE_NRST")

    def reset_system(self) -> None:
        self.command(_block(bytes([DEBUG, D_RESETSYS])), reply=2, name="RESETSYS")

    def read_dp_idcode(self) -> int:
        reply = self.command(_block(bytes([DEBUG, D_READ_IDCODES])), reply=12,
                             name="READ_IDCODES")
        return int(struct.unpack_from("<I", reply, 4)[0])

    # -- debug registers ----------------------------------------------------------------------

    def read_word(self, address: int) -> int:
        """One 32-bit read (READDEBUGREG: one command, one 8-byte reply)."""
        reply = self._word_command(_block(bytes([DEBUG, D_READ_DEBUGREG]),
                                          struct.pack("<I", address)), 8, "READDEBUGREG",
                                   address)
        return int(struct.unpack_from("<I", reply, 4)[0])

    def write_word(self, address: int, value: int) -> None:
        self._word_command(_block(bytes([DEBUG, D_WRITE_DEBUGREG]),
                                  struct.pack("<II", address, value & 0xFFFFFFFF)), 2,
                           "WRITEDEBUGREG", address)

    def _word_command(self, block: bytes, reply: int, name: str, address: int) -> bytes:
        try:
            return self.command(block, reply=reply, name=name)
        except BusFault as error:
            if error.reply and STATUS.get(error.reply[0], StatusInfo("", "")).kind == "fault":
                raise MemoryFault(f"{name} at 0x{address:08X} faulted", address=address,
                                  command=name, reply=error.reply) from error
            raise

    # -- memory -------------------------------------------------------------------------

    def last_rw_status(self, name: str, address: int) -> None:
        if self.version.has("rw-status2"):
            reply = self.command(_block(bytes([DEBUG, D_LASTRW2])), reply=12,
                                 name="GETLASTRWSTATUS2", status=False)
            fault_at = struct.unpack_from("<I", reply, 4)[0]
        else:
            reply = self.command(_block(bytes([DEBUG, D_LASTRW])), reply=2,
                                 name="GETLASTRWSTATUS", status=False)
            fault_at = address
        info = STATUS.get(reply[0], StatusInfo("error", f"status 0x{reply[0]:02X}"))
        if info.kind == "fault":
            raise MemoryFault(f"{name} at 0x{fault_at:08X} faulted ({info.text})",
                              address=fault_at, command=name, reply=reply)
        self._check(reply[0], name, reply)

    def _max_block(self, width: int) -> int:
        if width == 1:
            return 512 if self.version.has("mem-8bit-512") else 64
        return MAX_MEMORY_BLOCK

    def _pieces(self, address: int, length: int, width: int) -> list[tuple[int, int]]:
        """Split ``[address, address+length)`` so no piece crosses the TAR window."""
        pieces = []
        limit = self._max_block(width)
        while length > 0:
            room = self.window - address % self.window
            size = min(length, limit, room)
            size -= size % width if size > width else 0
            pieces.append((address, size))
            address += size
            length -= size
        return pieces

    def read_block(self, address: int, length: int, width: int) -> bytes:
        """One READMEM command of ``length`` bytes (already sized and aligned)."""
        name = f"READMEM_{width * 8}BIT"
        block = _block(bytes([DEBUG, READ_MEM[width]]), struct.pack("<IH", address, length))
        wanted = max(length, 2) if width == 1 else length
        data = self.command(block, reply=wanted, name=name, status=False,
                            detail=f"0x{address:08X} {length} B" if self.trace.commands else "")
        self.last_rw_status(name, address)
        if len(data) < length:
            raise ProtocolError(f"{name}: {len(data)} of {length} bytes came back",
                                command=name, reply=data)
        return data[:length]

    def write_block(self, address: int, data: bytes, width: int) -> None:
        name = f"WRITEMEM_{width * 8}BIT"
        block = _block(bytes([DEBUG, WRITE_MEM[width]]), struct.pack("<IH", address, len(data)))
        self.command(block, reply=0, name=name, status=False, data_out=data,
                     detail=f"0x{address:08X} {len(data)} B" if self.trace.commands else "")
        self.last_rw_status(name, address)

    def read_memory(self, address: int, length: int,
                    progress: Callable[[int], None] | None = None) -> bytes:
        """Read any span: 8-bit head and tail, 32-bit middle (reference §4.8)."""
        out = bytearray()
        head = min(-address % 4, length)
        for at, size in self._pieces(address, head, 1):
            out += self.read_block(at, size, 1)
        middle = (length - head) & ~3
        for at, size in self._pieces(address + head, middle, 4):
            out += self.read_block(at, size, 4)
            if progress is not None:
                progress(len(out))
        for at, size in self._pieces(address + head + middle, length - head - middle, 1):
            out += self.read_block(at, size, 1)
        return bytes(out)

    def write_memory(self, address: int, data: bytes, width: int = 4) -> None:
        """Write any span at ``width`` (the bus access size the target needs)."""
        if width == 2 and not self.version.has("mem-16bit"):
            raise TransportError(f"ST-Link firmware {self.version} has no 16-bit memory access",
                                 hint="update the probe's firmware (V2 J26 or later)")
        head = min(-address % width, len(data)) if width > 1 else 0
        for at, size in self._pieces(address, head, 1):
            self.write_block(at, data[at - address:at - address + size], 1)
        middle = (len(data) - head) - (len(data) - head) % width
        for at, size in self._pieces(address + head, middle, width):
            self.write_block(at, data[at - address:at - address + size], width)
        rest = address + head + middle
        for at, size in self._pieces(rest, len(data) - head - middle, 1):
            self.write_block(at, data[at - address:at - address + size], 1)
