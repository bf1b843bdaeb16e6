"""The DFU state machine as the driver uses it, against the strict simulated ROM."""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator

import pytest
import usb.core

from runner.errors import EraseError, LinkLost, LinkTimeout, Refused
from tests.dfu.conftest import OpenLink, board_of, make_world, plug
from transports.chips import Chip
from transports.dfu.protocol import DfuProtocol, DfuState, DfuStatus
from transports.dfu.usb import LinkNames, Stalled
from transports.sim import SimulationWorld
from transports.sim.dfu import SimDfuBoard
from transports.sim.usb import SimUsbBackend
from transports.sim.world import DeviceProfile

NAMES = LinkNames(link="dfu", device="board")


class Host:
    """Raw requests to one simulated board, the sleeps it is asked to take counted."""

    def __init__(self, world: SimulationWorld, board: SimDfuBoard) -> None:
        self.board = board
        self.sleeps: list[float] = []
        self.dev = usb.core.find(backend=world.shared("usb", SimUsbBackend),
                                 idVendor=0x0483, idProduct=0xDF11)
        self.dev.set_interface_altsetting(interface=0, alternate_setting=0)

        def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            board.sim.clock.advance(seconds)

        self.dfu = DfuProtocol(self.dev, interface=0, transfer_size=2048, timeout_ms=5000,
                               sleep=sleep, names=NAMES)

    def state(self) -> int:
        return self.dfu.get_state()

    def dnload(self, block: int, data: bytes) -> None:
        self.dev.ctrl_transfer(0x21, 1, block, 0, data)


@pytest.fixture
def host(f411: Chip) -> Iterator[Host]:
    with make_world() as world:
        yield Host(world, plug(world, f411, "board"))


def _stalls(action: object) -> bool:
    try:
        action()  # type: ignore[operator]
    except usb.core.USBError as error:
        return error.errno == errno.EPIPE
    return False


def test_device_starts_in_dfu_idle(host: Host) -> None:
    assert host.state() == DfuState.DFU_IDLE


def test_command_runs_on_first_getstatus_and_reports_on_the_next(host: Host) -> None:
    host.dnload(0, b"\x21" + (0x08004000).to_bytes(4, "little"))
    assert host.state() == DfuState.DNLOAD_SYNC
    first = host.dfu.get_status()
    assert first.state == DfuState.DNBUSY
    host.board.sim.clock.advance(first.poll_ms / 1000)
    second = host.dfu.get_status()
    assert (second.state, second.status) == (DfuState.DNLOAD_IDLE, DfuStatus.OK)


def test_request_in_the_wrong_state_stalls_into_dfu_error(host: Host) -> None:
    host.dfu.set_address(0x08000000)  # now dfuDNLOAD-IDLE
    assert _stalls(lambda: host.dev.ctrl_transfer(0xA1, 2, 2, 0, 16))  # UPLOAD
    status = host.dfu.get_status()
    assert (status.state, status.status) == (DfuState.DFU_ERROR, DfuStatus.ERR_STALLEDPKT)


def test_clrstatus_leaves_dfu_error_for_idle(host: Host) -> None:
    assert _stalls(lambda: host.dnload(1, b"\x00"))  # block 1 is reserved
    assert host.state() == DfuState.DFU_ERROR
    host.dfu.clear_status()
    assert host.state() == DfuState.DFU_IDLE


def test_abort_in_dfu_error_stalls_only_clrstatus_clears_it(host: Host) -> None:
    assert _stalls(lambda: host.dnload(1, b"\x00"))
    assert _stalls(lambda: host.dev.ctrl_transfer(0x21, 6, 0, 0, None))  # ABORT
    assert host.state() == DfuState.DFU_ERROR


def test_ensure_idle_recovers_from_dfu_error(host: Host) -> None:
    assert _stalls(lambda: host.dnload(1, b"\x00"))
    host.dfu.ensure_idle()
    assert host.state() == DfuState.DFU_IDLE


def test_ensure_idle_aborts_an_unfinished_download(host: Host) -> None:
    host.dfu.set_address(0x08000000)
    assert host.state() == DfuState.DNLOAD_IDLE
    host.dfu.ensure_idle()
    assert host.state() == DfuState.DFU_IDLE


