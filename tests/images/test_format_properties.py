"""Any sparse map written as Intel HEX, S-record or DfuSe reads back identical."""

from __future__ import annotations

import bincopy
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.dfufile import dfuse_from_memory, read_dfu
from runner.formats import parse_ihex, parse_srec
from runner.memmap import MemoryMap, Segment


@st.composite
def sparse_maps(draw: st.DrawFn) -> MemoryMap:
    address = draw(st.integers(0x08000000, 0x0800FFFF))
    segments = []
    for _ in range(draw(st.integers(1, 5))):
        data = draw(st.binary(min_size=1, max_size=300))
        segments.append(Segment(address, data))
        # Gaps large enough to cross 64 KiB boundaries (extended address records).
        address += len(data) + draw(st.integers(1, 0x18000))
    return MemoryMap.from_segments(segments)


def _binfile(memory: MemoryMap) -> bincopy.BinFile:
    binfile = bincopy.BinFile()
    for segment in memory:
        binfile.add_binary(segment.data, address=segment.address)
    return binfile


@settings(max_examples=60, deadline=None)
@given(sparse_maps())
def test_intel_hex_round_trips(memory: MemoryMap) -> None:
    text = _binfile(memory).as_ihex().encode()
    assert parse_ihex(text, "x.hex") == memory


@settings(max_examples=60, deadline=None)
@given(sparse_maps())
def test_srec_round_trips(memory: MemoryMap) -> None:
    text = _binfile(memory).as_srec().encode()
    assert parse_srec(text, "x.srec") == memory


@settings(max_examples=60, deadline=None)
@given(sparse_maps(), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_dfuse_round_trips(memory: MemoryMap, vendor: int, product: int) -> None:
    dfu = read_dfu(dfuse_from_memory(memory, vendor=vendor, product=product), "x.dfu")
    assert dfu.memory() == memory and (dfu.vendor, dfu.product) == (vendor, product)
