"""The byte-stream half of the simulated ROM: AN3155 (USART) and AN4221 (I2C) framing.

:class:`StreamBootloader` is fed the bytes the host sends and accumulates the
bytes the chip answers in :attr:`StreamBootloader.output`. It is a generator
state machine, so it runs synchronously inside whichever front end feeds it (a
pty thread, a pyserial URL handler, an SMBus object) and is strict like
silicon: a bad complement or checksum is NACKed and aborts the command, a
command the version does not list (or that readout protection forbids) is
NACKed on its command byte.

USART and I2C differ only where AN4221 §2.4 says so: no 0x7F activation, a
1-byte Get Version reply, the Extended Erase count and the Write Protect count
each checked and ACKed on their own, and BUSY (0x76) answers to status polls
while a no-stretch command works (:attr:`busy_polls`).

Faults: ``timeout`` leaves a command unanswered (during Read Memory the reply
stops half way: bytes dropped on the wire), ``nack`` refuses it, ``link-lost``
silences the chip for good, ``corrupt`` programs one flipped bit.

Wire time (``charge``) is paid per byte in both directions; flash time is
charged by the :class:`~transports.sim.chip.SimChip` itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from functools import reduce
from operator import xor

from transports.sim import bootloader as bl
from transports.sim.bootloader import ACK, NACK, BootloaderCore, Link, WireFault

#: What a ``corrupt`` fault puts on the wire where a status byte belongs.
GARBLED = 0xA5

__all__ = ["StreamBootloader"]

#: A step of the machine: yields how many bytes it needs, receives them.
Machine = Generator[int, bytes, None]

_NO_STRETCH = frozenset({bl.WRITE_NS, bl.ERASE_NS, bl.WRITE_PROTECT_NS, bl.WRITE_UNPROTECT_NS,
                         bl.READOUT_PROTECT_NS, bl.READOUT_UNPROTECT_NS, bl.CHECKSUM})


class _Abort(Exception):
    """The current command ends here (after a NACK, or silently after a fault)."""


def _xor(data: bytes) -> int:
    return reduce(xor, data, 0)


class StreamBootloader:
    """One simulated ROM bootloader speaking a byte stream (USART or I2C)."""

    def __init__(self, core: BootloaderCore, link: Link,
                 charge: Callable[[int], None] | None = None) -> None:
        if link is Link.CAN:
            raise ValueError("CAN is frame based; use transports.sim.canbus")
        self.core = core
        self.link = link
        self.charge = charge or (lambda nbytes: None)
        self.output = bytearray()
        #: I2C: status polls still to be answered BUSY before the pending status byte.
        self.busy_polls = 0
        #: Set by a ``link-lost`` fault: the chip no longer answers (until the host
        #: connects again: the link is back for a new session).
        self.dead = False
        self.lock = threading.RLock()
        self._pending = bytearray()
        self._machine = self._run()
        self._want = next(self._machine)

    # ------------------------------------------------------------------ feeding

    def feed(self, data: bytes) -> None:
        """The host sent ``data``."""
        with self.lock:
            self.charge(len(data))
            if self.dead or not self.core.running:
                return
            self._pending += data
            while len(self._pending) >= self._want:
                chunk = bytes(self._pending[:self._want])
                del self._pending[:self._want]
                self._want = self._machine.send(chunk)
                if self._stopped():
                    self._pending.clear()
                    break

    def _stopped(self) -> bool:
        """Go or a reset into the application ended the ROM session."""
        return not self.core.running

    def take(self, limit: int | None = None) -> bytes:
        """Remove and return up to ``limit`` answered bytes."""
        with self.lock:
            count = len(self.output) if limit is None else min(limit, len(self.output))
            data = bytes(self.output[:count])
            del self.output[:count]
            return data

    def hardware_reset(self, *, boot0: bool) -> None:
        """NRST released: the ROM starts afresh when BOOT0 selects it, else the app runs."""
        with self.lock:
            self.core.reset(boot0=boot0)
            self.dead = False
            self.restart()

    def session_started(self) -> None:
        """The host opened a new session: the link is back, connect faults may fire."""
        with self.lock:
            self.dead = False
            self.core.session_started()

    def _connect_fault(self) -> bool:
        """Fire an ``op: connect`` fault on the session's first command (after the USART's
        0x7F, which a synced ROM answers with a NACK anyway); True if one did."""
        fault = self.core.connect_fault()
        if fault is not None:
            self._wire_fault(fault)
        return fault is not None

    def restart(self) -> None:
        """Forget any half-received command and wait for activation again."""
        with self.lock:
            self._pending.clear()
            self.output.clear()
            self.busy_polls = 0
            self._machine = self._run()
            self._want = next(self._machine)

    def _emit(self, *values: int | bytes) -> None:
        out = bytearray()
        for value in values:
            out += bytes([value]) if isinstance(value, int) else value
        self.charge(len(out))
        self.output += out

    # ------------------------------------------------------------------ the machine

    def _run(self) -> Machine:
        core = self.core
        while True:
            if self.link is Link.USART and not core.synced:
                # AN3155 §2: 0x7F sets the baud rate; everything else before it is ignored.
                byte = yield 1
                if byte[0] == 0x7F:
                    core.synced = True
                    if core.profile.sync_zero:
                        self._emit(0x00)
                    self._emit(ACK, ACK) if core.profile.double_ack else self._emit(ACK)
                continue
            core.synced = True
            frame = yield 2
            if self._connect_fault():
                continue
            code = frame[0]
            if frame[0] ^ frame[1] != 0xFF or not core.accepts(code):
                self._emit(NACK)
                continue
            self._emit(ACK)
            try:
                yield from self._command(code)
            except _Abort:
                pass
            except WireFault as fault:
                self._wire_fault(fault)
            # After a self-reset core.synced is false again: the loop waits for 0x7F.

    def _wire_fault(self, fault: WireFault) -> None:
        if fault.kind == "nack":
            self._emit(NACK)
        elif fault.kind == "corrupt":
            self._emit(GARBLED)     # neither ACK nor NACK: a byte damaged on the wire
        elif fault.kind == "link-lost":
            self.dead = True
        # timeout / brownout: the host hears nothing.

    def _status(self, code: int) -> None:
        """The status byte that ends a long operation; BUSY first for no-stretch codes."""
        if self.link is Link.I2C and code in _NO_STRETCH:
            self.busy_polls = 1
        self._emit(ACK)

    def _block(self, data: bytes, check: int) -> None:
        """AN3155 §2: a block is valid when its check byte matches."""
        if check != (data[0] ^ 0xFF if len(data) == 1 else _xor(data)):
            self._emit(NACK)
            raise _Abort

    def _address(self) -> Generator[int, bytes, int]:
        raw = yield 5
        self._block(raw[:4], raw[4])
        return int.from_bytes(raw[:4], "big")

    def _refuse(self) -> None:
        self._emit(NACK)
        raise _Abort

    def _command(self, code: int) -> Generator[int, bytes, None]:
        core = self.core
        if code == bl.GET:
            self._emit(len(core.commands), core.version, bytes(core.commands), ACK)
        elif code == bl.GET_VERSION:
            # AN4221 §2.3: the I2C reply is the version byte alone.
            extra = b"" if self.link is Link.I2C else b"\x00\x00"
            self._emit(core.version, extra, ACK)
        elif code == bl.GET_ID:
            self._emit(1, core.pid.to_bytes(2, "big"), ACK)
        elif code == bl.READ:
            yield from self._read()
        elif code == bl.GO:
            address = yield from self._address()
            if not core.go_target(address):
                self._refuse()
            self._emit(ACK)
            core.go(address)
        elif code in (bl.WRITE, bl.WRITE_NS):
            yield from self._write(code)
        elif code == bl.ERASE:
            yield from self._erase_legacy(code)
        elif code in (bl.EXT_ERASE, bl.ERASE_NS):
            yield from self._erase_extended(code)
        elif code in (bl.WRITE_PROTECT, bl.WRITE_PROTECT_NS):
            yield from self._write_protect(code)
        elif code in (bl.WRITE_UNPROTECT, bl.WRITE_UNPROTECT_NS):
            core.write_unprotect()
            self._status(code)
            core.self_reset()
        elif code in (bl.READOUT_PROTECT, bl.READOUT_PROTECT_NS):
            core.readout_protect()
            self._status(code)
            core.self_reset()
        elif code in (bl.READOUT_UNPROTECT, bl.READOUT_UNPROTECT_NS):
            core.fault("erase", 0)
            # AN3155 §3.12: the second ACK goes out before the option change and erase.
            self._status(code)
            core.readout_unprotect()
            core.self_reset()
        elif code == bl.CHECKSUM:
            yield from self._checksum(code)
        else:
            # Listed but not modelled (Speed, Special): answer like an unknown command.
            self._refuse()

    def _read(self) -> Generator[int, bytes, None]:
        address = yield from self._address()
        if not self.core.readable(address):
            self._refuse()
        self._emit(ACK)
        raw = yield 2
        self._block(raw[:1], raw[1])  # AN3155 §3.4: N followed by its complement
        length = raw[0] + 1
        if not self.core.readable(address, length) or not self.core.length_accepted(address,
                                                                                    length):
            self._refuse()
        try:
            data = self.core.read(address, length)
        except WireFault as fault:
            if fault.kind != "timeout":
                raise
            if self.link is Link.I2C:
                # A stalled ROM does not acknowledge its address (the host sees no reply);
                # a reply cut short would read as 0xFF, which is not what flash holds.
                return
            # Bytes dropped on the wire: the reply starts, then stops half way.
            partial = self.core.sim.read_memory(address, length // 2, debug=False)
            self._emit(ACK, partial)
            return
        self._emit(ACK, data)

    def _write(self, code: int) -> Generator[int, bytes, None]:
        core = self.core
        address = yield from self._address()
        flash = core.sim.geometry.contains(address)
        if not core.writable(address) or (flash and address % 4):
            self._refuse()
        self._emit(ACK)
        count = (yield 1)[0] + 1
        rest = yield count + 1
        self._block(bytes([count - 1]) + rest[:count], rest[count])
        data = rest[:count]
        # AN3155 §3.6: flash is programmed in whole words; hosts pad with 0xFF.
        if not core.writable(address + count - 1) or (flash and count % 4):
            self._refuse()
        try:
            core.write(address, data)
        except WireFault as fault:
            if fault.kind != "corrupt":
                raise
            core.corrupt_write(address, data)
        self._status(code)

    def _erase_legacy(self, code: int) -> Generator[int, bytes, None]:
        # AN3155 §3.7: N (pages-1), or FF 00 for the global erase.
        count = (yield 1)[0]
        if count == 0xFF:
            check = (yield 1)[0]
            if check != 0x00:
                self._refuse()
            self.core.mass_erase()
            self._status(code)
            return
        rest = yield count + 2
        self._block(bytes([count]) + rest[:-1], rest[-1])
        self.core.erase_pages(list(rest[:-1]))
        self._status(code)

    def _erase_extended(self, code: int) -> Generator[int, bytes, None]:
        # AN3155 §3.8: a 2-byte count; 0xFFFx are special codes checked by XOR of the pair.
        head = yield 2
        count = int.from_bytes(head, "big")
        if count & 0xFFF0 == 0xFFF0:
            check = (yield 1)[0]
            if check != head[0] ^ head[1]:
                self._refuse()
            bank = {0xFFFF: None, 0xFFFE: 1, 0xFFFD: 2}
            if count not in bank:
                self._refuse()
            self.core.mass_erase(bank[count])
            self._status(code)
            return
        if self.link is Link.I2C:
            # AN4221 §2.4: the count has its own checksum and ACK.
            check = (yield 1)[0]
            if check != head[0] ^ head[1]:
                self._refuse()
            self._emit(ACK)
            rest = yield 2 * (count + 1) + 1
            self._block(rest[:-1], rest[-1])
        else:
            rest = yield 2 * (count + 1) + 1
            self._block(head + rest[:-1], rest[-1])
        pages = [int.from_bytes(rest[i:i + 2], "big") for i in range(0, len(rest) - 1, 2)]
        self.core.erase_pages(pages)
        self._status(code)

    def _write_protect(self, code: int) -> Generator[int, bytes, None]:
        if self.link is Link.I2C:
            # AN4221 §2.4: N and its complement, ACKed, then the codes with their XOR.
            head = yield 2
            self._block(head[:1], head[1])
            self._emit(ACK)
            rest = yield head[0] + 2
            self._block(rest[:-1], rest[-1])
        else:
            count = (yield 1)[0]
            rest = yield count + 2
            self._block(bytes([count]) + rest[:-1], rest[-1])
        self.core.write_protect(list(rest[:-1]))
        self._status(code)
        self.core.self_reset()

    def _checksum(self, code: int) -> Generator[int, bytes, None]:
        address = yield from self._address()
        if not self.core.readable(address):
            self._refuse()
        self._emit(ACK)
        length = yield from self._address()
        crc = self.core.checksum(address, length)
        self._emit(ACK)
        self._status(code)
        value = crc.to_bytes(4, "big")
        self._emit(value, _xor(value))
