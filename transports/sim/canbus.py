"""The simulated ROM bootloader as a node on a python-can ``virtual`` bus (AN3154).

:class:`CanBootloaderNode` owns one ``virtual`` bus handle on its own channel,
serves it from a thread, and answers as AN3154 (and AN2662 for the F105/F107
ROM) draw the flows, with the ST open-bootloader CAN module's choices where the
notes are thin:

* nothing is answered before the sync frame (ID 0x79); every reply carries the
  command's ID; ACK/NACK are 1-byte frames;
* Read Memory data goes out in full 8-byte frames, then the remainder one byte
  per frame, and ends with an ACK;
* Write Memory data frames (any ID) are each ACKed, then the programming ACK;
* Erase (0x43), mass erase: an ACK for the command frame and one after the
  erase — two frames, as the host-side flow of AN3154/AN2662 "Erase Memory
  command via CAN" waits for (and as canprog reads them). A page erase answers
  ACK, an extra ACK, then ACKs each full frame of eight page numbers (not a
  final partial one) and a final ACK after the erase (the open bootloader's
  page dialect; the notes only say "wait for ACK or NACK");
* Speed (0x03) is ACKed at the old rate and again at the new one.

Other recorded dialects, chosen by a device profile's ``can-erase`` quirk:
``open-bootloader`` answers a mass erase with a third, final ACK (ST's
open-bootloader CAN module does); ``fork`` answers Erase the way the stm32flash
CAN fork expects: mass erase with one ACK after the work, page erase with an
ACK for every page frame and a final one.

Wire time per frame: 47 + 8·DLC bits plus the worst-case stuff bits (one per
four of the 34 + 8·DLC stuffable bits), at the node's bit rate.
"""

from __future__ import annotations

import threading
from collections.abc import Generator

import can

from transports.sim import bootloader as bl
from transports.sim.bootloader import ACK, NACK, BootloaderCore, WireFault

__all__ = ["SYNC_ID", "CanBootloaderNode", "frame_bits", "node_on"]

SYNC_ID = 0x79
_SPEEDS = {1: 125_000, 2: 250_000, 3: 500_000, 4: 1_000_000}

#: Live nodes by channel, so a test can find the node behind a session.
_NODES: dict[str, CanBootloaderNode] = {}
_NODES_LOCK = threading.Lock()


def node_on(channel: str) -> CanBootloaderNode | None:
    """The running node on ``channel``, if any."""
    with _NODES_LOCK:
        return _NODES.get(channel)


#: Receives one frame per step.
Machine = Generator[None, can.Message, None]


class _Abort(Exception):
    """The current command ends here."""


def frame_bits(dlc: int) -> int:
    """Bits on the wire for a standard data frame with ``dlc`` data bytes (worst case)."""
    return 47 + 8 * dlc + (34 + 8 * dlc - 1) // 4


