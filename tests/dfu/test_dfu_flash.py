"""Erase, write, read back and leave, through the driver, on simulated ROMs."""

from __future__ import annotations

import contextlib

import pytest

from runner.errors import ConnectError, LinkLost, Refused, WriteError
from tests.dfu.conftest import OpenLink, board_of, firmware, make_world, plug
from transports.base import ResetMode
from transports.chips import Chip
from transports.sim.dfu import DFU_ERROR, DNLOAD_IDLE
from transports.sim.usb import ControlRequest
from transports.sim.world import DeviceProfile


def test_f411_erase_write_read_back_and_leave(f411: Chip, open_link: OpenLink) -> None:
    image = firmware(40_000)
    with make_world() as world:
        link = open_link(world, f411)
        link.erase(f411.flash.blocks_covering(0x08000000, len(image)))
        link.write(0x08000000, image)
        assert link.read(0x08000000, len(image)) == image
        link.reset(ResetMode.GO)
        board = board_of(world)
        assert board.application == 0x08000000
        assert board.device is None  # the application runs: no DFU device on the bus


def test_page_erase_touches_exactly_the_sectors_the_image_covers(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(fill=0x5A)}) as world:
        link = open_link(world, f411)
        link.erase(f411.flash.blocks_covering(0x08004000, 0x5000))  # sectors 1 and 2
        flash = world.chips["board"].flash
        assert flash[:0x4000] == b"\x5a" * 0x4000
        assert flash[0x4000:0xC000] == b"\xff" * 0x8000
        assert flash[0xC000:0x10000] == b"\x5a" * 0x4000
        assert world.chips["board"].stats.blocks_erased == 2


def test_mass_erase_clears_the_whole_flash(f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(fill=0x00)}) as world:
        link = open_link(world, f411)
        link.erase(())
        assert world.chips["board"].flash == b"\xff" * f411.flash.size


def test_l476_write_with_a_short_last_block_lands_at_the_right_address(
        l476: Chip, open_link: OpenLink) -> None:
    image = firmware(2048 * 3 + 100)
    with make_world() as world:
        link = open_link(world, l476)
        link.erase(l476.flash.blocks_covering(0x08002000, len(image)))
        link.write(0x08002000, image)
        assert world.chips["board"].flash[0x2000:0x2000 + len(image)] == image
        assert link.read(0x08002000 + 5, len(image) - 5) == image[5:]


def test_writing_unerased_f4_flash_fails_verify_with_the_address(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(fill=0x00)}) as world:
        link = open_link(world, f411)
        with pytest.raises(WriteError) as info:
            link.write(0x08000000, firmware(4096))
        assert info.value.address == 0x08000000
        assert "ERR_VERIFY" in str(info.value)
        assert "erase" in (info.value.hint or "")


def test_writing_unerased_l4_flash_fails_with_errwrite(l476: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(fill=0x00)}) as world:
        link = open_link(world, l476)
        with pytest.raises(WriteError) as info:
            link.write(0x08000800, firmware(2048 * 2))
        assert info.value.address == 0x08000800
        assert "ERR_WRITE" in str(info.value)


def test_session_goes_on_after_a_failed_write(f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(fill=0x00)}) as world:
        link = open_link(world, f411)
        with pytest.raises(WriteError):
            link.write(0x08000000, firmware(2048))
        link.erase(f411.flash.blocks[:1])
        link.write(0x08000000, firmware(2048))
        assert link.read(0x08000000, 2048) == firmware(2048)


def test_write_outside_the_layout_is_refused_before_sending(f411: Chip,
                                                            open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411)
        with pytest.raises(Refused) as info:
            link.write(f411.flash.end - 16, bytes(32))
        assert "does not allow" in str(info.value)


def test_leave_without_firmware_brings_the_rom_back(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411)
        link.reset(ResetMode.GO)
        board = board_of(world)
        assert board.application is None
        assert board.enumerations == 2
        open_link(world, f411).identify()


def test_only_go_is_a_dfu_reset(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411)
        with pytest.raises(Refused) as info:
            link.reset(ResetMode.HARDWARE)
        assert "go" in (info.value.hint or "")


