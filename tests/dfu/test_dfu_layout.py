"""DfuSe memory-layout strings, as the ST ROMs write them and as they go wrong."""

from __future__ import annotations

import pytest

from runner.errors import ProtocolError
from transports.dfu.layout import ERASABLE, READABLE, WRITABLE, parse_layout

F4_FLASH = "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"


def test_f4_internal_flash_has_sixteen_sixtyfour_and_128k_sectors() -> None:
    layout = parse_layout(F4_FLASH)
    assert layout.name == "Internal Flash"
    assert [s.size // 1024 for s in layout.sectors] == [16] * 4 + [64] + [128] * 7
    assert layout.sectors[4].address == 0x08010000
    assert layout.sectors[5].address == 0x08020000
    assert layout.size == 1024 * 1024
    assert all(s.readable and s.erasable and s.writable for s in layout.sectors)


def test_f107_internal_flash_has_128_pages_of_2k() -> None:
    layout = parse_layout("@Internal Flash  /0x08000000/128*002Kg")
    assert len(layout.sectors) == 128
    assert layout.end == 0x08040000


def test_option_bytes_with_space_multiplier_are_bytes() -> None:
    layout = parse_layout("@Option Bytes  /0x1FFFC000/01*016 e")
    assert (layout.start, layout.size) == (0x1FFFC000, 16)
    sector = layout.sectors[0]
    assert sector.readable and sector.writable and not sector.erasable


def test_otp_region_with_two_segments_is_contiguous() -> None:
    layout = parse_layout("@OTP Memory /0x1FFF7800/01*512 g,01*016 g")
    assert [(s.address, s.size) for s in layout.sectors] == [(0x1FFF7800, 512),
                                                             (0x1FFF7A00, 16)]


def test_device_feature_is_forced_readable_and_writable() -> None:
    layout = parse_layout("@Device Feature/0xFFFF0000/01*004 g")
    assert layout.sectors[0].flags == READABLE | WRITABLE


def test_type_letter_in_the_multiplier_slot_means_bytes() -> None:
    assert parse_layout("@Ram /0x20000000/01*016e").sectors[0].size == 16


def test_megabyte_and_byte_multipliers() -> None:
    assert parse_layout("@Big /0x90000000/02*001Mg").size == 2 * 1024 * 1024
    assert parse_layout("@Small /0x20000000/04*256Ba").sectors[3].address == 0x20000300


def test_several_address_groups_make_one_region() -> None:
    layout = parse_layout("@Flash /0x08000000/02*001Ka/0x08010000/01*004Kg")
    assert [s.address for s in layout.sectors] == [0x08000000, 0x08000400, 0x08010000]
    assert layout.covers(0x08010000, 4096)
    assert not layout.covers(0x08000000, 0x10000)  # the hole between the groups


def test_allows_checks_the_flag_of_every_sector_touched() -> None:
    layout = parse_layout("@Mixed /0x08000000/01*001Ka,01*001Kg")
    assert layout.allows(0x08000400, 1024, WRITABLE)
    assert not layout.allows(0x08000300, 512, WRITABLE)
    assert layout.allows(0x08000000, 2048, READABLE)
    assert not layout.allows(0x08000000, 1024, ERASABLE)
    assert not layout.allows(0x08000700, 0x200, READABLE)  # runs past the end


@pytest.mark.parametrize(("text", "problem"), [
    ("Internal Flash /0x08000000/04*016Kg", "does not start with '@'"),
    ("@/0x08000000/04*016Kg", "has no name"),
    ("@Internal Flash", "expected '/<address>/<segments>'"),
    ("@Internal Flash /0x08000000", "expected '/<address>/<segments>'"),
    ("@Internal Flash /08000000/04*016Kg", "is not a 0x-prefixed hex address"),
    ("@Internal Flash /0x0800000G/04*016Kg", "is not a 0x-prefixed hex address"),
    ("@Internal Flash /0x08000000/04*016Kz", "is not <count>*<size>"),
    ("@Internal Flash /0x08000000/04x016Kg", "is not <count>*<size>"),
    ("@Internal Flash /0x08000000/04*016K", "is not <count>*<size>"),
    ("@Internal Flash /0x08000000/", "no segments follow"),
    ("@Internal Flash /0x08000000/00*016Kg", "is empty"),
])
def test_malformed_layouts_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_layout(text)
    assert problem in str(info.value)
    assert info.value.command == "layout"
