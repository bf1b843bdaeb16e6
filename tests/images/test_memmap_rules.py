"""The memory-map rules the compiler applies: overlap, fit, padding, erase units."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.errors import ImageError
from runner.images import LoadedImage, merge_images
from runner.memmap import MemoryMap, Segment
from transports.chips import chip_database


def _image(name: str, *segments: Segment) -> LoadedImage:
    return LoadedImage(name=name, path=Path(f"{name}.bin"), format="bin", sha256="0" * 64,
                       memory=MemoryMap.from_segments(segments))


def test_overlapping_images_name_both_and_the_first_shared_byte() -> None:
    boot = _image("boot", Segment(0x08000000, bytes(0x4010)))
    app = _image("app", Segment(0x08004000, bytes(16)))
    with pytest.raises(ImageError, match=r"images boot and app both write 0x08004000"):
        merge_images([boot, app])


def test_adjacent_images_merge_into_one_segment() -> None:
    boot = _image("boot", Segment(0x08000000, b"\x01" * 16))
    app = _image("app", Segment(0x08000010, b"\x02" * 16))
    assert merge_images([app, boot]).ranges == ((0x08000000, 0x08000020),)


@st.composite
def disjoint_maps(draw: st.DrawFn) -> MemoryMap:
    count = draw(st.integers(0, 6))
    segments = []
    address = draw(st.integers(0, 64))
    for _ in range(count):
        data = draw(st.binary(min_size=1, max_size=40))
        segments.append(Segment(address, data))
        address += len(data) + draw(st.integers(1, 40))
    return MemoryMap.from_segments(segments)


@given(disjoint_maps(), st.sampled_from([1, 2, 4, 8, 16, 32]), st.integers(0, 255))
def test_padding_keeps_every_byte_and_only_adds_fill(memory: MemoryMap, unit: int,
                                                     fill: int) -> None:
    padded = memory.padded(unit, fill)
    original = {s.address + i: b for s in memory for i, b in enumerate(s.data)}
    for segment in padded:
        assert segment.address % unit == 0 and len(segment) % unit == 0
        for i, value in enumerate(segment.data):
            address = segment.address + i
            assert value == original.pop(address, fill)
    assert not original, "every original byte is still in the padded map"


@given(disjoint_maps(), st.sampled_from([2, 4, 8, 16]))
def test_padding_adds_no_whole_unit_of_fill(memory: MemoryMap, unit: int) -> None:
    padded = memory.padded(unit)
    touched = {(s.address + i) // unit for s in memory for i in range(len(s))}
    assert {(s.address + i) // unit for s in padded for i in range(len(s))} == touched


@given(disjoint_maps())
def test_erase_plan_covers_exactly_the_units_touched(memory: MemoryMap) -> None:
    geometry = chip_database().part("stm32f411re").flash
    memory = memory.shifted(geometry.base + 0x3FF0)   # straddles the 16 KiB sectors 0 and 1
    blocks = memory.blocks(geometry)
    touched = {geometry.block_at(s.address + i).index for s in memory for i in range(len(s))}
    assert [b.index for b in blocks] == sorted(touched)
