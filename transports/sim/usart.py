"""USART front ends of the simulated ROM bootloader: a pty, and a pyserial URL handler.

* :class:`PtyBootloader` serves the master side of a POSIX pty from a thread;
  its :attr:`~PtyBootloader.path` (``/dev/pts/N``) is what an external tool
  such as stm32flash opens. A pty keeps neither modem lines nor the parity
  setting, so this front end never insists on parity (``stm32flash -m 8n1``).
* ``flashsim://<key>`` is a pyserial URL (:class:`SimSerial`, registered by
  :func:`register_url_handler`): in-process, and the only place where DTR and
  RTS can be observed. The endpoint behind the key is a :class:`UsartEndpoint`
  wired like the board: which line drives BOOT0 and which NRST, straight or
  inverted. Simulate mode opens this.

Wiring convention (the usual USB-UART adapter with active-low TTL pins wired
straight): an *asserted* line drives its pin low, so asserted RTS on BOOT0
means BOOT0 low and asserted DTR on NRST holds the chip in reset; ``invert``
flips a line. Releasing NRST samples BOOT0: high starts the ROM bootloader,
low the application (which answers nothing here).

Wire time is charged per byte at the port's baud rate: start bit, 8 data bits,
the parity bit when parity is on, stop bits (11 bits for 8E1).

The ``flashsim://`` board's USART is 8E1 (AN3155 §2), like the chip's: a host
that opens the port at another framing has its bytes read at 8E1 and reads
the ROM's answers at its own framing (:mod:`transports.sim.uartframe`), so a
host at 8N1 fails the way it fails on silicon instead of being served.
"""

from __future__ import annotations

import os
import select
import termios
import threading
import tty
from dataclasses import dataclass
from typing import Any

import serial
from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from transports.sim.bootloader_stream import StreamBootloader
from transports.sim.latency import LatencyTimer
from transports.sim.uartframe import CHIP_FRAMING, Framing, reframe

__all__ = [
    "PtyBootloader",
    "SimSerial",
    "UsartEndpoint",
    "Wiring",
    "endpoint",
    "register_endpoint",
    "register_url_handler",
    "unregister_endpoint",
]

_SPEEDS = {getattr(termios, f"B{rate}"): rate for rate in (
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000,
    921600, 1000000, 1152000, 1500000, 2000000) if hasattr(termios, f"B{rate}")}


@dataclass(frozen=True, slots=True, kw_only=True)
class Wiring:
    """How the adapter's modem lines reach the chip (``None``: not connected)."""

    boot0: str | None = None
    reset: str | None = None
    invert_boot0: bool = False
    invert_reset: bool = False


