"""USART framing: check bytes and frames, as AN3155 §2 defines them."""

from __future__ import annotations

from functools import reduce
from operator import xor

from hypothesis import given
from hypothesis import strategies as st

from transports.sysboot.framing import Block, check_byte, serial_block, xor_bytes


@given(st.binary(max_size=600))
def test_the_folded_xor_is_the_bytewise_one(data: bytes) -> None:
    assert xor_bytes(data) == reduce(xor, data, 0)


def test_frames_carry_their_check_bytes() -> None:
    assert check_byte(b"\x31") == 0xCE   # a lone byte: its complement
    assert serial_block(Block.word("address", 0x08000100)) == bytes.fromhex("0800010009")
    payload = bytes(range(256))
    frame = serial_block(Block.payload(payload))
    assert frame[0] == 0xFF and frame[1:257] == payload
    assert frame[257] == reduce(xor, frame[:257], 0)