class CanBootloaderNode:
    """A simulated STM32 ROM bootloader on CAN; :meth:`stop` ends its thread."""

    def __init__(self, core: BootloaderCore, channel: str, *, bitrate: int = 125_000,
                 erase_style: str = "an3154") -> None:
        self.core = core
        self.erase_style = erase_style
        self.channel = channel
        self.bitrate = bitrate
        self.dead = False
        self.bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
        self._machine = self._run()
        next(self._machine)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"sim-can {channel}",
                                        daemon=True)
        self._thread.start()
        with _NODES_LOCK:
            _NODES[channel] = self

    def session_started(self) -> None:
        """The host opened a new session: the link is back, connect faults may fire."""
        self.dead = False
        self.core.session_started()

    def _connect_fault(self, code: int) -> bool:
        """Fire an ``op: connect`` fault on the session's first command (Get Version, after
        the sync frame, which only selects the interface); True if one did."""
        fault = self.core.connect_fault()
        if fault is not None:
            self._wire_fault(code, fault)
        return fault is not None

    def _wire_fault(self, code: int, fault: WireFault) -> None:
        if fault.kind == "nack":
            self._send(code, bytes([NACK]))
        elif fault.kind == "corrupt":
            self._send(code, bytes([0xA5]))   # neither ACK nor NACK: damaged on the wire
        elif fault.kind == "link-lost":
            self.dead = True
        # timeout / brownout: the host hears nothing.

    # ------------------------------------------------------------------ plumbing

    def _serve(self) -> None:
        while not self._stop.is_set():
            message = self.bus.recv(timeout=0.05)
            if message is None or message.is_extended_id or message.is_remote_frame:
                continue
            self._charge(message.dlc)
            if self.dead or not self.core.running:
                continue
            try:
                self._machine.send(message)
            except StopIteration:  # pragma: no cover - the machine loops forever
                return

    def _charge(self, dlc: int) -> None:
        self.core.sim.clock.advance(frame_bits(dlc) / self.bitrate)

    def _send(self, ident: int, data: bytes = b"") -> None:
        self._charge(len(data))
        self.bus.send(can.Message(arbitration_id=ident, is_extended_id=False, data=data))

    def _ack(self, code: int) -> None:
        self._send(code, bytes([ACK]))

    def _nack(self, code: int) -> None:
        self._send(code, bytes([NACK]))
        raise _Abort

    def stop(self) -> None:
        """Stop serving and release the bus handle; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=2)
        self.bus.shutdown()
        with _NODES_LOCK:
            _NODES.pop(self.channel, None)

    def restart(self) -> None:
        """A reset from outside: wait for the sync frame again."""
        self.core.reset(boot0=True)
        self._machine = self._run()
        next(self._machine)

    # ------------------------------------------------------------------ the machine

    def _run(self) -> Machine:
        core = self.core
        while True:
            message = yield
            code = message.arbitration_id
            if not core.synced:
                # AN3154 §3.2: the host's ID 0x79 frame selects CAN; nothing else counts.
                if code == SYNC_ID:
                    core.synced = True
                    self.bitrate = 125_000  # the ROM (re)starts at 125 kbit/s
                    self._ack(SYNC_ID)
                continue
            if self._connect_fault(code):
                continue
            try:
                if not core.accepts(code):
                    self._nack(code)
                yield from self._command(code, bytes(message.data))
            except _Abort:
                pass
            except WireFault as fault:
                self._wire_fault(code, fault)

    def _data(self, code: int, data: bytes) -> None:
        full = len(data) - len(data) % 8
        for offset in range(0, full, 8):
            self._send(code, data[offset:offset + 8])
        for byte in data[full:]:
            self._send(code, bytes([byte]))

    def _command(self, code: int, data: bytes) -> Machine:
        """Run one command; parameters ride in the command frame and are checked before
        its ACK (AN3154: a bad address is answered with a NACK alone)."""
        core = self.core
        if code not in (bl.SPEED, bl.READ, bl.GO, bl.WRITE, bl.ERASE, bl.WRITE_PROTECT):
            self._ack(code)
        if code == bl.GET:
            self._send(code, bytes([len(core.commands)]))
            self._send(code, bytes([core.version]))
            for listed in core.commands:
                self._send(code, bytes([listed]))
            self._ack(code)
        elif code == bl.GET_VERSION:
            self._send(code, bytes([core.version]))
            self._send(code, b"\x00\x00")
            self._ack(code)
        elif code == bl.GET_ID:
            self._send(code, core.pid.to_bytes(2, "big"))
            self._ack(code)
        elif code == bl.SPEED:
            if len(data) != 1 or data[0] not in _SPEEDS:
                self._nack(code)
            self._ack(code)
            self.bitrate = _SPEEDS[data[0]]
            # The ROM waits (~300 ms) before answering at the new rate so the host can
            # switch: charged on the clock, and a short real pause for the host's reopen.
            self.core.sim.clock.advance(0.3)
            self._stop.wait(0.1)
            self._ack(code)
        elif code == bl.READ:
            self._read(code, data)
        elif code == bl.GO:
            address = self._address(code, data, 4)
            if not core.go_target(address):
                self._nack(code)
            self._ack(code)
            core.go(address)
        elif code == bl.WRITE:
            yield from self._write(code, data)
        elif code == bl.ERASE:
            yield from self._erase(code, data)
        elif code == bl.WRITE_PROTECT:
            if len(data) != 1:
                self._nack(code)
            self._ack(code)
            sectors = yield from self._items(code, data[0] + 1, ack_every_frame=True)
            core.write_protect(sectors)
            self._ack(code)
            core.self_reset()
        elif code in (bl.WRITE_UNPROTECT, bl.READOUT_PROTECT, bl.READOUT_UNPROTECT):
            if code == bl.WRITE_UNPROTECT:
                core.write_unprotect()
                self._ack(code)
            elif code == bl.READOUT_PROTECT:
                core.readout_protect()
                self._ack(code)
            else:
                self._ack(code)  # sent before the erase starts, as on USART
                core.readout_unprotect()
            core.self_reset()
        else:
            self._nack(code)

    def _address(self, code: int, data: bytes, length: int) -> int:
        if len(data) != length:
            self._nack(code)
        return int.from_bytes(data[:4], "big")

    def _read(self, code: int, data: bytes) -> None:
        address = self._address(code, data, 5)
        length = data[4] + 1
        if not self.core.readable(address, length):
            self._nack(code)
        data = self.core.read(address, length)   # a fault answers instead of the first ACK
        self._ack(code)
        self._data(code, data)
        self._ack(code)

    def _write(self, code: int, data: bytes) -> Machine:
        core = self.core
        address = self._address(code, data, 5)
        length = data[4] + 1
        flash = core.sim.geometry.contains(address)
        if not core.writable(address) or not core.writable(address + length - 1) \
                or (flash and (address % 4 or length % 4)):
            self._nack(code)
        self._ack(code)
        payload = bytearray()
        while len(payload) < length:
            frame = yield  # AN3154: data frames may carry any ID
            payload += bytes(frame.data)
            if len(payload) > length:
                self._nack(code)
            self._ack(code)
        try:
            core.write(address, bytes(payload))
        except WireFault as fault:
            if fault.kind != "corrupt":
                raise
            core.corrupt_write(address, bytes(payload))
        self._ack(code)

    def _erase(self, code: int, data: bytes) -> Machine:
        if len(data) != 1:
            self._nack(code)
        self._ack(code)
        fork = self.erase_style == "fork"
        if data[0] == 0xFF:
            self.core.mass_erase()
            self._ack(code)
            if self.erase_style == "open-bootloader":
                self._ack(code)
            return
        if not fork:
            self._ack(code)  # the open bootloader's extra ACK before the page list
        pages = yield from self._items(code, data[0] + 1, ack_every_frame=fork)
        self.core.erase_pages(pages)
        self._ack(code)

    def _items(self, code: int, count: int, *, ack_every_frame: bool) -> Generator[
            None, can.Message, list[int]]:
        items: list[int] = []
        while len(items) < count:
            frame = yield
            if frame.arbitration_id != code:
                self._nack(code)
            items += list(frame.data)
            if len(items) > count:
                self._nack(code)
            if ack_every_frame or len(frame.data) == 8:
                self._ack(code)
        return items
