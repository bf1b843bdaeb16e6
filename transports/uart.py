"""``kind: uart`` — the STM32 ROM bootloader over a serial port (AN3155).

The port comes from the run's endpoint provider: on hardware
:func:`serial.serial_for_url`, so device paths, COM ports, ``rfc2217://`` and
``socket://`` all work; in a rehearsal the simulated board's ``flashsim://``
port, opened and driven by the very same code. 8E1 at 115200 baud by
default.

BOOT0 and NRST may hang on the adapter's RTS and DTR (``boot0: rts``,
``reset: dtr``). An asserted line drives its pin low — the usual USB-UART
adapter wired straight — so entering the bootloader de-asserts the BOOT0 line
and pulses the reset line; ``invert-boot0`` / ``invert-reset`` flip a line.
Fixtures wired otherwise give stm32flash-style sequences instead
(``entry-sequence: "-dtr,rts,-rts"``: signals ``[-]rts``, ``[-]dtr``, ``brk``;
``,`` waits 100 ms, ``&`` does not; ``rts`` asserts the line).
"""

from __future__ import annotations

import errno
import os
import select
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

import serial

from transports.base import Capability, LinkRequest, SpeedModel
from transports.chips import Chip
from transports.endpoints import WALL_CLOCK, Clock
from transports.errors import ConnectError, EnvironmentProblem, LinkLost
from transports.gpio import GpioBackend, GpiodBackend, LineSpec, TargetPins
from transports.lowlatency import LowLatency, Outcome, request_low_latency
from transports.sysboot.framing import (
    ACK,
    NACK,
    BadReply,
    Block,
    Nack,
    NoReply,
    Prepared,
    serial_block,
    then_ack,
)
from transports.sysboot.transport import (
    BASE_CAPABILITIES,
    ROM_CHECKSUM_BYTES_PER_S,
    BootloaderSession,
)
from transports.trace import NO_TRACE, Trace

__all__ = ["UsartFraming", "UsartTransport", "parse_sequence"]

try:
    import termios

    from serial.serialposix import Serial as _PosixSerial

    _SETTINGS_ERRORS: tuple[type[Exception], ...] = (ValueError, termios.error)
except ImportError:  # pragma: no cover - not POSIX
    _PosixSerial = None
    _SETTINGS_ERRORS = (ValueError,)
_PORT_ERRORS = (serial.SerialException, OSError, *_SETTINGS_ERRORS)

_SEQUENCE = r"^(-?(rts|dtr|brk|boot0|nrst))?([,&](-?(rts|dtr|brk|boot0|nrst))?)*$"
_SIGNALS = ("rts", "dtr", "brk", "boot0", "nrst")
#: A BOOT0 or NRST line on a GPIO chip (docs/architecture.md, "Hardware control").
_GPIO_LINE: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["gpio"],
    "properties": {"gpio": {
        "type": "object", "additionalProperties": False, "required": ["chip", "line"],
        "properties": {
            "chip": {"type": "string", "minLength": 1,
                     "description": "gpiochip label (pinctrl-rp1) or path (/dev/gpiochip0)"},
            "line": {"oneOf": [{"type": "string", "minLength": 1},
                               {"type": "integer", "minimum": 0, "maximum": 1023}]},
            "active-low": {"type": "boolean"}}}}}
_SYNC_TIMEOUT = 0.5   # stm32flash's serial read timeout
_SHORT = 1.0
_PULSE = 0.1          # reset pulse and stm32flash's ',' delay
_SETTLE = 0.1         # ROM start-up after NRST is released

#: One step of a line sequence: (line, asserted) or ("brk", True), then a delay.
Signal = tuple[str, bool, float]


def parse_sequence(text: str) -> tuple[Signal, ...]:
    """Parse an stm32flash ``-i`` style sequence of ``rts``/``dtr``/``brk`` signals.

    ``boot0`` (high) and ``nrst`` (held in reset) name the target's pins
    whatever drives them, a modem line or a GPIO line, so one sequence serves
    both kinds of fixture.
    """
    signals: list[Signal] = []
    token = ""
    for char in text + "&":
        if char in ",&":
            delay = _PULSE if char == "," else 0.0
            if token:
                line = token.lstrip("-")
                if line not in _SIGNALS:
                    raise ValueError(f"unknown signal {token!r} (use rts, dtr, brk, boot0 "
                                     f"or nrst)")
                signals.append((line, not token.startswith("-"), delay))
            else:
                signals.append(("", False, delay))
            token = ""
        else:
            token += char
    if signals and signals[-1] == ("", False, 0.0):
        signals.pop()
    return tuple(signals)


