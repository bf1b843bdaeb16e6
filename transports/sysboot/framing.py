"""What the bootloader engine asks of a link: the framing interface.

The system bootloader speaks one command set (AN3155) over USART, I2C and CAN;
what differs is how each link frames it. The engine describes every command
as a command code followed by logical :class:`Block` s (an address, a count,
data to program, a list of page numbers, a reserved code) and lets a
:class:`Framing` put them on the wire:

* USART (AN3155): command + complement; each block followed by its XOR
  checksum (a lone byte by its complement); ACK/NACK bytes in the stream.
* I2C (AN4221): the same bytes, each frame its own transaction, status bytes
  read one by one with BUSY polling, and list counts checked apart (§2.4).
* CAN (AN3154): the command code is the frame identifier; values ride in the
  command frame, payloads and lists in data frames, the CAN CRC replaces
  every checksum.

Framings report a refusal as :class:`Nack` and silence as :class:`NoReply`,
naming the stage; the engine turns them into :mod:`transports.errors` with the
command's name. A link that breaks raises :class:`transports.errors.LinkLost`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import xor
from typing import Protocol

from transports.trace import Trace

__all__ = [
    "ACK",
    "BUSY",
    "NACK",
    "BadReply",
    "Block",
    "BlockKind",
    "CountMismatch",
    "EncodesAsItSends",
    "Framing",
    "Nack",
    "NoReply",
    "Prepared",
    "check_byte",
    "serial_block",
    "then_ack",
    "xor_bytes",
]

ACK = 0x79
NACK = 0x1F
BUSY = 0x76


class BlockKind(enum.Enum):
    VALUE = "value"      # an address, a length, a count, a reserved code: sent as is
    PAYLOAD = "payload"  # data to program, preceded by its length - 1 (one byte)
    LIST = "list"        # page or sector numbers of ``width`` bytes, preceded by count - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """One logical block of a command, after the command code.

    ``stage`` names it in errors (``address``, ``length``, ``data``, ``pages``…).
    For ``LIST`` blocks ``data`` holds the encoded items and ``width`` their size.
    """

    stage: str
    kind: BlockKind
    data: bytes
    width: int = 1

    @classmethod
    def value(cls, stage: str, data: bytes) -> Block:
        return cls(stage=stage, kind=BlockKind.VALUE, data=data)

    @classmethod
    def word(cls, stage: str, value: int) -> Block:
        return cls(stage=stage, kind=BlockKind.VALUE, data=value.to_bytes(4, "big"))

    @classmethod
    def payload(cls, data: bytes) -> Block:
        return cls(stage="data", kind=BlockKind.PAYLOAD, data=data)

    @classmethod
    def items(cls, stage: str, values: Sequence[int], width: int) -> Block:
        encoded = b"".join(value.to_bytes(width, "big") for value in values)
        return cls(stage=stage, kind=BlockKind.LIST, data=encoded, width=width)

    @property
    def count(self) -> int:
        """Items in a LIST, bytes in a PAYLOAD."""
        return len(self.data) // self.width if self.kind is BlockKind.LIST else len(self.data)

    def count_prefix(self) -> bytes:
        """The ``count - 1`` that precedes a PAYLOAD (1 byte) or LIST (``width`` bytes)."""
        width = 1 if self.kind is BlockKind.PAYLOAD else self.width
        return (self.count - 1).to_bytes(width, "big")


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    """A command and its blocks, made ready to send before the ACK it must wait for.

    ``frames`` are the link's bytes for the command and each block where the link
    encodes ahead (USART); empty where it encodes as it sends.
    """

    code: int
    blocks: tuple[Block, ...]
    frames: tuple[bytes, ...] = ()


class EncodesAsItSends(ABC):
    """:meth:`Framing.prepare` and :meth:`Framing.send` for a link that encodes each block
    as it sends it (I2C, CAN): nothing is made ahead, ``send`` is ``request``."""

    @abstractmethod
    def request(self, code: int, blocks: Sequence[Block] = (), *, timeout: float,
                busy: Callable[[], None] | None = None) -> None:
        """:meth:`Framing.request`: the command and its blocks, in the link's own frames."""

    def prepare(self, code: int, blocks: Sequence[Block] = ()) -> Prepared:
        return Prepared(code=code, blocks=tuple(blocks))

    def send(self, prepared: Prepared, *, timeout: float,
             busy: Callable[[], None] | None = None) -> None:
        self.request(prepared.code, prepared.blocks, timeout=timeout, busy=busy)


def then_ack(busy: Callable[[], None] | None, ack: Callable[[], None]) -> None:
    """Run ``busy`` while the chip works on what was just sent, then take its ACK with ``ack``.

    The ROM answers the frame already on the wire whatever ``busy`` does, so its
    ACK is read even when ``busy`` raises (then ``busy``'s exception follows):
    nothing is left in the input that a later command would take for its own.
    """
    if busy is not None:
        try:
            busy()
        except BaseException:
            ack()
            raise
    ack()


