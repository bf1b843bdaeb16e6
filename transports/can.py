"""``kind: can`` — the STM32 ROM bootloader over CAN (AN3154), through python-can.

Classic CAN, 11-bit identifiers, 125 kbit/s as the ROM starts. The command
code is the frame ID both ways; values (address, count, erase code) ride in
the command frame, data to program goes in frames of up to 8 bytes (ID 0x04)
each acknowledged, page lists in frames with the command's ID. The CAN CRC
replaces every complement and checksum of the USART framing.

Where implementations disagree (reference §3.4, Erase), the host accepts both:
an ACK is read after every frame it sends plus the final one, an extra ACK
some ROMs add is tolerated, and stale replies are drained before each command
(replies are matched by ID, so a late ACK of one command is never taken for
another's).

Options: ``interface`` (socketcan, pcan, slcan, virtual, …), ``channel``,
``bitrate`` (default 125000). The ROM always starts at 125 kbit/s; a higher
``bitrate`` is negotiated after sync with Speed (0x03, AN3154): the ROM ACKs at
the old rate, the host reopens its interface at the new one and takes the
second ACK there. socketcan's rate is set outside the process (``ip link``), so
there only 125000 is possible. AN3154 has no node address: one bootloader per bus.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from transports.base import Capability, LinkRequest, SpeedModel
from transports.chips import Chip
from transports.endpoints import WALL_CLOCK, Clock
from transports.errors import ConnectError, EnvironmentProblem, LinkLost
from transports.sysboot.commands import Command
from transports.sysboot.framing import (
    ACK,
    NACK,
    BadReply,
    Block,
    BlockKind,
    EncodesAsItSends,
    Nack,
    NoReply,
    then_ack,
)
from transports.sysboot.transport import BASE_CAPABILITIES, BootloaderSession
from transports.trace import NO_TRACE, Trace

if TYPE_CHECKING:
    import can
else:
    from transports.lazy import LazyModule

    can = LazyModule("can")   # imported when a CAN session opens its bus

__all__ = ["CanFraming", "CanTransport"]

SYNC_ID = 0x79
DATA_ID = 0x04  # AN3154: Write Memory data frames, any ID; 0x04 recommended
ROM_BITRATE = 125_000
#: AN3154 Speed (0x03) codes.
_SPEED_CODES = {125_000: 1, 250_000: 2, 500_000: 3, 1_000_000: 4}
_SHORT = 1.0
#: AN3154 erase: the command frame is followed by an ACK once the work is done.
_COMPLETION_ACK = frozenset({Command.ERASE, Command.EXTENDED_ERASE})


def _frame_bits(dlc: int) -> int:
    return 47 + 8 * dlc + (34 + 8 * dlc - 1) // 4


class CanFraming(EncodesAsItSends):
    """AN3154 framing on a python-can bus."""

    version_reply_length = 3  # version frame (1 byte) + option frame (2 bytes)
    read_data_acked = True

    def __init__(self, open_bus: Callable[[int], can.BusABC], *, name: str, bitrate: int,
                 clock: Clock = WALL_CLOCK) -> None:
        self.open_bus = open_bus
        #: Raw transfers go here with ``-vv`` (the sysboot transport sets it).
        self.trace: Trace = NO_TRACE
        self.name = name
        self.clock = clock
        self.sleep = clock.sleep
        self.target = bitrate
        self.rate = ROM_BITRATE
        self.bus = open_bus(ROM_BITRATE)
        self.byte_time = _frame_bits(8) / 8 / bitrate

    # ------------------------------------------------------------------ frames

    def _send(self, ident: int, data: bytes = b"") -> None:
        if self.trace.raw:
            self.trace.transfer("out", data, what=f"id 0x{ident:03X}")
        try:
            self.bus.send(can.Message(arbitration_id=ident, is_extended_id=False, data=data))
        except can.CanError as error:
            raise LinkLost(f"CAN {self.name}: sending failed: {error}",
                           hint="check the bus, its termination and the bit rate") from error

    def _recv(self, code: int, timeout: float, stage: str) -> can.Message:
        deadline = self.clock.monotonic() + timeout
        while True:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise NoReply(stage)
            try:
                message = self.bus.recv(timeout=remaining)
            except can.CanError as error:
                raise LinkLost(f"CAN {self.name}: receiving failed: {error}") from error
            if message is None:
                raise NoReply(stage)
            if not message.is_extended_id and message.arbitration_id == code \
                    and not message.is_error_frame:
                if self.trace.raw:
                    self.trace.transfer("in", bytes(message.data),
                                        what=f"id 0x{message.arbitration_id:03X}")
                return message

    def _ack(self, code: int, stage: str, timeout: float) -> None:
        data = bytes(self._recv(code, timeout, stage).data)
        if data == bytes([ACK]):
            return
        if data == bytes([NACK]):
            raise Nack(stage, data)
        raise BadReply(stage, data)

    def _drain(self) -> None:
        try:
            while self.bus.recv(timeout=0) is not None:
                pass
        except can.CanError as error:
            raise LinkLost(f"CAN {self.name}: receiving failed: {error}") from error

    # ------------------------------------------------------------------ framing

    def request(self, code: int, blocks: Sequence[Block] = (), *, timeout: float,
                busy: Callable[[], None] | None = None) -> None:
        self._drain()
        inline = b""
        framed: list[Block] = []
        for block in blocks:
            if block.kind is BlockKind.VALUE:
                inline += block.data
            else:
                inline += block.count_prefix()
                framed.append(block)
        self._send(code, inline)
        completion = not framed and code in _COMPLETION_ACK
        if not framed and not completion:
            then_ack(busy, lambda: self._ack(code, "command", timeout))
            return
        self._ack(code, "command", _SHORT)
        if completion:
            stage = blocks[0].stage if blocks else "completion"
            then_ack(busy, lambda: self._ack(code, stage, timeout))
        for index, block in enumerate(framed):
            ident = DATA_ID if block.kind is BlockKind.PAYLOAD else code
            for offset in range(0, len(block.data), 8):
                self._send(ident, block.data[offset:offset + 8])
                self._ack(code, block.stage, _SHORT)
            if index == len(framed) - 1:
                then_ack(busy, partial(self._ack, code, block.stage, timeout))
            else:
                self._ack(code, block.stage, timeout)

    def expect_ack(self, stage: str, *, timeout: float, code: int) -> None:
        self._ack(code, stage, timeout)

    def receive(self, length: int, *, timeout: float, code: int) -> bytes:
        data = b""
        while len(data) < length:
            data += bytes(self._recv(code, timeout, "reply").data)
        if len(data) != length:
            raise BadReply("reply", data)
        return data

    def receive_counted(self, expected: int | None, *, timeout: float, code: int) -> bytes:
        # AN3154: Get sends its count in a 1-byte frame; Get ID's PID frame is its own length.
        first = bytes(self._recv(code, timeout, "reply").data)
        if len(first) != 1:
            return first
        return self.receive(first[0] + 1, timeout=timeout, code=code)

    def learn_version(self, version: int) -> None:
        """CAN replies carry their lengths in the DLC."""

    def sync(self) -> None:
        """AN3154 §3.2: a frame with ID 0x79 selects CAN; the ROM answers ACK."""
        for _ in range(2):
            self._drain()
            self._send(SYNC_ID)
            try:
                reply = bytes(self._recv(SYNC_ID, 0.5, "sync").data)
            except NoReply:
                continue
            if reply in (bytes([ACK]), bytes([NACK])):
                # NACK: already synchronised, 0x79 taken as an unknown command.
                if self.rate != self.target:
                    self._change_speed()
                return
        raise ConnectError(f"no bootloader answered the sync frame on {self.name}",
                           hint="check BOOT0, the bit rate (125 kbit/s), termination and "
                                "that the chip's CAN pins are the ROM's (AN2606)")

    def _reopen(self, bitrate: int) -> None:
        self._shutdown()
        self.bus = self.open_bus(bitrate)
        self.rate = bitrate

    def _change_speed(self) -> None:
        """AN3154 Speed: ACK at the old rate, switch, ACK at the new one."""
        code = Command.SPEED
        try:
            self._send(code, bytes([_SPEED_CODES[self.target]]))
            self._ack(code, "speed", _SHORT)
            self._reopen(self.target)
            self._ack(code, "speed", _SHORT)
        except (Nack, NoReply, BadReply) as error:
            raise ConnectError(f"the bootloader on {self.name} did not move to "
                               f"{self.target} bit/s", hint="leave bitrate at 125000") \
                from error

    def resync(self) -> None:
        """Frames delimit themselves: dropping what is queued is enough."""
        self._drain()

    def reenter(self, settle: float) -> None:
        self.sleep(settle)
        if self.rate != ROM_BITRATE:
            self._reopen(ROM_BITRATE)  # the rebooted ROM is back at 125 kbit/s
        self.sync()

    def leave(self) -> bool:
        return False

    def _shutdown(self) -> None:
        try:
            self.bus.shutdown()
        except can.CanError:
            pass

    def close(self) -> None:
        self._shutdown()


class CanTransport(BootloaderSession):
    """A session with a chip's ROM bootloader over CAN (``kind: can``)."""

    kind: ClassVar[str] = "can"
    #: Endpoints a rehearsal reaches through the endpoint seam (docs/architecture.md).
    simulation: ClassVar[frozenset[str]] = frozenset({"can_bus", "clock"})
    capabilities: ClassVar[frozenset[Capability]] = BASE_CAPABILITIES  # type: ignore[misc]
    interface: ClassVar[str] = "can"
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["interface", "channel"],
        "properties": {
            "interface": {"type": "string", "minLength": 1,
                          "description": "python-can interface: socketcan, pcan, slcan, "
                                         "virtual, …"},
            "channel": {"type": ["string", "integer"],
                        "description": "Interface channel (can0, PCAN_USBBUS1, /dev/ttyACM0)."},
            "bitrate": {"type": "integer", "enum": [125000, 250000, 500000, 1000000],
                        "default": 125000,
                        "description": "The ROM starts at 125 kbit/s (AN3154)."},
        },
    }

    @classmethod
    def speed_model(cls, options: Mapping[str, Any], chip: Chip) -> SpeedModel:
        bitrate = int(options.get("bitrate", 125000))
        # Per 8 data bytes: one data frame and one 1-byte ACK frame.
        per_8 = (_frame_bits(8) + _frame_bits(1)) / bitrate
        read_8 = _frame_bits(8) / bitrate
        return SpeedModel(connect_s=0.05, write_bytes_per_s=8 / per_8,
                          read_bytes_per_s=8 / read_8,
                          erase_overhead_s=3 * _frame_bits(1) / bitrate)

    @classmethod
    def resource_key(cls, link: str, options: Mapping[str, Any]) -> str:
        return f"can:{options.get('interface', '?')}:{options.get('channel', link)}"

    @classmethod
    def open(cls, request: LinkRequest) -> CanTransport:
        return cls(request)

    def open_framing(self) -> CanFraming:
        request = self.request
        options = request.options
        interface = str(options["interface"])
        bitrate = int(options.get("bitrate", ROM_BITRATE))
        name = f"{interface}:{options['channel']}"
        if interface == "socketcan" and bitrate != ROM_BITRATE:
            raise ConnectError(f"{name}: socketcan cannot change its bit rate from here, and "
                               f"the ROM starts at 125 kbit/s", transport=request.link,
                               device=request.device, hint="leave bitrate at 125000")
        def open_bus(rate: int) -> can.BusABC:
            # socketcan's rate is the OS's (``ip link``); the others take ours.
            try:
                return request.endpoints.can_bus(
                    request, interface=interface, channel=str(options["channel"]),
                    bitrate=None if interface == "socketcan" else rate)
            except ImportError as error:
                raise EnvironmentProblem(f"CAN interface {interface} needs a package that "
                                         f"is not installed: {error}",
                                         hint="install the python-can extra for it") from error
            except (can.CanError, OSError, ValueError) as error:
                raise ConnectError(f"cannot open CAN {name}: {error}", transport=request.link,
                                   device=request.device,
                                   hint="check the interface name and that the link is up") \
                    from error

        return CanFraming(open_bus, name=name, bitrate=bitrate,
                          clock=request.endpoints.clock(request))