def _uses_gpio(options: Mapping[str, Any]) -> bool:
    return any(isinstance(options.get(name), Mapping) for name in ("boot0", "reset"))


def _gpio_pins(options: Mapping[str, Any], backend: GpioBackend | None, consumer: str,
               clock: Clock) -> TargetPins | None:
    """BOOT0/NRST given as ``{gpio: …}``: one line request, on ``backend`` (else libgpiod)."""
    specs: dict[str, LineSpec] = {}
    for name, role, active_low, open_drain in (("boot0", "boot0", False, False),
                                              ("reset", "nrst", True, True)):
        value = options.get(name)
        if isinstance(value, Mapping):
            line = value["gpio"]
            specs[role] = LineSpec(chip=str(line["chip"]), line=line["line"],
                                   active_low=bool(line.get("active-low", active_low)),
                                   open_drain=open_drain)
    if not specs:
        return None
    return TargetPins(backend if backend is not None else GpiodBackend(), consumer,
                      nrst=specs.get("nrst"), boot0=specs.get("boot0"), sleep=clock.sleep,
                      monotonic=clock.monotonic, pulse_s=_PULSE, settle_s=_SETTLE)


class UsartFraming:
    """AN3155 framing on a pyserial port, plus BOOT0/NRST handling."""

    version_reply_length = 3
    read_data_acked = False

    def __init__(self, port: serial.SerialBase, *, name: str, options: Mapping[str, Any],
                 clock: Clock = WALL_CLOCK, double_ack: bool = False,
                 gpio: GpioBackend | None = None, consumer: str = "flashrunner") -> None:
        self.port = port
        #: Raw transfers go here with ``-vv`` (the sysboot transport sets it).
        self.trace: Trace = NO_TRACE
        #: The ROM answers 0x7F with two ACKs (chip data ``usart-double-ack``: L412/L422).
        self.double_ack = double_ack
        self.name = name
        self.clock = clock
        self.sleep = clock.sleep
        self.boot0 = _line(options.get("boot0", "none"))
        self.reset_line = _line(options.get("reset", "none"))
        #: BOOT0/NRST on GPIO lines, held for the session (``None``: modem lines only).
        self.pins = _gpio_pins(options, gpio, consumer, clock)
        self.invert_boot0 = bool(options.get("invert-boot0", False))
        self.invert_reset = bool(options.get("invert-reset", False))
        self.entry = parse_sequence(options["entry-sequence"]) \
            if "entry-sequence" in options else None
        self.exit = parse_sequence(options["exit-sequence"]) \
            if "exit-sequence" in options else None
        parity_bits = 0 if port.parity == serial.PARITY_NONE else 1
        self.byte_time = (10 + parity_bits) / float(port.baudrate)
        #: The open POSIX port's descriptor, read and written directly (see :meth:`_read`).
        self._fd: int | None = None
        #: What asking the adapter for low latency did (:mod:`transports.lowlatency`).
        self.low_latency = LowLatency(outcome=Outcome.NOT_ASKED)
        self._ask_low_latency = bool(options.get("low-latency", True))

    # ------------------------------------------------------------------ bytes

    def _refused(self, error: object) -> ConnectError:
        return ConnectError(f"serial port {self.name} refused its settings: {error}",
                            hint="a pty keeps no parity: use parity: none; otherwise "
                                 "check the baud rate is one the adapter supports")

    def _io(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except _SETTINGS_ERRORS as error:
            raise self._refused(error) from error
        except (serial.SerialException, OSError) as error:
            raise LinkLost(f"serial port {self.name} failed: {error}",
                           hint="check the adapter is still plugged in") from error

    def _lost(self, what: str, error: object) -> LinkLost:
        return LinkLost(f"serial port {self.name} failed: {what}: {error}",
                        hint="check the adapter is still plugged in")

    def _write(self, data: bytes) -> None:
        if self.trace.raw:
            self.trace.transfer("out", data, what="tx")
        fd = self._fd
        if fd is None:
            self._io(lambda: self.port.write(data))
            return
        pending = memoryview(data)
        try:
            while pending:
                try:
                    pending = pending[os.write(fd, pending):]
                except BlockingIOError:
                    select.select([], [fd], [])   # the driver's buffer is full: wait
        except OSError as error:
            raise self._lost("write failed", error) from error

    def _read(self, length: int, timeout: float) -> bytes:
        """Exactly ``length`` bytes in one call (fewer only when ``timeout`` passes).

        On a POSIX port the descriptor is waited on and read directly: pyserial's
        read and write loops (a second descriptor in every select, a wait for the
        write to drain, timeout objects) put ~75 us between a ROM's ACK and our
        next frame, ~0.1 s over a 64 KiB write and read-back; the wait here is
        one select per arrival, the bound the same ``timeout``. Elsewhere (rfc2217,
        socket, the simulator's ports) pyserial's read runs: setting its timeout
        reconfigures the port (a ``tcsetattr``, which some USB adapters turn into a
        control transfer), so the port keeps its timeout while it is long enough
        and not more than about twice too long; an ACK read and a 256-byte read
        then share one setting. The timeout only matters when the chip does not
        answer.
        """
        needed = timeout + length * self.byte_time
        fd = self._fd
        if fd is not None:
            data = self._read_descriptor(fd, length, needed)
        else:
            def action() -> bytes:
                current = self.port.timeout
                if current is None or current < needed or current > 2 * needed + 0.5:
                    self.port.timeout = -(-needed * 10 // 1) / 10
                return bytes(self.port.read(length))
            data = self._io(action)
        if self.trace.raw:
            self.trace.transfer("in", data, what="rx")
        return data

    def _read_descriptor(self, fd: int, length: int, timeout: float) -> bytes:
        chunks: list[bytes] = []
        missing = length
        deadline = time.monotonic() + timeout
        try:
            while missing:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    break
                try:
                    chunk = os.read(fd, missing)
                except BlockingIOError:
                    continue
                if not chunk:   # readable, yet nothing: the port went away (pyserial's words)
                    raise self._lost("read failed", "device reports readiness to read but "
                                     "returned no data (device disconnected or multiple "
                                     "access on port?)")
                if len(chunk) == length:
                    return chunk
                chunks.append(chunk)
                missing -= len(chunk)
        except LinkLost:
            raise
        except OSError as error:
            raise self._lost("read failed", error) from error
        return b"".join(chunks)

    def _ack(self, stage: str, timeout: float) -> None:
        reply = self._read(1, timeout)
        if reply == bytes([ACK]):
            return
        if reply == bytes([NACK]):
            raise Nack(stage, reply)
        if not reply:
            raise NoReply(stage)
        raise BadReply(stage, reply)

    # ------------------------------------------------------------------ framing

    def request(self, code: int, blocks: Sequence[Block] = (), *, timeout: float) -> None:
        self.send(self.prepare(code, blocks), timeout=timeout)

    def prepare(self, code: int, blocks: Sequence[Block] = ()) -> Prepared:
        return Prepared(code=code, blocks=tuple(blocks),
                        frames=(bytes((code, code ^ 0xFF)),
                                *(serial_block(block) for block in blocks)))

    def send(self, prepared: Prepared, *, timeout: float,
             busy: Callable[[], None] | None = None) -> None:
        # Every frame is built before the command byte goes out: between an ACK and the
        # next frame there is only the write (the ROM waits on the host there).
        self._write(prepared.frames[0])
        stage = "command"
        for frame, block in zip(prepared.frames[1:], prepared.blocks, strict=True):
            self._ack(stage, _SHORT)
            self._write(frame)
            stage = block.stage
        then_ack(busy, partial(self._ack, stage, timeout))

    def expect_ack(self, stage: str, *, timeout: float, code: int) -> None:
        self._ack(stage, timeout)

    def receive(self, length: int, *, timeout: float, code: int) -> bytes:
        data = self._read(length, timeout)
        if len(data) != length:
            raise NoReply("reply", data)
        return data

    def receive_counted(self, expected: int | None, *, timeout: float, code: int) -> bytes:
        # AN3155 §3.1: on a byte stream the count comes first; no guessing needed.
        count = self.receive(1, timeout=timeout, code=code)[0]
        return self.receive(count + 1, timeout=timeout, code=code)

    def learn_version(self, version: int) -> None:
        """USART replies carry their own lengths."""

    # ------------------------------------------------------------------ sync

    def sync(self) -> None:
        self._request_low_latency()
        self._adopt_descriptor()
        self._enter()
        self._handshake()

    def _request_low_latency(self) -> None:
        """Once per open port, unless the link says ``low-latency: false``."""
        if self.low_latency.outcome is not Outcome.NOT_ASKED:
            return
        started = time.monotonic()
        if self._ask_low_latency:
            self.low_latency = request_low_latency(self.port)
        if self.trace.commands:
            self.trace.command("ASYNC_LOW_LATENCY", self.low_latency.describe(),
                               started=started)

    def _adopt_descriptor(self) -> None:
        """Read and write an open POSIX port's descriptor directly, once it kept its settings.

        A port that silently dropped the parity asked for (a pty keeps none) is
        refused here, as pyserial refuses it when a setting changes later.
        """
        port = self.port
        if _PosixSerial is None or not isinstance(port, _PosixSerial) or not port.is_open \
                or port.fd is None:
            return
        fd: int = port.fd
        try:
            cflag = termios.tcgetattr(fd)[2]
        except termios.error as error:
            raise self._refused(error) from error
        if bool(cflag & termios.PARENB) != (port.parity != serial.PARITY_NONE):
            raise self._refused(f"parity {port.parity} was not kept")
        self._fd = fd

    def _handshake(self) -> None:
        """AN3155 §2: 0x7F, tolerant of what real chips do (see reference §1.2)."""
        for _ in range(2):
            self._io(self.port.reset_input_buffer)
            self._write(b"\x7f")
            reply = self._first_byte(_SYNC_TIMEOUT)
            if reply == ACK:
                # STM32L412/L422 answer the 0x7F with two ACKs (AN2606): absorb the second.
                # Only there: waiting for it on every other ROM cost 0.1 s per connect.
                if self.double_ack:
                    extra = self._read(1, 0.05)
                    if extra and extra[0] != ACK:
                        raise BadReply("sync", extra)
                return
            if reply == NACK:
                return  # already synchronised: a half command was pending (stm32flash)
            if reply is None:
                # Already synchronised and now waiting for a complement: 7F 7F is NACKed.
                self._write(b"\x7f")
                if self._first_byte(_SYNC_TIMEOUT) == NACK:
                    return
        raise ConnectError(f"no bootloader answered 0x7F on {self.name}",
                           hint="check BOOT0 selects the system bootloader, the wiring "
                                "(TX/RX crossed), the baud rate and 8E1 parity")

    def _first_byte(self, timeout: float) -> int | None:
        """The first answer byte, skipping the 0x00 some chips emit as their USART starts."""
        for _ in range(4):
            data = self._read(1, timeout)
            if not data:
                return None
            if data[0] != 0x00:
                return data[0]
        return None

    def resync(self) -> None:
        """stm32flash's way back to the prompt: send ``FF 00`` until a NACK answers."""
        for _ in range(10):  # at most ~2 s on a real port
            self._write(b"\xff\x00")
            reply = self._read(1, 0.2)
            if reply == bytes([NACK]):
                self._io(self.port.reset_input_buffer)
                return
        raise NoReply("resync")

    # ------------------------------------------------------------------ lines

    def _drive(self, line: str, asserted: bool) -> None:
        if line in ("boot0", "nrst"):
            self._pin(line, asserted)
        elif line == "rts":
            self._io(lambda: setattr(self.port, "rts", asserted))
        elif line == "dtr":
            self._io(lambda: setattr(self.port, "dtr", asserted))
        elif line == "brk" and asserted:
            self._io(lambda: self.port.send_break(0.25))

    def _run(self, signals: Sequence[Signal]) -> None:
        for line, asserted, delay in signals:
            if line:
                self._drive(line, asserted)
            if delay:
                self.sleep(delay)

    def _pin(self, role: str, active: bool) -> None:
        """Drive the target's BOOT0 (active: high) or NRST (active: in reset)."""
        pins = self.pins
        if pins is not None and role in pins.specs:
            pins.set_line(role, active)
        elif role == "boot0" and self.boot0:
            # Asserted drives the pin low: BOOT0 high means the line released.
            self._drive(self.boot0, (not active) != self.invert_boot0)
        elif role == "nrst" and self.reset_line:
            self._drive(self.reset_line, active != self.invert_reset)

    @property
    def _has_reset(self) -> bool:
        return bool(self.reset_line) or (self.pins is not None and self.pins.has_nrst)

    @property
    def _has_boot0(self) -> bool:
        return bool(self.boot0) or (self.pins is not None and self.pins.has_boot0)

    def idle_lines(self) -> None:
        """Before the port opens: NRST released, BOOT0 low (the board runs as usual)."""
        if self.reset_line:
            setattr(self.port, self.reset_line, self.invert_reset)
        if self.boot0:
            setattr(self.port, self.boot0, not self.invert_boot0)
        if self.pins is not None:
            self.pins.open()  # one request for the session: NRST released, BOOT0 low

    def _pulse_reset(self, boot0_high: bool) -> bool:
        if self._has_boot0:
            self._pin("boot0", boot0_high)
        if not self._has_reset:
            return False
        self._pin("nrst", True)
        self.sleep(_PULSE)
        self._pin("nrst", False)  # BOOT0 is sampled here (RM0008 §3.4)
        self.sleep(_SETTLE)
        return True

    def _enter(self) -> None:
        if self.entry is not None:
            self._run(self.entry)
        else:
            self._pulse_reset(boot0_high=True)

    def reenter(self, settle: float) -> None:
        # Wait for the chip to finish and reboot (a pulse now could cut an erase short);
        # BOOT0 still selects the ROM, but the entry sequence makes sure of it.
        self.sleep(settle)
        if self.entry is not None or self._has_reset:
            self._enter()
        self._handshake()

    def leave(self) -> bool:
        if self.exit is not None:
            self._run(self.exit)
            return True
        return self._pulse_reset(boot0_high=False)

    def close(self) -> None:
        self._fd = None
        low_latency, self.low_latency = self.low_latency, LowLatency(outcome=Outcome.NOT_ASKED)
        low_latency.release()
        pins, self.pins = self.pins, None
        if pins is not None:
            pins.close()  # the lines go back to their defaults with the request
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass


def _line(value: Any) -> str | None:
    """A modem line's name; ``None`` for none, or a pin on a GPIO line."""
    return None if value == "none" or not isinstance(value, str) else value


_PARITY = {"even": serial.PARITY_EVEN, "none": serial.PARITY_NONE, "odd": serial.PARITY_ODD}


class UsartTransport(BootloaderSession):
    """A session with a chip's ROM bootloader over a serial port (``kind: uart``)."""

    kind: ClassVar[str] = "uart"
    #: Endpoints a rehearsal reaches through the endpoint seam (docs/architecture.md).
    simulation: ClassVar[frozenset[str]] = frozenset({"serial_port", "clock", "host_control"})
    capabilities_base: ClassVar[frozenset[Capability]] = BASE_CAPABILITIES | {
        Capability.RESET_HARDWARE}
    #: Get Checksum where the ROM lists it (the H7's); NRST where a line is wired.
    capabilities: ClassVar[frozenset[Capability]] = (  # type: ignore[misc]
        capabilities_base | {Capability.CHECKSUM})
    interface: ClassVar[str] = "usart"
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["port"],
        "properties": {
            "port": {"type": "string", "minLength": 1,
                     "description": "Device path, COM port or pyserial URL "
                                    "(rfc2217://host:port, socket://host:port)."},
            "baud": {"type": "integer", "minimum": 1200, "maximum": 4000000, "default": 115200},
            "parity": {"enum": ["even", "none", "odd"], "default": "even",
                       "description": "AN3155 uses even parity; none for odd ROMs."},
            "boot0": {"oneOf": [{"enum": ["rts", "dtr", "none"]}, _GPIO_LINE],
                      "default": "none",
                      "description": "Modem line wired to BOOT0 (asserted = pin low), or "
                                     "{gpio: {chip, line}}."},
            "reset": {"oneOf": [{"enum": ["dtr", "rts", "none"]}, _GPIO_LINE],
                      "default": "none",
                      "description": "Modem line wired to NRST (asserted = in reset), or "
                                     "{gpio: {chip, line}} (driven open-drain, active-low)."},
            "invert-boot0": {"type": "boolean", "default": False},
            "invert-reset": {"type": "boolean", "default": False},
            "entry-sequence": {"type": "string", "pattern": _SEQUENCE,
                               "description": "stm32flash -i style entry, e.g. -dtr,rts,-rts"},
            "exit-sequence": {"type": "string", "pattern": _SEQUENCE,
                              "description": "stm32flash -i style exit, e.g. dtr"},
            "low-latency": {"type": "boolean", "default": True,
                            "description": "Ask the adapter's driver for low latency "
                                           "(ASYNC_LOW_LATENCY: an FTDI latency timer of "
                                           "1 ms instead of 16) while the port is held."},
        },
    }

    @classmethod
    def link_capabilities(cls, options: Mapping[str, Any]) -> frozenset[Capability]:
        # Without a reset line (or an exit sequence) a hardware reset can only be a Go.
        if options.get("reset", "none") == "none" and not options.get("exit-sequence"):
            return cls.capabilities_base - {Capability.RESET_HARDWARE}
        return cls.capabilities_base

    @classmethod
    def speed_model(cls, options: Mapping[str, Any], chip: Chip) -> SpeedModel:
        baud = int(options.get("baud", 115200))
        bits = 10 if options.get("parity", "even") == "none" else 11
        wire = baud / bits
        # AN3155 §3.4/§3.6: 256 data bytes cost 268 bytes of framing both ways.
        return SpeedModel(connect_s=0.3, write_bytes_per_s=wire * 256 / 268,
                          read_bytes_per_s=wire * 256 / 268, erase_overhead_s=12 / wire,
                          checksum_bytes_per_s=ROM_CHECKSUM_BYTES_PER_S)

    @classmethod
    def resource_key(cls, link: str, options: Mapping[str, Any]) -> str:
        return f"uart:{options.get('port', link)}"

    @classmethod
    def open(cls, request: LinkRequest) -> UsartTransport:
        options = request.options
        boot0, reset = options.get("boot0", "none"), options.get("reset", "none")
        if boot0 != "none" and boot0 == reset:
            raise ConnectError(f"link {request.link}: boot0 and reset cannot share the "
                               f"{boot0} line", transport=request.link, device=request.device,
                               hint="wire BOOT0 and NRST to different modem lines")
        return cls(request)

    def open_framing(self) -> UsartFraming:
        request = self.request
        options = request.options
        try:
            port = request.endpoints.serial_port(request, str(options["port"]))
            port.baudrate = int(options.get("baud", 115200))
            port.parity = _PARITY[options.get("parity", "even")]
            port.bytesize = serial.EIGHTBITS
            port.stopbits = serial.STOPBITS_ONE
            port.timeout = _SYNC_TIMEOUT
            port.rtscts = port.xonxoff = False
            gpio = request.endpoints.host_control().gpio if _uses_gpio(options) else None
            framing = UsartFraming(port, name=f"USART {options['port']}", options=options,
                                   clock=request.endpoints.clock(request),
                                   double_ack=request.chip.bootloader.usart_double_ack,
                                   gpio=gpio, consumer=f"flashrunner:{request.device}")
            framing.idle_lines()
            port.open()
        except _PORT_ERRORS as error:
            code = getattr(error, "errno", None)
            if code in (errno.EACCES, errno.EPERM):
                raise EnvironmentProblem(f"no permission to open {options['port']}",
                                         hint="add the user to the dialout group") from error
            raise ConnectError(f"cannot open serial port {options['port']} with "
                               f"{options.get('baud', 115200)} baud, parity "
                               f"{options.get('parity', 'even')}: {error}",
                               transport=request.link, device=request.device,
                               hint="check the port name, that no other program holds it, "
                                    "and that it supports these settings (a pty keeps no "
                                    "parity: use parity: none)") from error
        return framing