def xor_bytes(data: bytes) -> int:
    """The XOR of every byte of ``data`` (0 for none)."""
    if len(data) <= 8:
        return reduce(xor, data, 0)
    # A 256-byte payload folded as one integer: ~1.5 µs instead of ~8 µs byte by byte,
    # between an ACK and the next frame.
    value, width = int.from_bytes(data, "little"), len(data)
    while width > 1:
        half = (width + 1) // 2
        value = (value >> (8 * half)) ^ (value & ((1 << (8 * half)) - 1))
        width = half
    return value


def check_byte(data: bytes) -> int:
    """AN3155 §2: XOR of the block; a lone byte is followed by its complement."""
    if len(data) == 1:
        return data[0] ^ 0xFF
    return xor_bytes(data)


def serial_block(block: Block) -> bytes:
    """A block as USART sends it (AN3155): count prefix, data, check byte."""
    if block.kind is BlockKind.VALUE:
        return block.data + bytes([check_byte(block.data)])
    body = block.count_prefix() + block.data
    return body + bytes([xor_bytes(body)])


class Nack(Exception):
    """The chip answered NACK at ``stage``."""

    def __init__(self, stage: str, reply: bytes = b"") -> None:
        super().__init__(f"NACK at {stage}")
        self.stage = stage
        self.reply = reply


class NoReply(Exception):
    """No (complete) answer at ``stage`` within the timeout; ``reply`` is what came."""

    def __init__(self, stage: str, reply: bytes = b"") -> None:
        super().__init__(f"no reply at {stage}")
        self.stage = stage
        self.reply = reply


class BadReply(Exception):
    """Something other than ACK/NACK (or BUSY) where a status byte belongs."""

    def __init__(self, stage: str, reply: bytes) -> None:
        super().__init__(f"unexpected {reply.hex()} at {stage}")
        self.stage = stage
        self.reply = reply


class CountMismatch(Exception):
    """A frame link guessed a reply length wrong; ``count`` is the one the chip sent."""

    def __init__(self, count: int) -> None:
        super().__init__(f"reply announces {count + 1} bytes")
        self.count = count


class Framing(Protocol):
    """How one link carries bootloader commands (see the module docstring)."""

    #: Name for messages (``USART /dev/ttyUSB0``).
    name: str
    #: Bytes Get Version answers after its ACK (USART 3, I2C 1, CAN 3).
    version_reply_length: int
    #: True where Read Memory data is followed by an ACK (CAN).
    read_data_acked: bool
    #: Typical seconds per byte each way, for timeouts.
    byte_time: float
    #: Where raw transfers are reported (``-vv``); off unless the session asks.
    trace: Trace

    def sync(self) -> None:
        """Bring the ROM to the point where it takes commands (autobaud, activation)."""

    def resync(self) -> None:
        """After a lost step: get back to the command prompt without a reset."""

    def request(self, code: int, blocks: Sequence[Block] = (), *, timeout: float) -> None:
        """Send command ``code`` and its blocks, consuming every ACK.

        ``timeout`` bounds the last acknowledgement (the one that waits for
        the work); earlier ones use the link's short timeout.
        """

    def prepare(self, code: int, blocks: Sequence[Block] = ()) -> Prepared:
        """Command ``code`` and its blocks ready for :meth:`send` (encoded where the link can)."""

    def send(self, prepared: Prepared, *, timeout: float,
             busy: Callable[[], None] | None = None) -> None:
        """:meth:`request` for a prepared command; ``busy`` runs after its last block is
        sent and before that block's ACK is awaited (see :func:`then_ack`)."""

    def expect_ack(self, stage: str, *, timeout: float, code: int) -> None:
        """Wait for one more ACK of command ``code`` (e.g. RDP's second ACK)."""

    def receive(self, length: int, *, timeout: float, code: int) -> bytes:
        """Exactly ``length`` reply bytes of command ``code``."""

    def receive_counted(self, expected: int | None, *, timeout: float, code: int) -> bytes:
        """A reply that starts with its own ``count - 1``; returns the ``count`` bytes after.

        ``expected`` is the count - 1 the engine expects (None: unknown); frame
        links that must size reads in advance raise :class:`CountMismatch`.
        """

    def learn_version(self, version: int) -> None:
        """The bootloader version, for links whose reply sizes depend on it."""

    def reenter(self, settle: float) -> None:
        """After the chip reset itself: wait ``settle`` seconds, bring it back, sync."""

    def leave(self) -> bool:
        """Reset into the application by hardware; False when the link has no reset line."""

    def close(self) -> None:
        """Release the link (idempotent)."""
