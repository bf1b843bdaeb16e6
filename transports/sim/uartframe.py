"""Asynchronous serial framing at the bit level, for a simulated USART's receivers.

The STM32 ROM bootloader's USART runs 8 data bits, even parity, 1 stop bit
(AN3155 §2: "8 data bits, even parity, 1 stop bit"). A host at another
framing is not refused by any handshake: its bits are simply read at the
chip's framing. :func:`reframe` does exactly that — it serialises bytes as
the sender frames them (start bit, data LSB first, parity, stop bits, all back
to back within one burst) and samples them as the receiver frames them, so a
host at 8N1 gets through as silicon lets it (a lone 0x7F even reaches the ROM
intact, since its even-parity bit is 1 like a stop bit) and fails where
silicon makes it fail (the second byte of a command is lost to a framing
error, replies come back shifted).

A receiver keeps the data bits of a character with a parity or framing error,
as an STM32 USART leaves them in RDR with PE/FE set; after a framing error it
waits for the line to go idle before it hunts for the next start bit (a start
bit is a falling edge).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CHIP_FRAMING", "Framing", "reframe"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Framing:
    """Character format: data bits, parity ("N", "E", "O", "M", "S") and stop bits."""

    data_bits: int = 8
    parity: str = "E"
    stop_bits: int = 1

    @property
    def bits_per_char(self) -> int:
        return 1 + self.data_bits + (self.parity != "N") + self.stop_bits


#: AN3155 §2: the ROM's USART framing.
CHIP_FRAMING = Framing(data_bits=8, parity="E", stop_bits=1)


def _parity_bit(value: int, parity: str) -> int:
    ones = bin(value).count("1")
    return {"E": ones & 1, "O": (ones & 1) ^ 1, "M": 1, "S": 0}[parity]


def _serialise(data: bytes, framing: Framing) -> list[int]:
    bits: list[int] = []
    mask = (1 << framing.data_bits) - 1
    for byte in data:
        value = byte & mask
        bits.append(0)
        bits.extend((value >> i) & 1 for i in range(framing.data_bits))
        if framing.parity != "N":
            bits.append(_parity_bit(value, framing.parity))
        bits.extend([1] * framing.stop_bits)
    return bits


def _sample(bits: list[int], framing: Framing) -> bytes:
    out = bytearray()
    position = 0
    length = len(bits)
    while position < length:
        if bits[position] == 1:  # idle (or a stop bit): hunt for the start bit
            position += 1
            continue
        value = 0
        for i in range(framing.data_bits):
            index = position + 1 + i
            value |= (bits[index] if index < length else 1) << i
        out.append(value & 0xFF)
        # Parity and stop bits are sampled but never hold back the data (PE/FE set).
        position += 1 + framing.data_bits + (framing.parity != "N")
        stop = bits[position] if position < length else 1
        position += framing.stop_bits if stop else 1
        if not stop:  # framing error: a start bit needs a falling edge, so wait for idle
            while position < length and bits[position] == 0:
                position += 1
    return bytes(out)


def reframe(data: bytes, sender: Framing, receiver: Framing) -> bytes:
    """What a receiver at ``receiver`` framing reads of one burst sent at ``sender``'s."""
    if sender == receiver or not data:
        return data
    return _sample(_serialise(data, sender), receiver)
