"""A simulated STM32 ROM DFU device: DFU 1.1 with ST's DfuSe extensions (AN3156).

The device is a :class:`~transports.sim.usb.SimUsbDevice` on the shared pyusb
backend, speaking the wire protocol from the chip's side:

* descriptors as the ST ROMs present them: 0483:DF11, one interface (class
  0xFE/0x01/0x02) with one alternate setting per memory region, each named by
  its DfuSe layout string (generated from the chip database geometry), and the
  DFU functional descriptor appended after the *last* alternate setting;
* the DFU 1.1 state machine: a request in the wrong state stalls and moves to
  dfuERROR/errSTALLEDPKT; DNLOAD commands execute on the first GETSTATUS
  (dfuDNBUSY with bwPollTimeout = the chip's erase/program time) and report
  their result on the next one, once that time has passed on the SimClock;
* DfuSe: set address, page/mass erase, read unprotect on block 0; block n ≥ 2
  writes/reads at ``pointer + (n - 2) * wLength``; leaving DFU jumps to the
  address pointer when a vector table is there, else the ROM comes back;
* RDP: erase, write and read answer errVENDOR; read unprotect and option-byte
  writes reset the chip, which re-enumerates (the old handle is dead).

Every control transfer costs USB full-speed time on the chip's clock
(:func:`control_transfer_seconds`). Nothing here imports the DFU transport.

Profile quirks (``simulation.devices.<name>.quirks``) select ROM variants:
``serial`` (force one, e.g. to make two boards collide), ``port-path``
(``1-4.2``), ``product`` (``STM32 0x418 DFU Bootloader``), ``flash-layout``
(replace the Internal Flash string), ``transfer-size``,
``functional-descriptor: first`` (where DFU 1.1 puts it, not after the last
alternate), ``no-option-bytes``, ``mass-erase-poll-ms`` (under-report the
mass-erase time, as the F405 ROM does), ``stall-getstatus-while-busy``
(as some L4 ROMs do when polled early), ``getstatus-while-busy: answer`` and
``address-pointer: selected-alternate``: AN2662 lists system memory among the
Set Address Pointer targets and most ROMs let the UID and flash-size registers
be read from any alternate setting, but a stricter ROM takes only addresses
inside the selected alternate's layout and answers errTARGET elsewhere.

A GETSTATUS that arrives while an erase or program still runs is *held*, as on
the F4 ROMs: their USB stack NAKs the IN stage until the flash operation ends,
so the request completes late with the final state (pydfu relies on this and
gives GETSTATUS 20 s). If the host's timeout for that transfer runs out first
it gets a USB timeout and the operation goes on. ``getstatus-while-busy:
answer`` models a ROM that answers at once with dfuDNBUSY and the remaining
time as bwPollTimeout.
"""

from __future__ import annotations

import errno
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import usb.core

from transports.chips import Chip
from transports.sim.chip import SimChip, SimFlashFault
from transports.sim.control import sim_hardware
from transports.sim.faults import InjectedFault
from transports.sim.usb import (
    ConfigurationInfo,
    ControlRequest,
    DeviceInfo,
    InterfaceInfo,
    SimUsbBackend,
    SimUsbDevice,
    UsbStall,
    UsbTimeout,
)
from transports.sim.world import SimulationWorld

__all__ = ["SimDfuBoard", "SimRomDfu", "control_transfer_seconds", "layout_strings",
           "plug_rom_dfu", "rom_serial"]

# DFU 1.1 §6.1.2 states and status codes.
APP_IDLE, DFU_IDLE, DNLOAD_SYNC, DNBUSY, DNLOAD_IDLE = 0, 2, 3, 4, 5
MANIFEST_SYNC, MANIFEST, UPLOAD_IDLE, DFU_ERROR = 6, 7, 9, 10
OK, ERR_TARGET, ERR_WRITE, ERR_ERASE, ERR_VERIFY = 0x00, 0x01, 0x03, 0x04, 0x07
ERR_ADDRESS, ERR_VENDOR, ERR_UNKNOWN, ERR_STALLEDPKT = 0x08, 0x0B, 0x0E, 0x0F