class UsartEndpoint:
    """A simulated board on a serial adapter: the ROM's byte stream plus BOOT0/NRST."""

    def __init__(self, stream: StreamBootloader, wiring: Wiring = Wiring(), *,
                 latency_timer_s: float | None = None) -> None:
        self.stream = stream
        self.wiring = wiring
        #: The adapter's latency timer (:mod:`transports.sim.latency`); None: replies
        #: reach the host as soon as their last byte is sent.
        self.latency = LatencyTimer(stream.core.sim.clock, latency_timer_s) \
            if latency_timer_s is not None else None
        self._reply = 0  # bytes of the reply being read, until it is drained
        self.lines = {"dtr": False, "rts": False}
        self.baudrate = 115200
        self.bits_per_byte = 11
        self.framing = CHIP_FRAMING
        self._received = bytearray()  # the ROM's answers as the host's UART sampled them
        self.in_reset = False
        # A board with BOOT0 on a modem line starts running its application;
        # one strapped into the bootloader (no BOOT0 line) starts in the ROM.
        stream.core.active = wiring.boot0 is None
        stream.charge = self._charge

    def _charge(self, nbytes: int) -> None:
        self.stream.core.sim.clock.advance(nbytes * self.bits_per_byte / self.baudrate)

    def configure(self, baudrate: int, bits_per_byte: int,
                  framing: Framing = CHIP_FRAMING) -> None:
        self.baudrate = max(1, baudrate)
        self.bits_per_byte = bits_per_byte
        self.framing = framing

    def _asserted(self, line: str | None, invert: bool) -> bool | None:
        if line is None:
            return None
        return self.lines[line] != invert

    def set_line(self, line: str, asserted: bool) -> None:
        """The host changed DTR or RTS."""
        with self.stream.lock:
            self.lines[line] = asserted
            held = self._asserted(self.wiring.reset, self.wiring.invert_reset)
            if held is None:
                return
            if held and not self.in_reset:
                self.in_reset = True
                self.stream.core.active = False
            elif not held and self.in_reset:
                self.in_reset = False
                low = self._asserted(self.wiring.boot0, self.wiring.invert_boot0)
                self.stream.hardware_reset(boot0=not low if low is not None else True)

    # ------------------------------------------------------------------ pins on GPIO

    port_path = ""  # not on a USB hub of its own (the adapter is)
    present = True
    boot0_level = True  # BOOT0 as strapped until a GPIO line drives it

    def set_boot0(self, level: bool) -> None:
        """BOOT0 on a GPIO line: its level (sampled when NRST is released)."""
        self.boot0_level = level

    def set_nrst(self, level: bool) -> None:
        """NRST on a GPIO line: low holds the chip in reset; release samples BOOT0."""
        with self.stream.lock:
            if not level and not self.in_reset:
                self.in_reset = True
                self.stream.core.active = False
            elif level and self.in_reset:
                self.in_reset = False
                self.stream.hardware_reset(boot0=self.boot0_level)

    def power_off(self) -> None:
        self.set_nrst(False)

    def power_on(self) -> None:
        self.set_nrst(True)

    def write(self, data: bytes) -> None:
        if not self.in_reset:
            self.stream.feed(reframe(data, self.framing, CHIP_FRAMING))
        else:
            self.stream.charge(len(data))

    def read(self, size: int) -> bytes:
        if self.framing == CHIP_FRAMING and not self._received:
            answer = self.stream.take(size)
        else:
            self._received += reframe(self.stream.take(), CHIP_FRAMING, self.framing)
            answer = bytes(self._received[:size])
            del self._received[:size]
        if self.latency is not None and answer:
            self._reply += len(answer)
            if not self.waiting:  # the reply's last byte: it comes with the adapter's packet
                self.latency.hold(self._reply)
                self._reply = 0
        return answer

    def set_low_latency(self, on: bool) -> None:
        """The host's driver asked for low latency (ASYNC_LOW_LATENCY)."""
        if self.latency is not None:
            self.latency.low_latency = on

    def discard_input(self) -> None:
        self.stream.take()
        self._received.clear()
        self._reply = 0

    @property
    def waiting(self) -> int:
        if self.framing == CHIP_FRAMING and not self._received:
            return len(self.stream.output)
        return len(self._received) + len(self.stream.output)


_ENDPOINTS: dict[str, UsartEndpoint] = {}
_ENDPOINTS_LOCK = threading.Lock()


def register_endpoint(key: str, target: UsartEndpoint) -> str:
    """Make ``target`` reachable as ``flashsim://<key>``; returns the URL."""
    register_url_handler()
    with _ENDPOINTS_LOCK:
        _ENDPOINTS[key] = target
    return f"flashsim://{key}"


def unregister_endpoint(key: str) -> None:
    with _ENDPOINTS_LOCK:
        _ENDPOINTS.pop(key, None)


def endpoint(key: str) -> UsartEndpoint:
    with _ENDPOINTS_LOCK:
        try:
            return _ENDPOINTS[key]
        except KeyError:
            raise SerialException(f"no simulated serial port {key!r}") from None


def register_url_handler() -> None:
    """Let ``serial.serial_for_url`` open ``flashsim://`` (module ``protocol_flashsim``)."""
    if "transports.sim" not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append("transports.sim")