def test_device_vanishing_mid_session_is_link_lost(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411)
        board_of(world).disconnect()
        with pytest.raises(LinkLost):
            link.read(0x08000000, 16)


def test_time_is_charged_to_the_chip_clock(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411)
        clock = world.chips["board"].clock
        before = clock.elapsed
        link.erase(f411.flash.blocks[5:6])  # one 128 KiB sector
        assert clock.elapsed - before >= f411.timing.erase_seconds(128 * 1024)


def test_two_boards_flash_in_parallel_on_one_backend(f411: Chip, open_link: OpenLink) -> None:
    from concurrent.futures import ThreadPoolExecutor

    images = {"left": firmware(20_000), "right": firmware(30_000, entry=0x08000201)}
    with make_world() as world:
        links = {name: open_link(world, f411, name, **{"port-path": f"1-{port}"})
                 for port, name in enumerate(images, 1)}

        def flash(name: str) -> bytes:
            link, image = links[name], images[name]
            link.erase(f411.flash.blocks_covering(0x08000000, len(image)))
            link.write(0x08000000, image)
            return link.read(0x08000000, len(image))

        with ThreadPoolExecutor(max_workers=2) as pool:
            results = dict(zip(images, pool.map(flash, images), strict=True))
        assert results == images
        assert world.chips["left"].flash[:20_000] == images["left"]


def test_two_boards_without_a_selection_are_ambiguous(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        plug(world, f411, "other")
        with pytest.raises(ConnectError) as info:
            open_link(world, f411)
        assert "refusing to guess" in str(info.value)


def test_a_board_left_in_dfu_error_is_recovered_on_connect(f411: Chip,
                                                           open_link: OpenLink) -> None:
    with make_world() as world:
        device = plug(world, f411, "board").device
        assert device is not None
        with contextlib.suppress(Exception):
            device.control(ControlRequest(request_type=0x21, request=1, value=1, index=0,
                                          data=b"\x00"))  # block 1: stalls into dfuERROR
        assert device.state == DFU_ERROR
        link = open_link(world, f411)
        link.erase(f411.flash.blocks[:1])
        assert device.state == DNLOAD_IDLE  # after the erase: the session is usable


@pytest.mark.parametrize("busy", ["hold", "answer"])
def test_flashing_works_whether_the_rom_holds_or_answers_getstatus_while_busy(
        f411: Chip, open_link: OpenLink, busy: str) -> None:
    # F4 ROMs NAK a GETSTATUS until the flash operation ends; others answer dfuDNBUSY.
    quirks = {"mass-erase-poll-ms": 50} | ({"getstatus-while-busy": "answer"}
                                           if busy == "answer" else {})
    with make_world({"board": DeviceProfile(quirks=quirks)}) as world:
        link = open_link(world, f411)
        link.erase(())
        link.erase(f411.flash.blocks[:2])
        link.write(0x08000000, firmware(40 * 1024))
        board = board_of(world)
        assert board.sim.flash[:40 * 1024] == firmware(40 * 1024)
        assert board.device is not None
        assert (board.device.held_polls > 0) == (busy == "hold")


STRICT = {"address-pointer": "selected-alternate"}


def test_a_rom_that_reads_only_the_selected_alternate_still_connects_and_flashes(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(quirks=STRICT)}) as world:
        link = open_link(world, f411)
        identity = link.identify()
        assert identity.uid == ""
        assert "0x1FFF7A10" in identity.details["uid_unread"]
        assert identity.details["uid_source"].startswith("USB serial")
        assert identity.dev_id == f411.dev_id
        link.erase(f411.flash.blocks[:1])
        link.write(0x08000000, firmware(4096))
        assert board_of(world).sim.flash[:4096] == firmware(4096)


def test_a_pinned_uid_on_a_rom_that_cannot_read_it_is_refused_before_anything_is_written(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(quirks=STRICT, fill=0x5A)}) as world:
        link = open_link(world, f411, uid="00" * 12)
        with pytest.raises(ConnectError, match="cannot confirm the UID.*refused"):
            link.identify()
        assert board_of(world).sim.flash[:16] == b"\x5a" * 16
