"""Bytes of a partly written sector are read before the erase and written back."""

from __future__ import annotations

import pytest

from runner.errors import FlashError
from runner.memmap import MemoryMap, Segment
from runner.preserve import (
    ERASED_RUN,
    PreserveRange,
    merge_preserved,
    overlay,
    preserve_plan,
)
from transports.chips import chip_database

F4 = chip_database().part("stm32f411re").flash      # 4x16K, 64K, 3x128K sectors
SECTOR5 = 0x08020000                                # 128 KiB


def test_plan_reads_the_rest_of_the_sector_around_the_image() -> None:
    memory = MemoryMap((Segment(SECTOR5 + 0x400, bytes(0x400)),))
    plan = preserve_plan(memory, F4)
    assert [(r.block.index, r.address, r.length) for r in plan] == [
        (5, SECTOR5, 0x400), (5, SECTOR5 + 0x800, 0x20000 - 0x800)]


def test_plan_is_empty_when_the_image_fills_its_sectors() -> None:
    memory = MemoryMap((Segment(0x08000000, bytes(0x8000)),))   # sectors 0 and 1 exactly
    assert preserve_plan(memory, F4) == []


def test_plan_covers_gaps_between_images_in_one_sector() -> None:
    memory = MemoryMap((Segment(0x08000000, bytes(16)), Segment(0x08000100, bytes(16))))
    plan = preserve_plan(memory, F4)
    assert [(r.address, r.end) for r in plan] == [(0x08000010, 0x08000100),
                                                  (0x08000110, 0x08004000)]


def test_plan_can_be_limited_to_some_sectors() -> None:
    memory = MemoryMap((Segment(0x08000000, bytes(16)), Segment(SECTOR5, bytes(16))))
    plan = preserve_plan(memory, F4, blocks=[F4.blocks[5]])
    assert {r.block.index for r in plan} == {5}


def test_merge_makes_verify_cover_the_whole_sector() -> None:
    image = MemoryMap((Segment(SECTOR5, b"\x11" * 0x400),))
    plan = preserve_plan(image, F4)
    old = bytes(range(256)) * (plan[0].length // 256)
    merged = merge_preserved(image, [(plan[0], old)])
    assert merged.verify.ranges == ((SECTOR5, SECTOR5 + 0x20000),)
    assert merged.verify.bytes_at(SECTOR5 + 0x400, 256) == bytes(range(256))
    assert merged.verify.bytes_at(SECTOR5, 0x400) == b"\x11" * 0x400


def test_merge_does_not_write_back_long_erased_runs() -> None:
    image = MemoryMap((Segment(SECTOR5, b"\x11" * 16),))
    plan = preserve_plan(image, F4)
    old = bytearray(b"\xff" * plan[0].length)
    old[0x1000:0x1004] = b"CAL!"
    merged = merge_preserved(image, [(plan[0], bytes(old))])
    kept = SECTOR5 + 16 + 0x1000
    assert merged.write.ranges == ((SECTOR5, SECTOR5 + 16), (kept, kept + 4))
    assert merged.write.bytes_at(kept, 4) == b"CAL!"
    assert merged.verify.size == 0x20000


def test_merge_writes_back_short_erased_runs() -> None:
    image = MemoryMap((Segment(SECTOR5, b"\x11" * 16),))
    plan = preserve_plan(image, F4)
    old = bytearray(b"\x00" * plan[0].length)
    old[0x100:0x100 + ERASED_RUN - 1] = b"\xff" * (ERASED_RUN - 1)
    merged = merge_preserved(image, [(plan[0], bytes(old))])
    assert merged.write.ranges == ((SECTOR5, SECTOR5 + 0x20000),)


def test_merge_refuses_a_short_read() -> None:
    span = PreserveRange(block=F4.blocks[5], address=SECTOR5, length=16)
    with pytest.raises(FlashError, match="returned 8"):
        merge_preserved(MemoryMap(), [(span, bytes(8))])


def test_overlay_puts_kept_bytes_into_padding_and_beyond() -> None:
    padded = MemoryMap((Segment(0x08000000, b"\x11\x11\xff\xff"),))   # 2 image bytes + fill
    kept = [Segment(0x08000002, b"\xaa\xbb\xcc\xdd\xee\xff")]
    merged = overlay(padded, kept)
    assert merged.ranges == ((0x08000000, 0x08000008),)
    assert merged.segments[0].data == b"\x11\x11\xaa\xbb\xcc\xdd\xee\xff"


def test_overlay_keeps_separate_segments_apart() -> None:
    base = MemoryMap((Segment(0x100, b"ab"),))
    merged = overlay(base, [Segment(0x200, b"cd")])
    assert merged.ranges == ((0x100, 0x102), (0x200, 0x202))