_DETACH, _DNLOAD, _UPLOAD, _GETSTATUS, _CLRSTATUS, _GETSTATE, _ABORT = range(7)
_SET_ADDRESS, _ERASE, _READ_UNPROTECT = 0x21, 0x41, 0x92
_COMMANDS = bytes([0x00, _SET_ADDRESS, _ERASE, _READ_UNPROTECT])  # AN3156 §5: Get command

TRANSFER_SIZE = 2048
_COMMAND_S = 0.0005  # ROM time for a command that touches no flash (set address, checks)
# USB 2.0 full speed: 1 ms frames; a 64-byte data packet is ~77 bytes on the bus
# (sync, PID, CRC, handshake) at 12 Mbit/s. We charge one frame per control
# transfer (setup and status stages are scheduled frame by frame) plus its data packets.
_FRAME_S = 0.001
_PACKET_S = 77 * 8 / 12e6
_OTP = {"f4": ("@OTP Memory /0x1FFF7800/01*512 e,01*016 e", 0x1FFF7800, 528),
        "l4": ("@OTP Memory   /0x1FFF7000/01*0001Ke", 0x1FFF7000, 1024)}
_FEATURE = ("@Device Feature/0xFFFF0000/01*004 e", 0xFFFF0000, 4)


def control_transfer_seconds(nbytes: int) -> float:
    """USB full-speed time of one control transfer carrying ``nbytes`` of data."""
    return _FRAME_S + math.ceil(nbytes / 64) * _PACKET_S


def rom_serial(uid: bytes) -> str:
    """The serial string ST's USB device code derives from the 96-bit UID.

    ``hex8(UID[0] + UID[2]) + hex4(UID[1] >> 16)`` on the three UID words: only
    48 bits of the 96, which is why identical boards have been seen to collide.
    """
    w0, w1, w2 = struct.unpack("<III", uid)
    return f"{(w0 + w2) & 0xFFFFFFFF:08X}{w1 >> 16:04X}"


def _flash_layout(chip: Chip) -> str:
    """``@Internal Flash  /0x08000000/04*016Kg,...``; a gap between banks starts a new group."""
    groups: list[tuple[int, list[list[int]]]] = []
    end = None
    for block in chip.flash.blocks:
        if block.address != end:
            groups.append((block.address, []))
        runs = groups[-1][1]
        if runs and runs[-1][1] == block.size:
            runs[-1][0] += 1
        else:
            runs.append([1, block.size])
        end = block.end
    text = "@Internal Flash  "
    for address, runs in groups:
        parts = [f"{count:02d}*{size // 1024:03d}Kg" if size % 1024 == 0
                 else f"{count:02d}*{size:03d} g" for count, size in runs]
        text += f"/0x{address:08X}/{','.join(parts)}"
    return text


