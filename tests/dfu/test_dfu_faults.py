"""Injected faults show up as the errors the recovery policies match on."""

from __future__ import annotations

import pytest

from runner.errors import LinkLost, LinkTimeout, Refused
from tests.dfu.conftest import OpenLink, board_of, firmware, make_world
from transports.chips import Chip
from transports.sim import Fault
from transports.sim.world import DeviceProfile


def _profile(*faults: Fault) -> dict[str, DeviceProfile]:
    return {"board": DeviceProfile(faults=faults)}


def test_unanswered_write_is_a_link_timeout(f411: Chip, open_link: OpenLink) -> None:
    with make_world(_profile(Fault(kind="timeout", op="write", at_byte=4096))) as world:
        link = open_link(world, f411)
        with pytest.raises(LinkTimeout):
            link.write(0x08000000, firmware(8192))


def test_refused_erase_is_refused_and_the_session_goes_on(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world(_profile(Fault(kind="nack", op="erase"))) as world:
        link = open_link(world, f411)
        with pytest.raises(Refused) as info:
            link.erase(f411.flash.blocks[:1])
        assert "ERR_UNKNOWN" in str(info.value)
        link.erase(f411.flash.blocks[:1])  # transient: the retry succeeds


def test_link_lost_mid_write_and_a_new_session_finds_the_board_again(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world(_profile(Fault(kind="link-lost", op="write", at_byte=2048))) as world:
        link = open_link(world, f411)
        link.erase(f411.flash.blocks[:1])
        with pytest.raises(LinkLost):
            link.write(0x08000000, firmware(8192))
        assert board_of(world).enumerations == 2
        again = open_link(world, f411)
        again.erase(f411.flash.blocks[:1])
        again.write(0x08000000, firmware(8192))
        assert again.read(0x08000000, 8192) == firmware(8192)


def test_brownout_leaves_a_half_written_block(f411: Chip, open_link: OpenLink) -> None:
    with make_world(_profile(Fault(kind="brownout", op="write", at_byte=0))) as world:
        link = open_link(world, f411)
        with pytest.raises(LinkLost):
            link.write(0x08000000, firmware(2048))
        flash = world.chips["board"].flash
        assert flash[:1024] == firmware(2048)[:1024]
        assert flash[1024:2048] == b"\xff" * 1024


def test_corrupted_byte_is_caught_only_by_read_back(f411: Chip, open_link: OpenLink) -> None:
    with make_world(_profile(Fault(kind="corrupt", op="write"))) as world:
        link = open_link(world, f411)
        link.write(0x08000000, firmware(2048))  # the ROM's own verify passes on what it wrote
        assert link.read(0x08000000, 2048) != firmware(2048)


def test_board_silent_at_connect_is_a_link_timeout(f411: Chip, open_link: OpenLink) -> None:
    with make_world(_profile(Fault(kind="timeout", op="connect"))) as world, \
            pytest.raises(LinkTimeout):
        open_link(world, f411)


def test_corrupted_read_differs_once_and_a_second_read_is_right(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world(_profile(Fault(kind="corrupt", op="read", at_byte=100))) as world:
        link = open_link(world, f411)
        link.erase(f411.flash.blocks[:1])
        link.write(0x08000000, firmware(4096))
        first = link.read(0x08000000, 4096)
        assert first != firmware(4096)
        assert link.read(0x08000000, 4096) == firmware(4096)
