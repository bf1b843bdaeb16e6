"""``kind: i2c`` — the STM32 ROM bootloader over I2C (AN4221), through smbus2.

Every frame is its own transaction (``SMBus.i2c_rdwr`` with one
:class:`smbus2.i2c_msg` per call, never a repeated START); every ACK/NACK is a
separate 1-byte read. On bootloader v1.1+ the engine picks the no-stretch
commands (0x32, 0x45, …) and status reads are polled while the chip answers
BUSY (0x76); on v1.0 the chip stretches the clock instead, and a NAK during
the wait is polled the same way until the command's deadline.

The adapter must do plain I2C transactions: an SMBus-only controller (its
``funcs`` lacks ``I2C``) is refused before anything is sent.

Options: ``bus`` (number or ``/dev/i2c-N``), ``address`` (7-bit, usually set
per device; default the chip database's), ``clock`` (bus clock in Hz, for
estimates and simulated timing; the kernel sets the real one).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping, Sequence
from functools import partial, reduce
from operator import xor
from typing import Any, ClassVar

from smbus2 import I2cFunc, i2c_msg

from transports.base import Capability, LinkRequest, SpeedModel
from transports.chips import Chip
from transports.endpoints import WALL_CLOCK, Clock, I2cAdapter
from transports.errors import ConnectError, EnvironmentProblem, LinkLost
from transports.sysboot.framing import (
    ACK,
    BUSY,
    NACK,
    BadReply,
    Block,
    BlockKind,
    CountMismatch,
    EncodesAsItSends,
    Nack,
    NoReply,
    check_byte,
    serial_block,
    then_ack,
)
from transports.sysboot.transport import (
    BASE_CAPABILITIES,
    ROM_CHECKSUM_BYTES_PER_S,
    BootloaderSession,
)
from transports.trace import NO_TRACE, Trace

__all__ = ["I2cFraming", "I2cTransport"]

_SHORT = 1.0
_POLL = 0.002
#: AN4221 §2.2 via stm32flash: commands a Get lists per I2C bootloader version.
_GET_COUNT = {0x10: 11, 0x11: 17, 0x12: 18}
#: i2c-dev reports a NAK (nobody answered, or the slave is busy) as these.
_NAK = (errno.EREMOTEIO, errno.ENXIO, errno.EAGAIN, errno.ETIMEDOUT)


class I2cFraming(EncodesAsItSends):
    """AN4221 framing: one transaction per frame, status bytes polled."""

    version_reply_length = 1  # AN4221 §2.3: Get Version answers its version byte only
    read_data_acked = False

    def __init__(self, adapter: I2cAdapter, address: int, *, name: str, clock_hz: int,
                 clock: Clock = WALL_CLOCK) -> None:
        self.adapter = adapter
        #: Raw transfers go here with ``-vv`` (the sysboot transport sets it).
        self.trace: Trace = NO_TRACE
        self.address = address
        self.name = name
        self.clock = clock
        self.sleep = clock.sleep
        self.byte_time = 9 / clock_hz
        self.version = 0

    # ------------------------------------------------------------------ transactions

    def _transfer(self, message: i2c_msg, stage: str) -> None:
        try:
            self.adapter.i2c_rdwr(message)
        except OSError as error:
            if error.errno in _NAK:
                raise NoReply(stage) from error
            raise LinkLost(f"I2C adapter {self.name} failed: {error}",
                           hint="check the adapter and the bus wiring") from error

    def _write(self, data: bytes, stage: str) -> None:
        if self.trace.raw:
            self.trace.transfer("out", data, what=f"write 0x{self.address:02X}")
        self._transfer(i2c_msg.write(self.address, data), stage)

    def _read(self, length: int, stage: str) -> bytes:
        message = i2c_msg.read(self.address, length)
        self._transfer(message, stage)
        data = bytes(message)
        if self.trace.raw:
            self.trace.transfer("in", data, what=f"read 0x{self.address:02X}")
        return data

    def _ack(self, stage: str, timeout: float) -> None:
        """Read status bytes until ACK/NACK, polling BUSY (and NAKs while stretching)."""
        deadline = self.clock.monotonic() + timeout
        while True:
            try:
                reply = self._read(1, stage)
            except NoReply:
                reply = b""
            if reply == bytes([ACK]):
                return
            if reply == bytes([NACK]):
                raise Nack(stage, reply)
            if reply and reply != bytes([BUSY]):
                raise BadReply(stage, reply)
            if self.clock.monotonic() >= deadline:
                raise NoReply(stage, reply)
            self.sleep(_POLL)

    # ------------------------------------------------------------------ framing

    def request(self, code: int, blocks: Sequence[Block] = (), *, timeout: float,
                busy: Callable[[], None] | None = None) -> None:
        self._write(bytes([code, code ^ 0xFF]), "command")
        stage = "command"
        for block in blocks:
            self._ack(stage, _SHORT)
            if block.kind is BlockKind.LIST:
                # AN4221 §2.4: the count travels with its own check and ACK, then the
                # items with an XOR of the items alone.
                prefix = block.count_prefix()
                self._write(prefix + bytes([check_byte(prefix)]), f"{block.stage} count")
                self._ack(f"{block.stage} count", _SHORT)
                self._write(block.data + bytes([reduce(xor, block.data, 0)]), block.stage)
            else:
                self._write(serial_block(block), block.stage)
            stage = block.stage
        then_ack(busy, partial(self._ack, stage, timeout))

    def expect_ack(self, stage: str, *, timeout: float, code: int) -> None:
        self._ack(stage, timeout)

    def receive(self, length: int, *, timeout: float, code: int) -> bytes:
        return self._read(length, "reply")

    def receive_counted(self, expected: int | None, *, timeout: float, code: int) -> bytes:
        # AN4221 §2.1: a read must be sized in advance, so guess from the version.
        count = expected if expected is not None else _GET_COUNT.get(self.version, 17)
        data = self._read(count + 2, "reply")
        if data[0] != count:
            raise CountMismatch(data[0])
        return data[1:]

    def learn_version(self, version: int) -> None:
        self.version = version

    def sync(self) -> None:
        """AN4221 §2.1: no sync byte; the first transaction to the address activates I2C."""
        if not self.adapter.funcs & I2cFunc.I2C:
            raise ConnectError(f"I2C adapter {self.name} is SMBus-only; the bootloader needs "
                               f"plain I2C transactions",
                               hint="use a controller that does I2C (i2cdetect -F shows "
                                    "'I2C yes')")

    def resync(self) -> None:
        """Send the invalid command ``FF 00`` until the chip NACKs it (stm32flash)."""
        for _ in range(10):
            # A NAK on the address means nobody is listening: give up at once.
            self._write(b"\xff\x00", "resync")
            if self._read(1, "resync") == bytes([NACK]):
                return
        raise NoReply("resync")

    def reenter(self, settle: float) -> None:
        # The chip reboots itself into the ROM (BOOT0 strapped); give it time to start.
        self.sleep(settle)

    def leave(self) -> bool:
        return False

    def close(self) -> None:
        try:
            self.adapter.close()
        except OSError:
            pass


class I2cTransport(BootloaderSession):
    """A session with a chip's ROM bootloader over I2C (``kind: i2c``)."""

    kind: ClassVar[str] = "i2c"
    #: Endpoints a rehearsal reaches through the endpoint seam (docs/architecture.md).
    simulation: ClassVar[frozenset[str]] = frozenset({"i2c_adapter", "clock"})
    #: Get Checksum where the ROM lists it (I2C v1.2: G0, H7).
    capabilities: ClassVar[frozenset[Capability]] = (  # type: ignore[misc]
        BASE_CAPABILITIES | {Capability.CHECKSUM})
    interface: ClassVar[str] = "i2c"
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["bus"],
        "properties": {
            "bus": {"oneOf": [{"type": "integer", "minimum": 0},
                              {"type": "string", "pattern": "^/dev/i2c-[0-9]+$"}],
                    "description": "I2C adapter number or /dev/i2c-N path."},
            "address": {"type": "integer", "minimum": 0x03, "maximum": 0x77,
                        "description": "7-bit slave address of the bootloader (AN2606); "
                                       "default: the chip database's."},
            "clock": {"type": "integer", "minimum": 10000, "maximum": 1000000,
                      "default": 100000,
                      "description": "Bus clock in Hz (estimates and simulation only)."},
        },
    }

    @classmethod
    def speed_model(cls, options: Mapping[str, Any], chip: Chip) -> SpeedModel:
        wire = int(options.get("clock", 100000)) / 9
        # Per 256-byte block: command, address, count+data+check and 3 status reads,
        # each a transaction with its own address byte.
        per_block = 256 / (256 + 2 + 5 + 2 + 3 * 2 + 4 * 1)
        return SpeedModel(connect_s=0.05, write_bytes_per_s=wire * per_block,
                          read_bytes_per_s=wire * per_block, erase_overhead_s=16 / wire,
                          checksum_bytes_per_s=ROM_CHECKSUM_BYTES_PER_S)

    @classmethod
    def resource_key(cls, link: str, options: Mapping[str, Any]) -> str:
        return f"i2c:{_bus_number(options.get('bus', link))}"

    @classmethod
    def open(cls, request: LinkRequest) -> I2cTransport:
        return cls(request)

    def _address(self) -> int:
        address = self.request.options.get("address", self.chip.bootloader.i2c_address)
        if address is None:
            raise ConnectError(f"no I2C bootloader address is known for {self.chip.part}",
                               transport=self.request.link, device=self.request.device,
                               hint="set the device's address (AN2606, I2C configuration)")
        return int(address)

    def open_framing(self) -> I2cFraming:
        request = self.request
        bus = _bus_number(request.options["bus"])
        clock = int(request.options.get("clock", 100000))
        address = self._address()
        name = f"i2c-{bus}@0x{address:02X}"
        try:
            adapter = request.endpoints.i2c_adapter(request, bus, address=address,
                                                    clock_hz=clock)
        except PermissionError as error:
            raise EnvironmentProblem(f"no permission to open /dev/i2c-{bus}",
                                     hint="add the user to the i2c group") from error
        except OSError as error:
            raise ConnectError(f"cannot open I2C adapter {bus}: {error}",
                               transport=request.link, device=request.device,
                               hint="check the bus number (i2cdetect -l) and that i2c-dev "
                                    "is loaded") from error
        return I2cFraming(adapter, address, name=name, clock_hz=clock,
                          clock=request.endpoints.clock(request))


def _bus_number(bus: object) -> int | str:
    if isinstance(bus, str) and bus.startswith("/dev/i2c-"):
        return int(bus[len("/dev/i2c-"):])
    return bus if isinstance(bus, int) else str(bus)
