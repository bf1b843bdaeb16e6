"""Known answers for the STM32 CRC, so the runner and the simulated ROM cannot agree on a
wrong one.

The oracle here is written from the CRC's published parameters alone (the CRC
catalogue's CRC-32/MPEG-2: width 32, poly 0x04C11DB7, init 0xFFFFFFFF, no
reflection, no final XOR, check value 0x0376E6E7 over "123456789"), bit by bit,
sharing no code with transports/checksums.py or the simulator. The STM32 CRC unit
(and the ROM's Get Checksum, AN3155 §1.5.13 in our reference notes) reads each
32-bit word little-endian from memory and feeds it MSB first.
"""

from __future__ import annotations

from functools import reduce
from operator import xor

from hypothesis import given
from hypothesis import strategies as st

from transports.checksums import compute, stm32_crc32, stm32_crc32_reference
from transports.chips import ChipDatabase
from transports.sim.bootloader import ACK, BootloaderCore, Link, bootloader_profile
from transports.sim.bootloader_stream import StreamBootloader
from transports.sim.chip import SimChip


def crc32_mpeg2(stream: bytes) -> int:
    """CRC-32/MPEG-2 of a byte stream, one bit at a time."""
    crc = 0xFFFFFFFF
    for byte in stream:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def as_the_unit_sees(memory: bytes) -> bytes:
    """The byte stream the CRC unit is fed: each little-endian word, MSB first."""
    return b"".join(memory[at:at + 4][::-1] for at in range(0, len(memory), 4))


words = st.binary(max_size=256).map(lambda b: b[:len(b) - len(b) % 4])


def test_the_oracle_gives_the_catalogue_check_value() -> None:
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7


def test_the_crc_of_memory_holding_the_check_string_is_mpeg2_of_its_words() -> None:
    memory = b"4321" + b"8765"   # words 0x31323334, 0x35363738: the unit sees "12345678"
    assert stm32_crc32(memory) == crc32_mpeg2(b"12345678")


def test_the_reference_manual_word_example() -> None:
    # The CRC unit fed the word 0x12345678 from reset (the RM's CRC calculation example).
    assert stm32_crc32((0x12345678).to_bytes(4, "little")) == 0xDF8A8A2B
    assert crc32_mpeg2(bytes([0x12, 0x34, 0x56, 0x78])) == 0xDF8A8A2B


def test_erased_flash_has_the_crc_the_host_expects() -> None:
    erased = b"\xff" * 1024
    assert stm32_crc32(erased) == crc32_mpeg2(erased) == compute("stm32-crc32", erased)


@given(words)
def test_every_host_implementation_matches_the_oracle(memory: bytes) -> None:
    expected = crc32_mpeg2(as_the_unit_sees(memory))
    assert stm32_crc32(memory) == expected
    assert stm32_crc32_reference(memory) == expected


def _framed(*values: int) -> bytes:
    return bytes([*values, reduce(xor, values, 0)])


def test_the_simulated_rom_get_checksum_matches_the_oracle(chips: ChipDatabase) -> None:
    chip = chips.part("stm32f103c8")
    image = bytes((i * 7 + 3) & 0xFF for i in range(1024))
    sim = SimChip(chip, initial_flash=image + b"\xff" * (chip.flash.size - len(image)))
    rom = StreamBootloader(BootloaderCore(sim, bootloader_profile(chip, Link.USART,
                                                                  {"checksum": True})),
                           Link.USART)
    # AN3155: 0x7F, then Get Checksum 0xA1 0x5E, address and length blocks with their XOR.
    rom.feed(b"\x7f")
    assert rom.take() == bytes([ACK])
    rom.feed(bytes([0xA1, 0x5E]))
    rom.feed(_framed(0x08, 0x00, 0x00, 0x00))
    rom.feed(_framed(0x00, 0x00, 0x04, 0x00))   # 1024 bytes
    reply = rom.take()
    assert reply[:4] == bytes([ACK]) * 4   # command, address, length, computed
    crc, check = reply[4:8], reply[8]
    assert len(reply) == 9
    assert check == reduce(xor, crc, 0)
    assert int.from_bytes(crc, "big") == crc32_mpeg2(as_the_unit_sees(image))
