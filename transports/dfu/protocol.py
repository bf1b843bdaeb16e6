"""DFU 1.1 class requests, the state machine, and ST's DfuSe commands (AN3156).

:class:`DfuProtocol` talks to one claimed DFU interface through pyusb. It
knows the wire (requests, states, status codes) and the DfuSe command set,
and nothing about manifests or chips beyond addresses.

Every DNLOAD is followed by GETSTATUS polling (AN3156 §4): the first poll
starts the command and answers dfuDNBUSY with bwPollTimeout, the time the
host must wait before asking again; we wait exactly that and keep polling
while the device still reports busy, up to a budget.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transports.base import Progress, no_progress
from transports.dfu.usb import LinkNames, Stalled, usb_errors
from transports.errors import (
    EraseError,
    LinkLost,
    LinkTimeout,
    ProtocolError,
    ReadProtected,
    Refused,
    TransportError,
    WriteError,
)
from transports.trace import NO_TRACE, Trace

__all__ = ["DfuProtocol", "DfuState", "DfuStatus", "StatusReply"]

# DFU 1.1 §3: class requests to the interface.
_DETACH, _DNLOAD, _UPLOAD, _GETSTATUS, _CLRSTATUS, _GETSTATE, _ABORT = range(7)
_OUT, _IN = 0x21, 0xA1
# AN3156 §5: DfuSe commands carried by DNLOAD block 0.
_SET_ADDRESS, _ERASE, _READ_UNPROTECT = 0x21, 0x41, 0x92
#: dfu-util abandons a device still busy after this many zero-timeout polls.
_MAX_ZERO_POLLS = 100
#: L4 ROMs stall GETSTATUS when polled before they are done; dfu-util retries 3 times.
_MAX_BUSY_STALLS = 3
_GETSTATUS_TIMEOUT_MS = 20_000


class DfuState(enum.IntEnum):
    APP_IDLE = 0
    APP_DETACH = 1
    DFU_IDLE = 2
    DNLOAD_SYNC = 3
    DNBUSY = 4
    DNLOAD_IDLE = 5
    MANIFEST_SYNC = 6
    MANIFEST = 7
    MANIFEST_WAIT_RESET = 8
    UPLOAD_IDLE = 9
    DFU_ERROR = 10


class DfuStatus(enum.IntEnum):
    OK = 0x00
    ERR_TARGET = 0x01
    ERR_FILE = 0x02
    ERR_WRITE = 0x03
    ERR_ERASE = 0x04
    ERR_CHECK_ERASED = 0x05
    ERR_PROG = 0x06
    ERR_VERIFY = 0x07
    ERR_ADDRESS = 0x08
    ERR_NOTDONE = 0x09
    ERR_FIRMWARE = 0x0A
    ERR_VENDOR = 0x0B
    ERR_USBR = 0x0C
    ERR_POR = 0x0D
    ERR_UNKNOWN = 0x0E
    ERR_STALLEDPKT = 0x0F


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReply:
    """A DFU_GETSTATUS answer (DFU 1.1 §6.1.2): bwPollTimeout is 3 bytes, in ms."""

    status: int
    poll_ms: int
    state: int
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> StatusReply:
        if len(raw) < 6:
            raise ValueError(f"GETSTATUS answered {len(raw)} bytes, not 6")
        return cls(status=raw[0], poll_ms=int.from_bytes(raw[1:4], "little"), state=raw[4],
                   raw=bytes(raw[:6]))

    def describe(self) -> str:
        return f"{_state_name(self.state)}/{_status_name(self.status)}"


def _state_name(state: int) -> str:
    try:
        return f"dfu state {DfuState(state).name}"
    except ValueError:
        return f"dfu state {state}"


#: DFU 1.1 §6.1.2 names of the states, as dfu-util prints them.
_SPEC_STATES = ("appIDLE", "appDETACH", "dfuIDLE", "dfuDNLOAD-SYNC", "dfuDNBUSY",
                "dfuDNLOAD-IDLE", "dfuMANIFEST-SYNC", "dfuMANIFEST", "dfuMANIFEST-WAIT-RESET",
                "dfuUPLOAD-IDLE", "dfuERROR")


def _spec_state(state: int) -> str:
    """The state as DFU 1.1 writes it: ``dfuDNBUSY``, ``appIDLE``."""
    return _SPEC_STATES[state] if 0 <= state < len(_SPEC_STATES) else f"state {state}"


def _status_name(status: int) -> str:
    try:
        return DfuStatus(status).name
    except ValueError:
        return f"status 0x{status:02X}"


_WRITE_FAILURES = {DfuStatus.ERR_WRITE, DfuStatus.ERR_PROG, DfuStatus.ERR_VERIFY,
                   DfuStatus.ERR_CHECK_ERASED, DfuStatus.ERR_TARGET, DfuStatus.ERR_ADDRESS}
_ERASE_FAILURES = {DfuStatus.ERR_ERASE, DfuStatus.ERR_CHECK_ERASED, DfuStatus.ERR_TARGET,
                   DfuStatus.ERR_ADDRESS}


class DfuProtocol:
    """One claimed DfuSe interface: requests, polling, recovery, commands.

    Args:
        device: the pyusb device, configured and with the interface claimed.
        interface: the DFU interface number (wIndex of every request).
        transfer_size: bytes per DNLOAD/UPLOAD (the functional descriptor's wTransferSize).
        timeout_ms: per control transfer.
        sleep: how to wait bwPollTimeout (the session clock's ``sleep``).
        busy_budget_s: the longest a command may keep the device busy.
    """

    def __init__(self, device: Any, *, interface: int, transfer_size: int, timeout_ms: int,
                 sleep: Callable[[float], None], names: LinkNames,
                 busy_budget_s: float = 120.0, trace: Trace = NO_TRACE) -> None:
        self.device = device
        #: Each request and its outcome (``-v``), the transfers' bytes (``-vv``).
        self.trace = trace
        self.interface = interface
        self.transfer_size = transfer_size
        self.timeout_ms = timeout_ms
        self.sleep = sleep
        self.names = names
        self.busy_budget_s = busy_budget_s
        #: A ROM still erasing NAKs the next GETSTATUS until it is done (F4 ROMs);
        #: pydfu gives GETSTATUS 20 s for that reason, and so do we.
        self.getstatus_timeout_ms = _GETSTATUS_TIMEOUT_MS
        self.polls = 0

    # ------------------------------------------------------------------ requests

    def _out(self, request: int, value: int, data: bytes, what: str,
             detail: str = "") -> None:
        started = time.monotonic() if self.trace.commands else 0.0
        if self.trace.raw:
            self.trace.transfer("out", data, what=f"control 0x{request:02X} wValue {value}")
        try:
            with usb_errors(what, self.names, stall_is_error=False):
                self.device.ctrl_transfer(_OUT, request, value, self.interface, data,
                                          timeout=self.timeout_ms)
        except Stalled:
            if self.trace.commands:
                self.trace.command(what, "STALL", started=started, detail=detail)
            raise
        if self.trace.commands:
            sent = f"{len(data)} B" if data else ""
            self.trace.command(what, "ok", started=started,
                               detail=" ".join(part for part in (detail, sent) if part))

    def _in(self, request: int, value: int, length: int, what: str,
            timeout_ms: int | None = None, *, traced: bool = True) -> bytes:
        started = time.monotonic() if self.trace.commands else 0.0
        try:
            with usb_errors(what, self.names, stall_is_error=False):
                data = bytes(self.device.ctrl_transfer(
                    _IN, request, value, self.interface, length,
                    timeout=timeout_ms or self.timeout_ms))
        except Stalled:
            if self.trace.commands:
                self.trace.command(what, "STALL", started=started)
            raise
        if self.trace.raw:
            self.trace.transfer("in", data, what=f"control 0x{request:02X} wValue {value}")
        if self.trace.commands and traced:
            self.trace.command(what, f"{len(data)} B", started=started)
        return data

    def get_status(self) -> StatusReply:
        self.polls += 1
        started = time.monotonic() if self.trace.commands else 0.0
        raw = self._in(_GETSTATUS, 0, 6, "DFU_GETSTATUS",
                       max(self.timeout_ms, self.getstatus_timeout_ms), traced=False)
        try:
            reply = StatusReply.parse(raw)
        except ValueError as error:
            raise self._protocol(str(error), "DFU_GETSTATUS", raw) from error
        if self.trace.commands:
            self.trace.command("DFU_GETSTATUS", f"{_spec_state(reply.state)} "
                                                f"{_status_name(reply.status)} "
                                                f"{reply.poll_ms} ms", started=started)
        return reply

    def get_state(self) -> int:
        return self._in(_GETSTATE, 0, 1, "DFU_GETSTATE")[0]

    def clear_status(self) -> None:
        self._out(_CLRSTATUS, 0, b"", "DFU_CLRSTATUS")

    def abort(self) -> None:
        self._out(_ABORT, 0, b"", "DFU_ABORT")

    # ------------------------------------------------------------------ state handling

    def _protocol(self, message: str, command: str, reply: bytes | None = None,
                  hint: str | None = None) -> ProtocolError:
        return ProtocolError(f"{message} on {self.names.device}", command=command, reply=reply,
                             hint=hint, transport=self.names.link, device=self.names.device)

    def ensure_idle(self) -> None:
        """Bring the device to dfuIDLE: CLRSTATUS out of dfuERROR, ABORT elsewhere.

        A device that keeps answering dfuERROR refuses to work (``nack``); one that
        stays in any other state does not follow the protocol.
        """
        last: StatusReply | None = None
        for _ in range(4):
            try:
                reply = last = self.get_status()
            except Stalled:
                continue  # the stall itself moved the device to dfuERROR: ask again
            if reply.state == DfuState.DFU_IDLE:
                return
            try:
                if reply.state == DfuState.DFU_ERROR:
                    self.clear_status()
                elif reply.state == DfuState.DNBUSY:
                    self.sleep(reply.poll_ms / 1000)
                else:
                    self.abort()
            except Stalled:
                continue
        if last is not None and last.state == DfuState.DFU_ERROR:
            raise Refused(f"the DFU device of {self.names.device} keeps reporting an error "
                          f"(status {last.status}) and does not return to dfuIDLE",
                          command="DFU_CLRSTATUS", reply=last.raw,
                          hint="power-cycle the board with BOOT0 high",
                          transport=self.names.link, device=self.names.device)
        raise self._protocol("the DFU device does not return to dfuIDLE", "DFU_ABORT",
                             hint="power-cycle the board with BOOT0 high")

    def _recover(self) -> None:
        """After a failed command: clear dfuERROR so the session can go on."""
        try:
            self.ensure_idle()
        except (TransportError, Stalled):
            pass  # the caller is already raising the error that matters

    def wait_done(self, command: str, address: int | None = None) -> StatusReply:
        """Poll GETSTATUS until the command is done, honouring bwPollTimeout."""
        waited = 0.0
        zero_polls = stalls = 0
        last_poll = 0.0
        busy_seen = False
        while True:
            try:
                reply = self.get_status()
            except LinkTimeout:
                # A GETSTATUS held past its timeout by a ROM that said it is busy (a
                # 32 s F4 mass erase outlasts the 20 s): the operation goes on; ask again.
                # Before the ROM has said so, silence is a dead link.
                waited += max(self.timeout_ms, self.getstatus_timeout_ms) / 1000
                if not busy_seen or waited > self.busy_budget_s:
                    raise
                continue
            except Stalled:
                stalls += 1
                if stalls > _MAX_BUSY_STALLS:
                    self._recover()
                    raise self._protocol(f"{command}: GETSTATUS stalled {stalls} times",
                                         command) from None
                # dfu-util reuses the last poll timeout; doubling it lets a ROM
                # that under-reports its busy time finish.
                backoff = max(last_poll, 0.005) * 2 ** (stalls - 1)
                self.sleep(backoff)
                waited += backoff
                continue
            if reply.state in (DfuState.DNBUSY, DfuState.DNLOAD_SYNC):
                busy_seen = True
                last_poll = reply.poll_ms / 1000
                zero_polls = zero_polls + 1 if reply.poll_ms == 0 else 0
                if zero_polls > _MAX_ZERO_POLLS or waited + last_poll > self.busy_budget_s:
                    raise LinkTimeout(
                        f"{command} kept the DFU device of {self.names.device} busy for "
                        f"{waited:.1f} s", hint="power-cycle the board and try again",
                        transport=self.names.link, device=self.names.device)
                self.sleep(last_poll)
                waited += last_poll
                continue
            if reply.state == DfuState.DFU_ERROR or reply.status != DfuStatus.OK:
                self._recover()
                raise self._status_error(reply, command, address)
            if reply.state in (DfuState.DNLOAD_IDLE, DfuState.MANIFEST, DfuState.DFU_IDLE):
                return reply
            self._recover()
            raise self._protocol(f"{command}: unexpected {reply.describe()}", command, reply.raw)

    def _status_error(self, reply: StatusReply, command: str,
                      address: int | None) -> TransportError:
        where = f" at 0x{address:08X}" if address is not None else ""
        names = {"transport": self.names.link, "device": self.names.device}
        status = reply.status
        message = f"{command}{where} failed on {self.names.device}: {_status_name(status)}"
        if status == DfuStatus.ERR_VENDOR:  # AN3156: errVENDOR = read protection active
            return ReadProtected(message + " (readout protection is active)",
                                 hint="remove readout protection (option-bytes: {rdp: 0}); "
                                      "this mass-erases the chip", **names)
        if command == "erase" and status in _ERASE_FAILURES:
            return EraseError(message, address=address,
                              hint="check the address lies in erasable flash", **names)
        if command == "write" and status in _WRITE_FAILURES:
            hint = ("the flash there was not erased: erase before writing (erase: used)"
                    if status in (DfuStatus.ERR_VERIFY, DfuStatus.ERR_WRITE,
                                  DfuStatus.ERR_PROG, DfuStatus.ERR_CHECK_ERASED)
                    else "the address is outside what the device accepts")
            return WriteError(message, address=address, hint=hint, **names)
        return Refused(message, command=command, reply=reply.raw, **names)

    def _command(self, command: str, block: int, data: bytes,
                 address: int | None) -> StatusReply:
        try:
            self._out(_DNLOAD, block, data, f"DFU_DNLOAD ({command})",
                      f"0x{address:08X}" if address is not None and self.trace.commands
                      else "")
        except Stalled:
            reply = self._status_after_stall()
            self._recover()
            raise self._status_error(reply, command, address) from None
        return self.wait_done(command, address)

    def _status_after_stall(self) -> StatusReply:
        try:
            return self.get_status()
        except Stalled:
            return StatusReply(status=DfuStatus.ERR_STALLEDPKT, poll_ms=0,
                               state=DfuState.DFU_ERROR, raw=b"")

    # ------------------------------------------------------------------ DfuSe commands

    def set_address(self, address: int) -> None:
        self._command("set-address", 0, bytes([_SET_ADDRESS]) + address.to_bytes(4, "little"),
                      address)

    def erase_page(self, address: int) -> None:
        """Erase the page or sector holding ``address`` (AN3156 §5.3)."""
        self._command("erase", 0, bytes([_ERASE]) + address.to_bytes(4, "little"), address)

    def mass_erase(self) -> None:
        self._command("erase", 0, bytes([_ERASE]), None)

    def read_unprotect(self) -> None:
        """Send Read Unprotect; the ROM mass-erases and resets (it is gone afterwards)."""
        self._out(_DNLOAD, 0, bytes([_READ_UNPROTECT]), "DFU_DNLOAD (read-unprotect)")
        self._first_status_then_reset("read-unprotect")

    def write_and_reset(self, address: int, data: bytes) -> None:
        """Write a region whose write resets the chip (the option bytes)."""
        self.set_address(address)
        self._out(_DNLOAD, 2, data, "DFU_DNLOAD (option bytes)")
        self._first_status_then_reset("option-bytes")

    def _first_status_then_reset(self, command: str) -> None:
        # AN3156 §5.4: the ROM answers dfuDNBUSY, then resets; no second status comes.
        try:
            reply = self.get_status()
        except (LinkLost, LinkTimeout):
            return
        except Stalled:
            reply = self._status_after_stall()
        if reply.state != DfuState.DNBUSY:
            self._recover()
            raise self._status_error(reply, command, None)

    def download(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        """Write ``data`` at ``address`` in wTransferSize blocks.

        AN3156 §5.2 places block n at pointer + (n - 2) * wLength of *that*
        request, so a shorter last block is sent as block 2 after a new Set
        Address Pointer.
        """
        size, position = self.transfer_size, 0
        while position < len(data):
            self.set_address(address + position)
            block = 2
            while position < len(data) and block <= 0xFFFF:
                chunk = data[position:position + size]
                if len(chunk) < size and block > 2:
                    break
                self._command("write", block, chunk, address + position)
                position += len(chunk)
                block += 1
                progress(position, len(data))

    def upload(self, address: int, length: int, progress: Progress = no_progress) -> bytes:
        """Read ``length`` bytes from ``address`` (set address, abort to idle, UPLOAD n ≥ 2)."""
        size, out = self.transfer_size, bytearray()
        while len(out) < length:
            if out:
                self.abort()  # DNLOAD (set address) is refused in dfuUPLOAD-IDLE
            self.set_address(address + len(out))
            self.abort()  # dfu-util: UPLOAD starts from dfuIDLE
            block = 2
            while len(out) < length and block <= 0xFFFF:
                want = min(size, length - len(out))
                if want < size and block > 2:
                    break
                out += self._upload_block(block, want, address + len(out))
                block += 1
                progress(len(out), length)
        self.abort()
        return bytes(out)

    def _upload_block(self, block: int, length: int, address: int) -> bytes:
        try:
            data = self._in(_UPLOAD, block, length, "DFU_UPLOAD")
        except Stalled:
            reply = self._status_after_stall()
            self._recover()
            raise self._status_error(reply, "read", address) from None
        if len(data) != length:
            self._recover()
            raise self._protocol(f"read at 0x{address:08X}: {len(data)} of {length} bytes came "
                                 f"back (end of the region)", "read")
        return data

    def leave(self, address: int) -> None:
        """Leave DFU: jump to ``address`` (AN3156 §5.5: zero-length DNLOAD, GETSTATUS)."""
        self.set_address(address)
        try:
            self._out(_DNLOAD, 2, b"", "DFU_DNLOAD (leave)")
        except Stalled:
            reply = self._status_after_stall()
            self._recover()
            raise self._status_error(reply, "leave", address) from None
        try:
            reply = self.get_status()
        except (LinkLost, LinkTimeout, Stalled):
            return  # the device already left: manifestation is not tolerant
        if reply.state not in (DfuState.MANIFEST, DfuState.MANIFEST_SYNC,
                               DfuState.MANIFEST_WAIT_RESET):
            self._recover()
            raise self._status_error(reply, "leave", address)
