"""A simulated ST-Link (V1, V2, V2-1, V3) on the shared pyusb backend.

It answers the command set byte for byte as the reference describes: every
command is a 16-byte block on the OUT endpoint, a write's payload follows as
its own transfer, and the reply has the length the command implies, with the
status in byte 0 where the command has one. V1 wraps the same blocks in USB
mass-storage Bulk-Only Transport (see :mod:`transports.sim.stlink.bot`).

Last read/write status: each memory command sets it; GETLASTRWSTATUS(2)
reports it (with the faulting address) and the next memory command replaces
it. Every bulk transfer costs USB time on the chip's clock (full speed:
0.125 ms per transfer plus wire time; V3 high speed less).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transports.sim.chip import SimChip, SimFlashFault
from transports.sim.faults import InjectedFault
from transports.sim.stlink.controller import BusFault
from transports.sim.stlink.target import SimSwdTarget
from transports.sim.usb import (
    ConfigurationInfo,
    DeviceInfo,
    EndpointInfo,
    InterfaceInfo,
    SimUsbDevice,
    UsbStall,
    UsbTimeout,
)

__all__ = ["PROBE_MODELS", "ProbeModel", "SimStLinkProbe", "derive_probe_serial"]

OK, FAULT, AP_WAIT, AP_FAULT, NO_DEVICE, GET_IDCODE_ERROR, UNKNOWN_COMMAND = (
    0x80, 0x81, 0x10, 0x11, 0x05, 0x09, 0x42)
CONF_CHANGED = 0x40
#: What an injected fault at connect shows (reference §4.7): the firmware refusing
#: the command, and a byte it never sends (a garbled reply).
COMMAND_ERROR, GARBLED = 0x08, 0xEE
#: Reference §3.4: debug sub-command → (first V2 firmware J, first V3 J) that has it;
#: an older firmware answers "unknown command". V1 follows the V2 numbers.
FIRMWARE_GATES: dict[int, tuple[int, int]] = {
    0x43: (22, 99), 0x44: (24, 0), 0x45: (24, 0), 0x46: (24, 0), 0x47: (26, 0), 0x48: (26, 0),
    0x4B: (28, 0), 0x4C: (28, 0), 0x56: (36, 6), 0x61: (99, 0), 0x62: (99, 0), 0x63: (99, 0),
}
MODE_DFU, MODE_MASS, MODE_DEBUG = 0, 1, 2
# SWD_SET_FREQ divisor → kHz (reference §4.9)
_V2_DIVISORS = {0: 4000, 1: 1800, 2: 1200, 3: 950, 7: 480, 15: 240, 31: 125, 40: 100,
                79: 50, 158: 25, 265: 15, 798: 5}
_V3_FREQUENCIES = (24000, 8000, 3300, 1000, 200, 50, 5)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeModel:
    """USB identity and timing of one probe generation."""

    name: str
    pid: int
    hw_version: int
    out_ep: int
    trace_ep: int | None
    packet: int
    transfer_s: float     # fixed cost of one bulk transfer
    bytes_per_s: float    # wire throughput
    jtag_version: int
    second_version: int   # SWIM (V2) or MSC (V2-1, V3)
    bot: bool = False


PROBE_MODELS = {
    "v1": ProbeModel(name="STM32 STLink", pid=0x3744, hw_version=1, out_ep=0x02, trace_ep=None,
                     packet=64, transfer_s=0.000125, bytes_per_s=1.0e6, jtag_version=13,
                     second_version=0, bot=True),
    "v2": ProbeModel(name="STM32 STLink", pid=0x3748, hw_version=2, out_ep=0x02, trace_ep=0x83,
                     packet=64, transfer_s=0.000125, bytes_per_s=1.0e6, jtag_version=37,
                     second_version=7),
    "v2-1": ProbeModel(name="STM32 STLink", pid=0x374B, hw_version=2, out_ep=0x01,
                       trace_ep=0x82, packet=64, transfer_s=0.000125, bytes_per_s=1.0e6,
                       jtag_version=40, second_version=27),
    "v3": ProbeModel(name="STLINK-V3", pid=0x374F, hw_version=3, out_ep=0x01, trace_ep=0x82,
                     packet=512, transfer_s=0.00005, bytes_per_s=30e6, jtag_version=7,
                     second_version=3),
}


def derive_probe_serial(seed: str) -> str:
    """A 24-hex-digit serial, stable for a seed (as real probes carry)."""
    return hashlib.sha256(f"stlink:{seed}".encode()).hexdigest()[:24].upper()


class SimStLinkProbe(SimUsbDevice):
    """One probe with one target attached."""

    def __init__(self, model: ProbeModel, target: SimSwdTarget | None, *, serial: str,
                 binary_serial: bool = False, port_numbers: tuple[int, ...] = (1,),
                 bus: int = 1, jtag_version: int | None = None,
                 target_voltage: float = 3.3, wait_replies: int = 0) -> None:
        super().__init__()
        self.model = model
        self.target = target
        self.jtag_version = jtag_version if jtag_version is not None else model.jtag_version
        self.target_voltage = target_voltage
        self.wait_replies = wait_replies
        self.serial = serial
        raw: str | bytes = serial
        if binary_serial:
            # Old V2 firmware: 12 raw bytes, each in the low byte of a UTF-16 unit.
            raw = b"".join(bytes([b, 0]) for b in bytes.fromhex(serial))
        self.info = DeviceInfo(vendor_id=0x0483, product_id=model.pid,
                               bcd_device=0x0100 * model.hw_version, product=model.name,
                               serial=raw, bus=bus, address=port_numbers[-1] + 1,
                               port_numbers=port_numbers, speed=3 if model.packet == 512 else 2,
                               bcd_usb=0x0200)
        endpoints = [EndpointInfo(address=0x81, max_packet_size=model.packet),
                     EndpointInfo(address=model.out_ep, max_packet_size=model.packet)]
        if model.trace_ep is not None:
            endpoints.append(EndpointInfo(address=model.trace_ep, max_packet_size=model.packet))
        klass = (0x08, 0x06, 0x50) if model.bot else (0xFF, 0xFF, 0xFF)
        self.configurations = (ConfigurationInfo(interfaces=(InterfaceInfo(
            number=0, interface_class=klass[0], subclass=klass[1], protocol=klass[2],
            endpoints=tuple(endpoints)),)),)
        self.mode = MODE_DFU
        self.dropped = False
        #: the simulated device (manifest name) whose chip is wired to the probe now
        self.device = ""
        self.reply = b""
        self.expect_payload: tuple[int, Callable[[bytes], None]] | None = None
        self.last_status = OK
        self.fault_address = 0
        #: (command, sub-command) of every block received, for tests and benchmarks.
        self.commands: list[tuple[int, int]] = []

    def reenumerate(self) -> None:
        """Come back after a drop: power-on state, not in debug mode."""
        self.dropped = False
        self.mode = MODE_DFU
        self.reply = b""
        self.expect_payload = None

    # -- USB time ------------------------------------------------------------------------

    def _charge(self, nbytes: int) -> None:
        if self.target is not None:
            self.target.sim.clock.advance(self.model.transfer_s + nbytes / self.model.bytes_per_s)

    @property
    def sim(self) -> SimChip | None:
        return self.target.sim if self.target is not None else None

    # -- bulk endpoints (V2/V3 framing; V1 overrides) ---------------------------------------

    # -- power, as a hub port gives it -----------------------------------------------------

    wedged = False
    backend: Any = None  # the pyusb backend it is plugged into (set when attached)

    @property
    def port_path(self) -> str:
        return f"{self.info.bus}-{'.'.join(str(p) for p in self.info.port_numbers)}"

    @property
    def present(self) -> bool:
        return self.plugged and not self.dropped

    def power_off(self) -> None:
        """Its port lost power: off the bus; a wedged firmware starts afresh next time."""
        self.wedged = False
        self.dropped = True
        if self.backend is not None:
            self.backend.unplug(self)

    def power_on(self) -> None:
        self.reenumerate()
        if self.backend is not None:
            self.backend.plug(self)

    def bulk_out(self, endpoint: int, data: bytes) -> None:
        if self.wedged:
            raise UsbTimeout
        self._charge(len(data))
        if endpoint != self.model.out_ep:
            raise UsbStall
        if self.expect_payload is not None:
            length, handler = self.expect_payload
            self.expect_payload = None
            handler(data[:length])
            return
        if len(data) != 16:
            raise UsbStall
        self.reply = self.execute(data)

    def bulk_in(self, endpoint: int, length: int) -> bytes:
        if self.wedged:
            raise UsbTimeout
        self._charge(min(length, len(self.reply)))
        if endpoint != 0x81:
            raise UsbStall
        if not self.reply:
            raise UsbTimeout
        reply, self.reply = self.reply, b""
        return reply

    # -- the command set -----------------------------------------------------------------

    @property
    def powered(self) -> bool:
        return self.target is not None and self.target_voltage > 1.0

    def execute(self, block: bytes) -> bytes:
        """Run one 16-byte command; returns the reply (empty when it has none).

        A write command registers a handler for its data phase.
        """
        command = block[0]
        self.commands.append((command, block[1]))
        if command == 0xF1:
            version = (self.model.hw_version << 12) | (
                (0 if self.model.hw_version >= 3 else self.jtag_version) << 6) | (
                0 if self.model.hw_version >= 3 else self.model.second_version)
            return struct.pack(">H", version) + struct.pack("<HH", 0x0483, self.model.pid)
        if command == 0xFB and self.model.hw_version >= 3:
            return bytes([self.model.hw_version, 0, self.jtag_version,
                          self.model.second_version, 0, 0, 0, 0]) + struct.pack(
                "<HH", 0x0483, self.model.pid)
        if command == 0xF5:
            return bytes([self.mode, 0])
        if command == 0xF3 and block[1] == 0x07:
            self.mode = MODE_MASS
            return b""
        if command == 0xF7 and self.model.hw_version >= 2:
            reference = 1489  # ADC counts of the 1.2 V reference
            vdd = round(self.target_voltage / 2.4 * reference)
            return struct.pack("<II", reference, vdd)
        if command == 0xF2:
            return self._debug(block)
        return bytes([UNKNOWN_COMMAND, 0])

    def _st2(self, status: int) -> bytes:
        return bytes([status, 0])

    def _has(self, sub: int) -> bool:
        v2, v3 = FIRMWARE_GATES.get(sub, (0, 0))
        return self.jtag_version >= (v3 if self.model.hw_version >= 3 else v2)

    def _debug(self, block: bytes) -> bytes:
        sub = block[1]
        if not self._has(sub):
            return self._st2(UNKNOWN_COMMAND)
        if sub == 0x21:
            self.mode = MODE_MASS
            return b""
        if sub == 0x30:
            if not self.powered:
                return self._st2(GET_IDCODE_ERROR)
            if self.sim is not None and self.sim.rdp_level == 2:
                return self._st2(GET_IDCODE_ERROR)  # RDP level 2 disables the debug port
            try:
                if self.sim is not None:
                    self.sim.faults.check("connect", 0)
            except InjectedFault as fault:
                return self._st2(self._injected(fault, nack=COMMAND_ERROR, corrupt=GARBLED))
            self.mode = MODE_DEBUG
            return self._st2(OK)
        if sub == 0x63:  # SWITCH_STLINK_FREQ: the V3's own clock prescaler (1, 2, 4)
            status = CONF_CHANGED if block[2] in (1, 2, 4) else 0x41
            return bytes([status, 0, 0, 0]) + bytes(4)
        if sub == 0x44:  # JTAG_SET_FREQ: accepted, SWD does not use it
            return self._st2(OK)
        if sub == 0x56:
            # GET_BOARD_IDENTIFIERS: status, then the Mbed board ID (none on this probe).
            return self._st2(OK) + bytes(126)
        if sub == 0x43:
            divisor = struct.unpack_from("<H", block, 2)[0]
            if divisor not in _V2_DIVISORS:
                return self._st2(0x41)
            if self.target is not None:
                self.target.swd_khz = _V2_DIVISORS[divisor]
            return self._st2(OK)
        if sub == 0x62 and self.model.hw_version >= 3:
            freqs = _V3_FREQUENCIES
            body = struct.pack("<I", self.target.swd_khz if self.target else 0)
            body += struct.pack("<I", len(freqs)) + b"".join(struct.pack("<I", f) for f in freqs)
            return (bytes([OK, 0, 0, 0]) + body).ljust(52, b"\0")
        if sub == 0x61 and self.model.hw_version >= 3:
            khz = struct.unpack_from("<I", block, 4)[0]
            if khz not in _V3_FREQUENCIES:
                return bytes([0x41, 0, 0, 0]) + bytes(4)
            if self.target is not None:
                self.target.swd_khz = khz
            return bytes([OK, 0, 0, 0]) + struct.pack("<I", khz)
        if sub == 0x3C:
            if self.target is not None:
                level = block[2]
                if level == 0:
                    self.target.nrst_low = True
                elif self.target.nrst_low or level == 2:
                    self.target.nrst_low = False
                    self.target.system_reset()
            return self._st2(OK)
        if self.mode != MODE_DEBUG or self.target is None:
            return self._st2(NO_DEVICE)
        return self._debug_connected(block, sub)

    def _debug_connected(self, block: bytes, sub: int) -> bytes:
        target = self.target
        assert target is not None
        address = struct.unpack_from("<I", block, 2)[0]
        length = struct.unpack_from("<H", block, 6)[0]
        if sub == 0x31:
            return bytes([OK, 0, 0, 0]) + struct.pack("<I", target.identity.dp_idcode) + bytes(4)
        if sub == 0x32:
            target.system_reset()
            return self._st2(OK)
        if sub in (0x35, 0x36):
            if self.wait_replies > 0:
                self.wait_replies -= 1
                return self._st2(AP_WAIT) if sub == 0x35 else bytes([AP_WAIT]) + bytes(7)
            if address % 4:
                return self._st2(0x0A) if sub == 0x35 else bytes([0x0A]) + bytes(7)
            try:
                if sub == 0x35:
                    target.write(address, block[6:10], 4)
                    return self._st2(OK)
                value = target.read(address, 4, 4)
                return bytes([OK, 0, 0, 0]) + value
            except BusFault as fault:
                self.fault_address = fault.address
                return self._st2(AP_FAULT) if sub == 0x35 else bytes([AP_FAULT]) + bytes(7)
            except InjectedFault as fault:  # an erase started by this register write
                status = self._injected(fault)
                self.fault_address = address
                return self._st2(status) if sub == 0x35 else bytes([status]) + bytes(7)
        if sub in (0x3B, 0x3E):
            status, self.last_status = self.last_status, OK
            if sub == 0x3B:
                return self._st2(status)
            return bytes([status, 0, 0, 0]) + struct.pack("<I", self.fault_address) + bytes(4)
        if sub in (0x4B, 0x4C):  # INIT_AP, CLOSE_AP_DBG
            return self._st2(OK)
        if sub == 0x22:  # READCOREID: the DP IDCODE, no status
            return struct.pack("<I", target.identity.dp_idcode)
        if sub in (0x33, 0x34, 0x3A, 0x04, 0x05, 0x06):
            return self._core_registers(block, sub)
        if sub in (0x45, 0x46):
            return self._dap_register(block, sub)
        widths = {0x07: 4, 0x0C: 1, 0x47: 2, 0x08: 4, 0x0D: 1, 0x48: 2}
        if sub in widths:
            width = widths[sub]
            if width == 2 and self.jtag_version < 26 and self.model.hw_version < 3:
                return self._st2(UNKNOWN_COMMAND)
            if sub in (0x07, 0x0C, 0x47):
                return self._read_memory(address, length, width)
            self.expect_payload = (length, lambda data: self._write_memory(address, data, width))
            return b""
        return self._st2(UNKNOWN_COMMAND)

    # -- core and debug-port registers ------------------------------------------------------

    def _core_registers(self, block: bytes, sub: int) -> bytes:
        """READREG/WRITEREG/READALLREGS (API v2: 0x33/0x34/0x3A; API v1: 0x05/0x06/0x04).

        The firmware goes through DCRSR/DCRDR, which answer only in Debug state
        (ARMv7-M C1.6.3): a running core gets FAULT.
        """
        target = self.target
        assert target is not None
        v1 = sub in (0x04, 0x05, 0x06)
        if v1 and self.model.hw_version != 1:
            return self._st2(UNKNOWN_COMMAND)
        regsel = block[2]
        if sub in (0x33, 0x34) and regsel > 0x1F and self.jtag_version < 15:
            return self._st2(UNKNOWN_COMMAND)  # FPU registers need J15 (reference §4.3)
        if not target.halted:
            return self._st2(FAULT) + (bytes(6) if sub == 0x33 else b"")
        core = target.core
        if sub in (0x34, 0x06):
            core.write_register(regsel, struct.unpack_from("<I", block, 3)[0])
            return self._st2(OK)
        if sub in (0x33, 0x05):
            value = struct.pack("<I", core.read_register(regsel))
            return value if v1 else bytes([OK, 0, 0, 0]) + value
        values = [core.read_register(i) for i in range(21)]  # R0-R15, xPSR, MSP, PSP, 19, 20
        body = b"".join(struct.pack("<I", v) for v in values)
        return body if v1 else bytes([OK, 0, 0, 0]) + body[:84]

    def _dap_register(self, block: bytes, sub: int) -> bytes:
        """READ_DAP_REG / WRITE_DAP_REG: port 0xFFFF is the DP, else the AP of that number."""
        target = self.target
        assert target is not None
        port, address = struct.unpack_from("<HH", block, 2)
        dap = target.dap
        try:
            if sub == 0x45:
                value = dap.read_dp(address) if port == 0xFFFF else dap.read_ap(port, address)
                return bytes([OK, 0, 0, 0]) + struct.pack("<I", value)
            value = struct.unpack_from("<I", block, 6)[0]
            if port == 0xFFFF:
                dap.write_dp(address, value)
            else:
                dap.write_ap(port, address, value)
            return self._st2(OK)
        except BusFault as fault:
            self.fault_address = fault.address
            return self._st2(AP_FAULT) + (bytes(6) if sub == 0x45 else b"")

    # -- memory commands ---------------------------------------------------------------

    def _segments(self, address: int, length: int) -> list[tuple[int, int]]:
        """Bus addresses of a transfer, wrapping inside the TAR auto-increment window."""
        assert self.target is not None
        window = self.target.identity.tar_window
        segments, done = [], 0
        at = address
        while done < length:
            room = window - (at % window)
            size = min(room, length - done)
            segments.append((at, size))
            done += size
            at = at - (at % window) if size == room else at + size
        return segments

    def _read_memory(self, address: int, length: int, width: int) -> bytes:
        assert self.target is not None
        limit = self.model.packet if width == 1 else 6144
        if length > limit or address % width or length % width:
            self.last_status = 0x0A
            return bytes(max(length, 2))
        out = bytearray()
        self.last_status = OK
        try:
            # Like writes, a read fault counts flash bytes (not the host's SRAM reads).
            if self.sim is not None and self.target.chip.flash.contains(address, length):
                self.sim.faults.check("read", length)
            for at, size in self._segments(address, length):
                out += self.target.read(at, size, width)
        except BusFault as fault:
            self.last_status, self.fault_address = AP_FAULT, fault.address
        except SimFlashFault:
            self.last_status, self.fault_address = AP_FAULT, address
        except InjectedFault as fault:
            self.last_status, self.fault_address = self._injected(fault), address
        out = out.ljust(length, b"\0")
        return bytes(out) if width != 1 or length >= 2 else bytes(out) + b"\0"

    def _write_memory(self, address: int, data: bytes, width: int) -> None:
        assert self.target is not None
        limit = self.model.packet if width == 1 else 6144
        if len(data) > limit or address % width or len(data) % width:
            self.last_status = 0x0A
            return
        self.last_status = OK
        try:
            if self.sim is not None and self.target.chip.flash.contains(address, len(data)):
                try:
                    self.sim.faults.check("write", len(data))
                except InjectedFault as fault:
                    if fault.kind != "corrupt":
                        raise
                    data = bytes([data[0] ^ 0x01]) + data[1:]
            offset = 0
            for at, size in self._segments(address, len(data)):
                self.target.write(at, data[offset:offset + size], width)
                offset += size
        except BusFault as fault:
            self.last_status, self.fault_address = AP_FAULT, fault.address
        except InjectedFault as fault:
            self.last_status = self._injected(fault)
            self.fault_address = address

    def _injected(self, fault: InjectedFault, *, nack: int = AP_FAULT,
                  corrupt: int = AP_FAULT) -> int:
        """Turn an injected fault into what the wire shows: the status to answer with.

        A timeout never answers; a lost link (or power) drops the probe off the bus.
        A memory access has no NACK: a refusal or a corruption faults on the AP; at
        connect the firmware answers ``nack`` or ``corrupt`` (a refusal, a garbled byte).
        """
        if fault.kind == "timeout":
            raise UsbTimeout
        if fault.kind == "wedged":
            self.wedged = True  # silent from now on, until its USB port's power is cut
            raise UsbTimeout
        if fault.kind in ("link-lost", "brownout"):
            # The probe drops off the bus; it is back (re-enumerated, in its
            # power-on state) when the host looks for it again.
            self.plugged = False
            self.dropped = True
            raise UsbTimeout
        return nack if fault.kind == "nack" else corrupt