def test_zero_length_download_in_idle_stalls(host: Host) -> None:
    assert _stalls(lambda: host.dnload(0, b""))
    assert host.state() == DfuState.DFU_ERROR


def test_upload_moves_to_upload_idle_and_abort_returns_to_idle(host: Host) -> None:
    host.dfu.set_address(0x1FFFC000)
    host.dfu.abort()
    assert host.state() == DfuState.DFU_IDLE
    assert len(host.dev.ctrl_transfer(0xA1, 2, 2, 0, 16)) == 16
    assert host.state() == DfuState.UPLOAD_IDLE
    host.dfu.abort()
    assert host.state() == DfuState.DFU_IDLE


def test_zero_length_download_after_a_command_leaves_through_manifestation(
        host: Host) -> None:
    host.dfu.set_address(0x08000000)
    host.dnload(2, b"")
    assert host.state() == DfuState.MANIFEST_SYNC
    assert host.dfu.get_status().state == DfuState.MANIFEST
    assert host.board.enumerations == 2  # no firmware there: the ROM came back


def test_get_commands_lists_the_dfuse_command_set(host: Host) -> None:
    assert bytes(host.dev.ctrl_transfer(0xA1, 2, 0, 0, 16)) == bytes([0x00, 0x21, 0x41, 0x92])


def test_block_n_lands_at_pointer_plus_n_minus_2_times_wlength(host: Host) -> None:
    host.dfu.erase_page(0x08000000)
    host.dfu.set_address(0x08000000)
    host.dnload(4, b"\xa5" * 16)
    host.dfu.wait_done("write", 0x08000020)
    assert host.board.sim.flash[0x20:0x30] == b"\xa5" * 16
    assert host.board.sim.flash[:0x20] == b"\xff" * 0x20


def test_erase_status_tells_the_host_to_wait_the_erase_time(host: Host, f411: Chip) -> None:
    host.dfu.polls = 0
    host.dfu.erase_page(0x08020000)  # a 128 KiB sector
    assert host.dfu.polls == 2  # dfuDNBUSY, then done: the host waited as told
    expected = f411.timing.erase_seconds(128 * 1024)
    assert host.sleeps[-1] == pytest.approx(expected, abs=0.001)


def test_a_getstatus_sent_while_the_rom_is_busy_is_held_until_it_is_done(f411: Chip) -> None:
    # The F4 ROM NAKs GETSTATUS while it erases: the poll after the under-reported
    # 100 ms completes only when the erase has ended, with the final state.
    quirks = {"mass-erase-poll-ms": 100}  # the F405 ROM's habit (dfu-util notes it)
    with make_world({"board": DeviceProfile(quirks=quirks)}) as world:
        board = plug(world, f411, "board")
        host = Host(world, board)
        host.dfu.mass_erase()
        assert host.sleeps == [pytest.approx(0.1)]
        assert board.device is not None and board.device.held_polls == 1
        assert board.sim.clock.elapsed >= f411.timing.mass_erase_ms / 1000
        assert host.state() == DfuState.DNLOAD_IDLE


def test_a_held_getstatus_that_outlasts_the_host_timeout_is_polled_again(f411: Chip) -> None:
    quirks = {"mass-erase-poll-ms": 100}
    with make_world({"board": DeviceProfile(quirks=quirks)}) as world:
        board = plug(world, f411, "board")
        host = Host(world, board)
        host.dfu.timeout_ms = 2_000
        host.dfu.getstatus_timeout_ms = 3_000  # shorter than the 16 s mass erase
        host.dfu.mass_erase()
        assert board.device is not None and board.device.held_polls >= 2
        assert host.state() == DfuState.DNLOAD_IDLE


def test_polling_goes_on_while_a_rom_that_answers_busy_under_reports_it(f411: Chip) -> None:
    quirks = {"mass-erase-poll-ms": 100, "getstatus-while-busy": "answer"}
    with make_world({"board": DeviceProfile(quirks=quirks)}) as world:
        host = Host(world, plug(world, f411, "board"))
        host.dfu.mass_erase()
        assert host.sleeps[0] == pytest.approx(0.1)
        assert len(host.sleeps) >= 2
        assert sum(host.sleeps) > 30 * 0.1  # far longer than the 100 ms it claimed
        assert host.state() == DfuState.DNLOAD_IDLE