class SimSerial(SerialBase):  # type: ignore[misc]
    """pyserial port class for ``flashsim://<key>``: a simulated board, in process."""

    is_open: bool
    _endpoint: UsartEndpoint

    def open(self) -> None:
        if self._port is None:
            raise SerialException("port must be configured before it can be used")
        if self.is_open:
            raise SerialException("port already open")
        url = str(self._port)
        if not url.startswith("flashsim://"):
            raise SerialException(f"expected a flashsim:// URL, got {url!r}")
        self._endpoint = endpoint(url[len("flashsim://"):].split("?", maxsplit=1)[0])
        self.is_open = True
        self._reconfigure_port()
        self._update_dtr_state()
        self._update_rts_state()

    def close(self) -> None:
        self.is_open = False

    def _reconfigure_port(self) -> None:
        if not self.is_open:
            return
        parity = 0 if self._parity == serial.PARITY_NONE else 1
        stop = 2 if self._stopbits == serial.STOPBITS_TWO else 1
        framing = Framing(data_bits=int(self._bytesize), parity=str(self._parity),
                          stop_bits=stop)
        self._endpoint.configure(int(self._baudrate), 1 + int(self._bytesize) + parity + stop,
                                 framing)

    def _update_dtr_state(self) -> None:
        if self.is_open:
            self._endpoint.set_line("dtr", bool(self._dtr_state))

    def _update_rts_state(self) -> None:
        if self.is_open:
            self._endpoint.set_line("rts", bool(self._rts_state))

    def _update_break_state(self) -> None:
        """A BREAK reaches the chip's RX; the ROM ignores it."""

    def _alive(self) -> UsartEndpoint:
        if not self.is_open:
            raise PortNotOpenError()
        if self._endpoint.stream.dead:
            raise SerialException("the simulated adapter disappeared (injected link-lost)")
        return self._endpoint

    @property
    def in_waiting(self) -> int:
        return self._alive().waiting

    def read(self, size: int = 1) -> bytes:
        # The simulated chip answers synchronously: what is not here now never comes
        # within this read's timeout.
        return self._alive().read(size)

    def write(self, data: Any) -> int:
        payload = bytes(data)
        self._alive().write(payload)
        return len(payload)

    def reset_input_buffer(self) -> None:
        self._alive().discard_input()

    def set_low_latency_mode(self, low_latency_settings: bool) -> None:
        """pyserial's POSIX call: TIOCSSERIAL with ASYNC_LOW_LATENCY, here the adapter's timer."""
        self._alive().set_low_latency(bool(low_latency_settings))

    def reset_output_buffer(self) -> None:
        self._alive()

    def flush(self) -> None:
        self._alive()

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True


class PtyBootloader:
    """The ROM bootloader behind a pty: open :attr:`path` with any serial tool.

    The serving thread runs until :meth:`close`; the slave side stays open here
    too, so a tool that closes and reopens the port finds the chip as it left it.
    """

    def __init__(self, stream: StreamBootloader, *, bits_per_byte: int | None = None,
                 latency_timer_s: float | None = None) -> None:
        self.stream = stream
        #: Wire pacing per byte; None: from the termios settings (a pty drops parity,
        #: so ``11`` paces as 8E1 would on a real port).
        self.bits_per_byte = bits_per_byte
        #: An adapter's latency timer between the chip and the pty. A pty has no
        #: TIOCSSERIAL, so no host can lower it here: a test gives the period the
        #: host would have got on hardware.
        self.latency = LatencyTimer(stream.core.sim.clock, latency_timer_s) \
            if latency_timer_s is not None else None
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        stream.core.active = True
        stream.charge = self._charge
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"sim-pty {self.path}",
                                        daemon=True)
        self._thread.start()

    def _charge(self, nbytes: int) -> None:
        try:
            attrs = termios.tcgetattr(self._slave)
        except termios.error:
            return
        baud = _SPEEDS.get(attrs[5], 115200)
        parity = 1 if attrs[2] & termios.PARENB else 0
        stop = 2 if attrs[2] & termios.CSTOPB else 1
        bits = self.bits_per_byte or 9 + parity + stop
        self.stream.core.sim.clock.advance(nbytes * bits / baud)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._master, 4096)
            except OSError:
                return
            if not data:
                continue
            self.stream.feed(data)
            answer = self.stream.take()
            if answer:
                if self.latency is not None:
                    self.latency.hold(len(answer))
                try:
                    os.write(self._master, answer)
                except OSError:
                    return

    def close(self) -> None:
        """Stop serving and release the pty; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> PtyBootloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