def layout_strings(chip: Chip, quirks: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    """The alternate settings' interface strings the ROM of ``chip`` shows."""
    quirks = quirks or {}
    strings = [str(quirks.get("flash-layout") or _flash_layout(chip))]
    if not quirks.get("no-option-bytes"):
        ob = chip.option_bytes
        strings.append(f"@Option Bytes  /0x{ob.address:08X}/01*{ob.size:03d} e")
    if chip.family in _OTP:
        strings += [_OTP[chip.family][0], _FEATURE[0]]
    return tuple(strings)


def _alternate_regions(chip: Chip, layouts: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """The address span each alternate setting's layout string describes."""
    ob = chip.option_bytes
    spans = {"@Internal Flash": (chip.flash.base, chip.flash.end),
             "@Option Bytes": (ob.address, ob.address + ob.size),
             _FEATURE[0].split("/")[0]: (_FEATURE[1], _FEATURE[1] + _FEATURE[2])}
    for text, base, size in _OTP.values():
        spans[text.split("/")[0].rstrip()] = (base, base + size)
    return tuple(next((span for name, span in spans.items() if text.startswith(name)), (0, 0))
                 for text in layouts)


def _port_path(bus: int, ports: tuple[int, ...]) -> str:
    return f"{bus}-{'.'.join(str(p) for p in ports)}"


def _parse_port_path(text: str) -> tuple[int, tuple[int, ...]]:
    bus, _, ports = text.partition("-")
    return int(bus), tuple(int(p) for p in ports.split("."))


@dataclass(slots=True)
class _Pending:
    """A DNLOAD command waiting for the GETSTATUS that executes it."""

    kind: str            # set-address | erase | mass-erase | unprotect | write
    address: int = 0
    data: bytes = b""


class SimDfuBoard:
    """One board with its BOOT0 pin high: a SimChip whose ROM enumerates as DFU.

    The board outlives enumerations: a reset (read unprotect, option bytes, a
    leave without valid firmware) unplugs the current :class:`SimRomDfu` and
    plugs a fresh one with the same serial and port path.
    """

    def __init__(self, sim: SimChip, backend: SimUsbBackend, *, serial: str, bus: int,
                 ports: tuple[int, ...], quirks: Mapping[str, Any]) -> None:
        self.sim = sim
        self.backend = backend
        self.serial = serial
        self.bus = bus
        self.ports = ports
        self.quirks = dict(quirks)
        self.layouts = layout_strings(sim.chip, quirks)
        self.regions = _alternate_regions(sim.chip, self.layouts)
        self.transfer_size = int(quirks.get("transfer-size", TRANSFER_SIZE))
        otp = _OTP.get(sim.chip.family)
        self.otp_region = (otp[1], otp[2]) if otp else None
        self.otp = bytearray(b"\xff" * (otp[2] if otp else 0))
        self.feature = bytearray(b"\xff" * _FEATURE[2])
        self.enumerations = 0
        self.application: int | None = None  # where the application started, once it did
        self.device: SimRomDfu | None = None
        #: BOOT0 as the board's strap or GPIO line holds it (high: the ROM starts).
        self.boot0_high = True
        self.powered = True
        self.in_reset = False
        #: A ``wedged`` fault fired: nothing answers until the power is cut.
        self.wedged = False
        self.power_cycles = 0
        self.enumerate()

    @property
    def port_path(self) -> str:
        return _port_path(self.bus, self.ports)

    def enumerate(self) -> SimRomDfu | None:
        """Reset into the ROM: a fresh DFU device appears on the bus (not at RDP level 2)."""
        self.disconnect()
        if self.enumerations:
            self.sim.reset()
        self.enumerations += 1
        self.application = None
        if self.sim.rdp_level == 2:
            return None  # RM0090 §3.6.3: level 2 disables booting from system memory
        if self.sim.faults.take("no-enumerate"):
            return None  # the injected fault: this start does not show up on USB
        self.device = SimRomDfu(self)
        self.backend.plug(self.device)
        return self.device

    @property
    def present(self) -> bool:
        return self.device is not None

    def _start(self) -> None:
        """The chip leaves reset: BOOT0 is sampled (RM0090 §2.4) — ROM DFU or application."""
        if self.boot0_high:
            self.enumerate()
            return
        self.disconnect()
        self.sim.reset()
        self.application = self.sim.chip.flash.base

    def power_off(self) -> None:
        """The hub port's power is cut: off the bus, and a wedged chip is revived."""
        self.disconnect()
        self.powered = False
        self.wedged = False

    def power_on(self) -> None:
        self.powered = True
        self.power_cycles += 1
        if not self.in_reset:
            self._start()

    def set_nrst(self, level: bool) -> None:
        """The NRST pin's level (low holds the chip in reset; release samples BOOT0)."""
        if not level and not self.in_reset:
            self.in_reset = True
            self.disconnect()
        elif level and self.in_reset:
            self.in_reset = False
            if self.powered:
                self._start()

    def set_boot0(self, level: bool) -> None:
        self.boot0_high = level

    def disconnect(self) -> None:
        """The device leaves the bus (reset, cable pulled, power lost)."""
        if self.device is not None:
            self.backend.unplug(self.device)
            self.device = None

    def leave(self, address: int) -> None:
        """DFU leave: jump to ``address`` if a vector table is there, else back to the ROM."""
        chip = self.sim.chip
        try:
            msp, reset = struct.unpack("<II", self.sim.read_memory(address, 8, debug=False))
        except SimFlashFault:
            msp = reset = 0
        ram_start, ram_end = chip.ram
        if ram_start < msp <= ram_end and reset & 1 and chip.flash.contains(reset & ~1):
            self.disconnect()
            self.sim.reset()
            self.application = address
        else:
            self.enumerate()


class SimRomDfu(SimUsbDevice):
    """One enumeration of the ST ROM DFU device of a :class:`SimDfuBoard`."""

    def __init__(self, board: SimDfuBoard) -> None:
        super().__init__()
        self.board = board
        chip = board.sim.chip
        quirks = board.quirks
        self.info = DeviceInfo(vendor_id=0x0483, product_id=0xDF11,
                               bcd_device=0x2100 if chip.family == "f4" else 0x2200,
                               product=str(quirks.get("product", "STM32  BOOTLOADER")),
                               serial=board.serial, bus=board.bus, address=board.ports[-1] + 1,
                               port_numbers=board.ports, speed=2)
        functional = struct.pack("<BBBHHH", 9, 0x21, 0x0B, 255, board.transfer_size, 0x011A)
        last = len(board.layouts) - 1
        at = 0 if quirks.get("functional-descriptor") == "first" else last
        self.configurations = (ConfigurationInfo(max_power=50, interfaces=tuple(
            InterfaceInfo(number=0, alternate=alt, interface_class=0xFE, subclass=0x01,
                          protocol=0x02, name=name, extra=functional if alt == at else b"")
            for alt, name in enumerate(board.layouts))),)
        self.state = DFU_IDLE
        self.status = OK
        self.pointer = chip.flash.base
        self.pending: _Pending | None = None
        self.result = OK
        self.busy_until = 0.0
        self.held_polls = 0  # GETSTATUS requests held until an operation ended
        self.resets_after_status = False
        self.greeted = False

    # ------------------------------------------------------------------ plumbing

    @property
    def sim(self) -> SimChip:
        return self.board.sim

    def _now(self) -> float:
        return self.sim.clock.elapsed

    def _stall(self, status: int = ERR_STALLEDPKT) -> UsbStall:
        self.state, self.status = DFU_ERROR, status
        return UsbStall()

    def _vanish(self) -> usb.core.USBError:
        """The link dropped (a glitch, a brown-out): the chip resets into the ROM again."""
        self.board.enumerate()
        return usb.core.USBError("No such device (it may have been disconnected)", -4,
                                 errno.ENODEV)

    def _fault(self, op: str, length: int) -> str | None:
        """Check planned faults; returns ``corrupt`` / ``nack`` or raises the wire effect."""
        try:
            self.sim.faults.check(op, length)
        except InjectedFault as fault:
            if fault.kind == "timeout":
                raise UsbTimeout from fault
            if fault.kind == "wedged":
                self.board.wedged = True
                raise UsbTimeout from fault
            if fault.kind in ("link-lost", "brownout"):
                if fault.kind == "brownout" and self.pending and self.pending.kind == "write":
                    half = self.pending.data[:len(self.pending.data) // 2]
                    self._program(self.pending.address, half)
                raise self._vanish() from fault
            return fault.kind
        return None

    # ------------------------------------------------------------------ requests

    def control(self, request: ControlRequest) -> bytes | None:
        self.sim.clock.advance(control_transfer_seconds(len(request.data) or request.length))
        if self.board.wedged:
            raise UsbTimeout  # a wedged chip answers nothing until its power is cut
        if request.kind != 1 or request.request_type & 0x1F != 1:
            raise UsbStall
        handlers = {_DNLOAD: self._dnload, _UPLOAD: self._upload, _GETSTATUS: self._getstatus,
                    _CLRSTATUS: self._clrstatus, _GETSTATE: self._getstate, _ABORT: self._abort}
        handler = handlers.get(request.request)
        if handler is None:  # DETACH: the ROM is already in DFU mode
            raise self._stall()
        if self.state == DNBUSY and request.request != _GETSTATUS \
                and self._now() < self.busy_until:
            raise self._stall()  # DFU 1.1 §A.1: only GETSTATUS while the device is busy
        return handler(request)

    def _dnload(self, request: ControlRequest) -> None:
        if request.is_in or self.state not in (DFU_IDLE, DNLOAD_IDLE):
            raise self._stall()
        block, data = request.value, request.data
        if not data:
            if self.state != DNLOAD_IDLE:  # DFU 1.1: a zero-length DNLOAD only ends a download
                raise self._stall()
            self.state = MANIFEST_SYNC
            return None
        if len(data) > self.board.transfer_size or block == 1:
            raise self._stall()
        if block >= 2:
            # AN3156 §5.2: the block lands at pointer + (wBlockNum - 2) * wLength.
            self.pending = _Pending(kind="write", address=self.pointer + (block - 2) * len(data),
                                    data=data)
        elif len(data) == 5 and data[0] in (_SET_ADDRESS, _ERASE):
            kind = "set-address" if data[0] == _SET_ADDRESS else "erase"
            self.pending = _Pending(kind=kind, address=int.from_bytes(data[1:], "little"))
        elif data == bytes([_ERASE]):
            self.pending = _Pending(kind="mass-erase")
        elif data == bytes([_READ_UNPROTECT]):
            self.pending = _Pending(kind="unprotect")
        else:
            raise self._stall()
        self.state = DNLOAD_SYNC
        return None

    def _upload(self, request: ControlRequest) -> bytes:
        if not request.is_in or self.state not in (DFU_IDLE, UPLOAD_IDLE):
            raise self._stall()
        block, length = request.value, request.length
        if length > self.board.transfer_size or block == 1:
            raise self._stall()
        if block == 0:
            self.state = DFU_IDLE
            return _COMMANDS[:length]
        address = self.pointer + (block - 2) * length
        fault = self._fault("read", length)
        if fault == "nack":
            raise self._stall(ERR_UNKNOWN)
        ob = self.sim.chip.option_bytes
        in_option_bytes = ob.address <= address < ob.address + ob.size
        if self.sim.rdp_level >= 1 and not in_option_bytes:
            raise self._stall(ERR_VENDOR)
        try:
            data = self._read(address, length)
        except SimFlashFault:
            raise self._stall(ERR_TARGET) from None
        self.state = UPLOAD_IDLE if len(data) == length else DFU_IDLE
        if fault == "corrupt" and data:  # a wrong byte on the wire: only a re-read tells
            data = bytes([data[0] ^ 0x01]) + data[1:]
        return data

    def _read(self, address: int, length: int) -> bytes:
        for start, buffer in self._extra_regions():
            if start <= address < start + len(buffer):
                offset = address - start
                return bytes(buffer[offset:offset + length])
        flash = self.sim.chip.flash
        if flash.contains(address):
            length = min(length, flash.end - address)  # a short block ends the upload
        return self.sim.read_memory(address, length, debug=False)

    def _extra_regions(self) -> list[tuple[int, bytearray]]:
        if self.board.otp_region is None:  # families whose ROM shows no OTP/feature regions
            return []
        return [(self.board.otp_region[0], self.board.otp), (_FEATURE[1], self.board.feature)]

    def _getstate(self, request: ControlRequest) -> bytes:
        return bytes([self.state])

    def _clrstatus(self, request: ControlRequest) -> None:
        if self.state != DFU_ERROR:
            raise self._stall()
        self.state, self.status = DFU_IDLE, OK

    def _abort(self, request: ControlRequest) -> None:
        if self.state not in (DFU_IDLE, DNLOAD_SYNC, DNLOAD_IDLE, MANIFEST_SYNC, UPLOAD_IDLE):
            raise self._stall()
        self.state, self.status, self.pending = DFU_IDLE, OK, None

    def _reply(self, poll_ms: int = 0) -> bytes:
        return struct.pack("<B", self.status) + min(poll_ms, 0xFFFFFF).to_bytes(3, "little") \
            + bytes([self.state, 0])

    def _getstatus(self, request: ControlRequest) -> bytes:
        if not self.greeted:
            # The host's first request of a session. A connect fault that fires leaves the
            # device ungreeted, so a permanent one fires again at every attempt.
            self.sim.faults.reset_counters()
            kind = self._fault("connect", 0)   # a timeout or a lost link raises here
            if kind == "nack":
                self.state, self.status = DFU_ERROR, ERR_UNKNOWN
                return self._reply()
            if kind == "corrupt":
                return self._reply()[:3]       # a short, garbled status
            self.greeted = True
        if self.state == DNLOAD_SYNC and self.pending is not None:
            seconds, reported = self._execute(self.pending)
            self.pending = None
            self.state, self.busy_until = DNBUSY, self._now() + seconds
            reply = self._reply(reported)
            if self.resets_after_status:  # the ROM resets right after this status (AN3156 §5.4)
                self.board.enumerate()
            return reply
        if self.state == DNBUSY:
            remaining = self.busy_until - self._now()
            if remaining > 1e-9:
                if self.board.quirks.get("stall-getstatus-while-busy"):
                    raise UsbStall  # seen on L4 ROMs polled too early; the state is kept
                if self.board.quirks.get("getstatus-while-busy") == "answer":
                    return self._reply(math.ceil(remaining * 1000))
                self._hold(remaining, request.timeout_ms)
            self.state = DFU_ERROR if self.result != OK else DNLOAD_IDLE
            self.status = self.result
            return self._reply()
        if self.state == MANIFEST_SYNC:
            self.state = MANIFEST
            reply = self._reply()
            self.board.leave(self.pointer)
            return reply
        return self._reply()

    def _hold(self, remaining: float, timeout_ms: int) -> None:
        """NAK the GETSTATUS IN stage until the flash operation is done (F4 ROMs)."""
        self.held_polls += 1
        if 0 < timeout_ms < remaining * 1000:
            self.sim.clock.advance(timeout_ms / 1000)
            raise UsbTimeout  # the host gave up; the erase or program goes on
        self.sim.clock.advance(remaining)

    # ------------------------------------------------------------------ commands

    def _execute(self, pending: _Pending) -> tuple[float, int]:
        """Carry out a DNLOAD command; returns (busy seconds, reported bwPollTimeout ms)."""
        self.result, self.resets_after_status = OK, False
        timing, sim = self.sim.chip.timing, self.sim
        seconds = _COMMAND_S
        if pending.kind == "set-address":
            if not self._mapped(pending.address) or not self._in_selected(pending.address):
                self.result = ERR_TARGET
            else:
                self.pointer = pending.address
        elif pending.kind == "erase":
            seconds = self._erase_page(pending.address)
        elif pending.kind == "mass-erase":
            seconds = timing.mass_erase_ms / 1000
            if sim.rdp_level >= 1:
                self.result = ERR_VENDOR
            elif self._fault("erase", sim.chip.flash.size) is not None:
                self.result = ERR_UNKNOWN
            else:
                try:
                    sim.mass_erase(timed=False)
                except SimFlashFault:
                    self.result = ERR_ERASE
            if "mass-erase-poll-ms" in self.board.quirks:  # the F405 ROM under-reports
                return seconds, int(self.board.quirks["mass-erase-poll-ms"])
        elif pending.kind == "unprotect":
            seconds = timing.mass_erase_ms / 1000
            try:
                sim.set_rdp_level(0)
            except SimFlashFault:
                self.result = ERR_VENDOR
            self.resets_after_status = True
        else:
            seconds = self._write(pending.address, pending.data)
        return seconds, math.ceil(seconds * 1000)

    def _in_selected(self, address: int) -> bool:
        """A strict ROM takes addresses only inside the selected alternate's layout."""
        if self.board.quirks.get("address-pointer") != "selected-alternate":
            return True
        start, end = self.board.regions[self.alternates.get(0, 0)]
        return start <= address < end

    def _mapped(self, address: int) -> bool:
        chip = self.sim.chip
        if chip.flash.contains(address) or chip.ram[0] <= address < chip.ram[1]:
            return True
        ob = chip.option_bytes
        if ob.address <= address < ob.address + ob.size:
            return True
        if any(start <= address < start + len(buf) for start, buf in self._extra_regions()):
            return True
        return any(base <= address < base + len(value)
                   for base, value in self.sim.system_bytes().items())

    def _erase_page(self, address: int) -> float:
        flash = self.sim.chip.flash
        if not flash.contains(address):
            self.result = ERR_TARGET
            return _COMMAND_S
        block = flash.block_at(address)
        seconds = self.sim.chip.timing.erase_seconds(block.size)
        if self.sim.rdp_level >= 1:
            self.result = ERR_VENDOR
        elif self._fault("erase", block.size) is not None:
            self.result = ERR_UNKNOWN
        else:
            try:
                self.sim.erase_block(block, timed=False)
            except SimFlashFault as fault:
                # AN3156: erasing a write-protected page reports no error.
                self.result = OK if fault.reason == "write-protected" else ERR_ERASE
        return seconds

    def _write(self, address: int, data: bytes) -> float:
        chip = self.sim.chip
        seconds = chip.timing.program_seconds(len(data), chip.flash.write_unit)
        ob = chip.option_bytes
        if address == ob.address and len(data) == ob.size:
            try:
                self.sim.write_option_bytes(data)
            except SimFlashFault:
                self.result = ERR_WRITE
            self.resets_after_status = True  # option bytes reload through a system reset
            return 0.05
        for start, buffer in self._extra_regions():
            if start <= address and address + len(data) <= start + len(buffer):
                offset = address - start
                for i, byte in enumerate(data):
                    buffer[offset + i] &= byte
                return seconds
        if chip.ram[0] <= address and address + len(data) <= chip.ram[1]:
            self.sim.write_ram(address, data)
            return control_transfer_seconds(0) / 10
        if not chip.flash.contains(address, len(data)):
            self.result = ERR_TARGET
            return _COMMAND_S
        if self.sim.rdp_level >= 1:
            self.result = ERR_VENDOR
            return _COMMAND_S
        fault = self._fault("write", len(data))
        if fault == "nack":
            self.result = ERR_UNKNOWN
            return seconds
        payload = bytes([data[0] ^ 0x01]) + data[1:] if fault == "corrupt" else data
        self._program(address, payload)
        return seconds

    def _program(self, address: int, data: bytes) -> None:
        """Program and verify as the ROM does; F2/F4/F7 controllers have no erased check."""
        strict = self.sim.chip.controller not in ("f2", "f4", "f7")
        try:
            self.sim.program(address, data, require_erased=strict, timed=False)
        except SimFlashFault as fault:
            # AN3156: writing write-protected pages reports no error.
            if fault.reason != "write-protected":
                self.result = ERR_WRITE
            return
        if self.sim.read_flash(address, len(data), debug=False) != data \
                and self.result == OK:
            self.result = ERR_VERIFY


def plug_rom_dfu(world: SimulationWorld, backend: SimUsbBackend, device: str, chip: Chip, *,
                 serial: str | None = None, port_path: str | None = None) -> SimDfuBoard:
    """The ROM DFU board of ``device``, plugged into ``backend`` on first use.

    The serial is the profile's ``serial`` quirk, else the one the link asks
    for (so a rehearsal finds the board its manifest names), else derived from
    the UID as the ROM does. The port path likewise: quirk, link, or the next
    free port on bus 1.
    """
    boards: dict[str, SimDfuBoard] = world.shared("dfu-boards", dict)

    def build() -> SimDfuBoard:  # runs under the world's lock: ports are handed out once
        sim = world.chip(device, chip)
        quirks = world.profile(device).quirks
        chosen_serial = str(quirks.get("serial") or serial or rom_serial(sim.uid))
        path = quirks.get("port-path") or port_path
        if path:
            bus, ports = _parse_port_path(str(path))
        else:
            used = {b.port_path for b in boards.values()}
            index = len(boards) + 1
            while _port_path(1, (index,)) in used:
                index += 1
            bus, ports = 1, (index,)
        board = SimDfuBoard(sim, backend, serial=chosen_serial, bus=bus, ports=ports,
                            quirks=quirks)
        boards[device] = board
        sim_hardware(world).attach(device, board)  # its hub port and GPIO lines, if wired
        return board

    return world.shared(f"dfu-board:{device}", build)
