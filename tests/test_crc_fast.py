"""The STM32 CRC computed through zlib equals the word-by-word table computation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from transports.checksums import stm32_crc32, stm32_crc32_reference


def test_the_crc_unit_known_answer() -> None:
    # The value ST gives for the CRC unit fed the word 0x12345678 from reset.
    assert stm32_crc32((0x12345678).to_bytes(4, "little")) == 0xDF8A8A2B


@given(st.binary(max_size=512).map(lambda b: b[:len(b) - len(b) % 4]),
       st.integers(0, 0xFFFFFFFF))
def test_zlib_route_equals_the_table(data: bytes, start: int) -> None:
    assert stm32_crc32(data, start) == stm32_crc32_reference(data, start)
