"""Readout protection and option bytes through the DFU ROM."""

from __future__ import annotations

import pytest

from runner.errors import ChipMismatch, ConnectError, ReadProtected, Refused
from tests.conftest import set_option_byte
from tests.dfu.conftest import OpenLink, board_of, firmware, make_world
from transports.base import OptionBytesChange
from transports.chips import Chip
from transports.sim.world import DeviceProfile


def test_protected_chip_identifies_without_uid(f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(rdp_level=1)}) as world:
        identity = open_link(world, f411).identify()
        assert identity.rdp_level == 1
        assert identity.uid == ""
        assert identity.flash_size is None


def test_read_protected_upload_is_refused(f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(rdp_level=1)}) as world:
        link = open_link(world, f411)
        with pytest.raises(ReadProtected) as info:
            link.read(0x08000000, 256)
        assert "rdp: 0" in (info.value.hint or "")
        assert link.read_option_bytes().rdp_level == 1  # the session is still usable


def test_erase_under_protection_is_refused(f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(rdp_level=1, fill=0x11)}) as world:
        link = open_link(world, f411)
        with pytest.raises(ReadProtected):
            link.erase(f411.flash.blocks[:1])
        assert world.chips["board"].flash[:16] == b"\x11" * 16


def test_read_unprotect_mass_erases_and_the_session_reconnects(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(rdp_level=1, fill=0x11)}) as world:
        link = open_link(world, f411)
        link.read_unprotect()
        sim = world.chips["board"]
        assert sim.rdp_level == 0
        assert sim.flash == b"\xff" * f411.flash.size
        assert board_of(world).enumerations == 2
        assert link.identify().rdp_level == 0
        link.write(0x08000000, firmware(1024))
        assert link.read(0x08000000, 1024) == firmware(1024)


def test_rdp_zero_through_option_bytes_uses_read_unprotect(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(rdp_level=1)}) as world:
        link = open_link(world, f411)
        link.write_option_bytes(OptionBytesChange(rdp_level=0))
        assert world.chips["board"].rdp_level == 0
        assert link.read_option_bytes().rdp_level == 0


def test_setting_rdp_one_resets_the_chip_and_protects_it(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411)
        link.write_option_bytes(OptionBytesChange(rdp_level=1))
        assert world.chips["board"].rdp_level == 1
        assert board_of(world).enumerations == 2
        assert link.read_option_bytes().rdp_level == 1


def test_rdp_two_needs_confirmation(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411)
        with pytest.raises(Refused) as info:
            link.write_option_bytes(OptionBytesChange(rdp_level=2))
        assert "confirm: irreversible" in (info.value.hint or "")
        assert world.chips["board"].rdp_level == 0


def test_option_byte_fields_other_than_rdp_are_refused(f411: Chip,
                                                       open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411)
        with pytest.raises(Refused):
            link.write_option_bytes(OptionBytesChange(fields={"nrst_stop": 1}))


def test_rom_without_an_option_bytes_alternate(f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(quirks={"no-option-bytes": True})}) as world:
        link = open_link(world, f411)
        with pytest.raises(Refused) as info:
            link.read_option_bytes()
        assert "Option Bytes" in str(info.value)
        assert link.identify().rdp_level == 0


def test_uid_pin_cannot_be_confirmed_under_protection(f411: Chip,
                                                      open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(rdp_level=1)}) as world:
        link = open_link(world, f411, uid="00" * 12)
        with pytest.raises(ChipMismatch) as info:
            link.identify()
        assert "readout protection" in str(info.value)


def test_rdp_two_confirmed_locks_the_chip_and_the_rom_never_returns(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411)
        link.write_option_bytes(OptionBytesChange(rdp_level=2, confirmed_irreversible=True))
        assert world.chips["board"].rdp_level == 2
        assert board_of(world).device is None
        with pytest.raises(ConnectError):
            open_link(world, f411)


def test_f4_option_bytes_report_rdp_from_byte_1(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411)
        # A USER/BOR byte that reads as level 2 at the wrong offset.
        set_option_byte(world.chips["board"], 0, 0xCC)
        option_bytes = link.read_option_bytes()
        assert option_bytes.raw[:2] == b"\xcc\xaa"
        assert option_bytes.rdp_level == 0


def test_f4_rdp_write_leaves_user_and_bor_byte_untouched(f411: Chip,
                                                         open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411)
        sim = world.chips["board"]
        set_option_byte(sim, 0, 0x4C)  # USER: nRST_STDBY and WDG_SW cleared
        link.write_option_bytes(OptionBytesChange(rdp_level=1))
        assert sim.rdp_level == 1
        assert sim.option_bytes[0] == 0x4C
        assert link.read_option_bytes().rdp_level == 1
