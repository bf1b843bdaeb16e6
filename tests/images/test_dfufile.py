"""Our DfuSe writer produces the UM0391 layout byte for byte, and reads it back."""

from __future__ import annotations

import struct
import zlib

from runner.dfufile import (
    DfuTarget,
    dfuse_from_memory,
    has_dfu_suffix,
    read_dfu,
    write_dfuse,
)
from runner.memmap import MemoryMap, Segment
from tests.images.helpers import DATA, FLASH, load


def _known_good(elements: list[tuple[int, bytes]], *, alt: int, name: bytes, vid: int,
                pid: int, bcd: int) -> bytes:
    """The layout spelled out field by field from UM0391 (pydfu's struct formats)."""
    payload = b"".join(struct.pack("<2I", address, len(data)) + data
                       for address, data in elements)
    target = struct.pack("<6sBI255s2I", b"Target", alt, 1, name, len(payload),
                         len(elements)) + payload
    body = struct.pack("<5sBIB", b"DfuSe", 1, 11 + len(target), 1) + target
    suffix = struct.pack("<4H3sB", bcd, pid, vid, 0x011A, b"UFD", 16)
    crc = zlib.crc32(body + suffix) ^ 0xFFFFFFFF
    return body + suffix + struct.pack("<I", crc)


def test_writer_matches_the_documented_layout() -> None:
    memory = MemoryMap((Segment(FLASH, b"\x01\x02\x03\x04"), Segment(FLASH + 0x800, b"CFG")))
    written = dfuse_from_memory(memory, vendor=0x0483, product=0xDF11, device=0x2200)
    expected = _known_good([(FLASH, b"\x01\x02\x03\x04"), (FLASH + 0x800, b"CFG")], alt=0,
                           name=b"Internal Flash", vid=0x0483, pid=0xDF11, bcd=0x2200)
    assert written == expected


def test_checked_in_dfu_is_the_binary_in_the_documented_layout() -> None:
    binary = (DATA / "flat.bin").read_bytes()
    expected = _known_good([(FLASH, binary)], alt=0, name=b"Internal Flash", vid=0x0483,
                           pid=0xDF11, bcd=0x2200)
    assert (DATA / "flat.dfu").read_bytes() == expected


def test_read_returns_targets_elements_and_suffix_fields() -> None:
    dfu = read_dfu((DATA / "sparse.dfu").read_bytes(), "sparse.dfu")
    assert dfu.dfuse and (dfu.vendor, dfu.product, dfu.device) == (0x0483, 0xDF11, 0x2200)
    assert len(dfu.targets) == 1 and dfu.targets[0].name == "Internal Flash"
    assert [e.address for e in dfu.targets[0].elements] == [FLASH, FLASH + 0x800]


def test_several_targets_round_trip() -> None:
    targets = (DfuTarget(alt=0, name="Internal Flash", elements=(Segment(FLASH, b"abc"),)),
               DfuTarget(alt=1, name="", elements=(Segment(0x1FFFC000, b"\xaa\x55"),)))
    dfu = read_dfu(write_dfuse(targets), "x.dfu")
    assert dfu.targets == targets


def test_suffix_crc_is_crc32_without_final_inversion() -> None:
    data = (DATA / "flat.dfu").read_bytes()
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4]) ^ 0xFFFFFFFF
    assert has_dfu_suffix(data)
    assert not has_dfu_suffix(data[:-1] + bytes([data[-1] ^ 1]))


def test_plain_dfu_file_is_a_raw_binary_with_a_suffix(tmp_path) -> None:
    binary = (DATA / "flat.bin").read_bytes()
    unsigned = binary + struct.pack("<4H3sB", 0xFFFF, 0xFFFF, 0xFFFF, 0x0100, b"UFD", 16)
    path = tmp_path / "plain.dfu"
    path.write_bytes(unsigned + struct.pack("<I", zlib.crc32(unsigned) ^ 0xFFFFFFFF))
    image = load(path, address=FLASH)
    assert image.format == "dfu"
    assert image.memory == load(DATA / "flat.bin", address=FLASH).memory