def test_getstatus_stalled_while_busy_is_retried(l476: Chip) -> None:
    quirks = {"mass-erase-poll-ms": 10, "stall-getstatus-while-busy": True}
    with make_world({"board": DeviceProfile(quirks=quirks)}) as world:
        host = Host(world, plug(world, l476, "board"))
        host.dfu.mass_erase()
        assert host.state() == DfuState.DNLOAD_IDLE


def test_a_device_busy_past_the_budget_is_a_timeout(host: Host) -> None:
    host.dfu.busy_budget_s = 0.01
    with pytest.raises(LinkTimeout):
        host.dfu.erase_page(0x08020000)


def test_rom_stalls_getstatus_only_when_quirked(host: Host) -> None:
    host.dnload(0, b"\x41" + (0x08020000).to_bytes(4, "little"))
    assert host.dfu.get_status().state == DfuState.DNBUSY
    early = host.dfu.get_status()  # asked again without waiting: held, never stalled
    assert early.state == DfuState.DNLOAD_IDLE
    assert host.board.device is not None and host.board.device.held_polls == 1


def test_a_rom_that_answers_busy_reports_the_time_left(f411: Chip) -> None:
    quirks = {"getstatus-while-busy": "answer"}
    with make_world({"board": DeviceProfile(quirks=quirks)}) as world:
        host = Host(world, plug(world, f411, "board"))
        host.dnload(0, b"\x41" + (0x08020000).to_bytes(4, "little"))
        assert host.dfu.get_status().state == DfuState.DNBUSY
        early = host.dfu.get_status()
        assert early.state == DfuState.DNBUSY and early.poll_ms > 0


def test_requests_other_than_getstatus_stall_while_busy(host: Host) -> None:
    host.dnload(0, b"\x41" + (0x08020000).to_bytes(4, "little"))
    assert host.dfu.get_status().state == DfuState.DNBUSY
    assert _stalls(lambda: host.dev.ctrl_transfer(0xA1, 5, 0, 0, 1))  # GETSTATE
    assert host.dfu.get_status().state == DfuState.DFU_ERROR


def test_erase_outside_flash_is_an_erase_error_with_the_address(host: Host) -> None:
    with pytest.raises(EraseError) as info:
        host.dfu.erase_page(0x08100000)
    assert info.value.address == 0x08100000
    assert "ERR_TARGET" in str(info.value)
    assert host.state() == DfuState.DFU_IDLE  # recovered for the next command


def test_set_address_to_nothing_is_refused(host: Host) -> None:
    with pytest.raises(Refused) as info:
        host.dfu.set_address(0x50000000)
    assert "ERR_TARGET" in str(info.value)
    assert info.value.command == "set-address"


def test_unknown_dfuse_command_stalls_and_reports_stalledpkt(host: Host) -> None:
    with pytest.raises(Refused) as info:
        host.dfu._command("special", 0, b"\x55", None)
    assert "ERR_STALLEDPKT" in str(info.value)
    assert host.state() == DfuState.DFU_IDLE


def test_stall_is_a_wire_signal_inside_the_protocol(host: Host) -> None:
    with pytest.raises(Stalled):
        host.dfu._out(1, 1, b"\x00", "DFU_DNLOAD")


def test_read_unprotect_resets_and_reenumerates(f411: Chip) -> None:
    with make_world({"board": DeviceProfile(rdp_level=1)}) as world:
        board = plug(world, f411, "board")
        host = Host(world, board)
        host.dfu.read_unprotect()
        assert board.enumerations == 2
        assert board.sim.rdp_level == 0
        with pytest.raises(LinkLost):
            host.state()  # the old handle died with the reset


def test_option_bytes_region_reads_as_the_chip_holds_them(host: Host, f411: Chip) -> None:
    raw = host.dfu.upload(f411.option_bytes.address, f411.option_bytes.size)
    assert raw == host.board.sim.option_bytes


def test_uid_words_read_by_upload(host: Host, f411: Chip) -> None:
    words = host.dfu.upload(f411.uid_address, 12)
    assert words == host.board.sim.uid
    size = struct.unpack("<H", host.dfu.upload(f411.flash_size_address, 2))[0]
    assert size == 512


def test_board_helper_counts_enumerations(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        open_link(world, f411)
        assert board_of(world).enumerations == 1
