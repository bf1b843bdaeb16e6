"""Finding the right DFU device: descriptors, serials, port paths, permissions."""

from __future__ import annotations

import struct

import pytest
import usb.core

from runner.errors import ChipMismatch, ConnectError, EnvironmentProblem, ProtocolError
from tests.dfu.conftest import OpenLink, board_of, make_world, plug
from transports.base import LinkRequest
from transports.chips import Chip, ChipDatabase
from transports.dfu import DfuTransport
from transports.dfu.identity import rom_serial
from transports.dfu.usb import (
    FunctionalDescriptor,
    find_functional_descriptor,
    parse_interfaces,
)
from transports.sim.dfu import layout_strings
from transports.sim.endpoints import SimulatedEndpoints
from transports.sim.usb import (
    ConfigurationInfo,
    DeviceInfo,
    InterfaceInfo,
    SimUsbBackend,
    SimUsbDevice,
)
from transports.sim.world import DeviceProfile

DFUSE_FUNCTIONAL = struct.pack("<BBBHHH", 9, 0x21, 0x0B, 255, 2048, 0x011A)


def _interface(alt: int, extra: bytes = b"", protocol: int = 2) -> InterfaceInfo:
    return InterfaceInfo(number=0, alternate=alt, interface_class=0xFE, subclass=0x01,
                         protocol=protocol, name=f"@Internal Flash  /0x08000000/0{alt + 1}*016Kg",
                         extra=extra)


def _config_blob(*interfaces: InterfaceInfo) -> bytes:
    device = SimUsbDevice()
    device.info = DeviceInfo(vendor_id=0x0483, product_id=0xDF11)
    device.configurations = (ConfigurationInfo(interfaces=interfaces),)
    return device.configuration_blob(0)


def test_functional_descriptor_is_found_after_the_last_alternate_setting() -> None:
    blob = _config_blob(_interface(0), _interface(1), _interface(2, DFUSE_FUNCTIONAL))
    assert blob.endswith(DFUSE_FUNCTIONAL)
    found = find_functional_descriptor(blob)
    assert found == FunctionalDescriptor(attributes=0x0B, detach_timeout_ms=255,
                                         transfer_size=2048, dfu_version=0x011A)
    assert found.can_download and found.can_upload and found.will_detach
    assert not found.manifestation_tolerant
    assert found.is_dfuse


def test_functional_descriptor_is_found_where_dfu_11_puts_it() -> None:
    blob = _config_blob(_interface(0, DFUSE_FUNCTIONAL), _interface(1))
    assert find_functional_descriptor(blob) is not None


def test_a_hid_descriptor_is_not_taken_for_a_dfu_one() -> None:
    hid = InterfaceInfo(number=1, interface_class=0x03, extra=bytes([9, 0x21, 0x11, 0x01, 0,
                                                                     1, 0x22, 0x20, 0]))
    blob = _config_blob(_interface(0), hid)
    assert find_functional_descriptor(blob) is None


def test_dfu_10_functional_descriptor_has_no_version_field() -> None:
    blob = _config_blob(_interface(0, bytes([7, 0x21, 0x03, 0xFF, 0x00, 0x00, 0x04])))
    found = find_functional_descriptor(blob)
    assert found is not None
    assert (found.transfer_size, found.dfu_version, found.is_dfuse) == (1024, 0x0100, False)


def test_alternate_settings_are_listed_from_the_raw_descriptor() -> None:
    blob = _config_blob(_interface(0), _interface(1, DFUSE_FUNCTIONAL))
    assert [(i.number, i.alternate, i.protocol) for i in parse_interfaces(blob)] == \
        [(0, 0, 2), (0, 1, 2)]


def test_simulated_f4_rom_shows_the_reference_alternate_settings(f411: Chip) -> None:
    assert layout_strings(f411) == (
        "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,03*128Kg",
        "@Option Bytes  /0x1FFFC000/01*016 e",
        "@OTP Memory /0x1FFF7800/01*512 e,01*016 e",
        "@Device Feature/0xFFFF0000/01*004 e")


def test_simulated_f405_flash_layout_is_the_real_rom_string(chips: ChipDatabase) -> None:
    assert layout_strings(chips.part("stm32f405rg"))[0] == \
        "@Internal Flash  /0x08000000/04*016Kg,01*064Kg,07*128Kg"


def test_rom_serial_is_derived_from_48_bits_of_the_uid() -> None:
    uid = struct.pack("<III", 0x00470031, 0x3436510D, 0x36373230)
    assert rom_serial(uid) == f"{0x00470031 + 0x36373230:08X}3436"


def test_session_reports_serial_port_and_uid(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411)
        identity = link.identify()
        sim = world.chips["board"]
        assert identity.uid == sim.uid_hex
        assert identity.flash_size == 512 * 1024
        assert identity.details["serial"] == rom_serial(sim.uid)
        assert identity.details["serial_matches_uid"] is True
        assert identity.details["port_path"] == board_of(world).port_path
        assert identity.bootloader_version is not None
        assert identity.bootloader_version.startswith("DfuSe 1.1a")


def test_colliding_serials_are_refused_listing_both_boards(f411: Chip,
                                                           open_link: OpenLink) -> None:
    profiles = {name: DeviceProfile(quirks={"serial": "336F38653036", "port-path": path})
                for name, path in (("left", "1-4.1"), ("right", "1-4.2"))}
    with make_world(profiles) as world:
        plug(world, f411, "right")
        with pytest.raises(ConnectError) as info:
            open_link(world, f411, "left", serial="336F38653036")
        message = str(info.value)
        assert "2 USB DFU devices" in message
        assert "1-4.1" in message and "1-4.2" in message
        assert "port-path" in (info.value.hint or "")


def test_port_path_picks_one_of_two_colliding_boards(f411: Chip, open_link: OpenLink) -> None:
    profiles = {name: DeviceProfile(quirks={"serial": "336F38653036", "port-path": path})
                for name, path in (("left", "1-4.1"), ("right", "1-4.2"))}
    with make_world(profiles) as world:
        plug(world, f411, "left")
        link = open_link(world, f411, "right", serial="336F38653036", **{"port-path": "1-4.2"})
        assert link.identify().uid == world.chips["right"].uid_hex


def test_uid_pin_refuses_the_wrong_board_before_erasing(f411: Chip,
                                                        open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411, uid="00" * 12)
        with pytest.raises(ChipMismatch):
            link.erase(f411.flash.blocks[:1])
        assert world.chips["board"].stats.blocks_erased == 0


def test_no_device_is_a_connect_error_with_advice(f411: Chip) -> None:
    with make_world() as world:
        request = LinkRequest(device="d", link="l", kind="dfu", options={"serial": "NOPE"},
                              chip=f411, endpoints=SimulatedEndpoints(world))
        transport = DfuTransport.open(request)
        with pytest.raises(ConnectError) as info:
            transport.connect()
    assert "no USB DFU device 0483:df11 with serial NOPE" in str(info.value)
    assert "BOOT0" in (info.value.hint or "")


def test_discovery_sees_only_the_boards_the_world_plugged(f411: Chip) -> None:
    # Composition plugs the plan's boards; a session never plugs its own.
    with make_world() as world:
        endpoints = SimulatedEndpoints(world)
        request = LinkRequest(device="board", link="l", kind="dfu", options={}, chip=f411,
                              endpoints=endpoints)
        with pytest.raises(ConnectError, match="no USB DFU device"):
            DfuTransport.open(request).connect()
        endpoints.plug(device="board", link="l", kind="dfu", chip=f411, options={})
        link = DfuTransport.open(request)
        link.connect()
        try:
            assert link.identify().uid == world.chips["board"].uid_hex
        finally:
            link.close()


def test_permission_denied_tells_how_to_install_udev_rules(f411: Chip,
                                                           open_link: OpenLink) -> None:
    with make_world() as world:
        board = plug(world, f411, "board")
        assert board.device is not None
        board.device.accessible = False
        with pytest.raises(EnvironmentProblem) as info:
            open_link(world, f411)
        assert "99-flashrunner.rules" in (info.value.hint or "")


def test_unpowered_board_is_not_found(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        plug(world, f411, "board").disconnect()
        with pytest.raises(ConnectError):
            open_link(world, f411)


def test_layout_of_another_chip_is_a_chip_mismatch(f411: Chip, open_link: OpenLink) -> None:
    quirks = {"flash-layout": "@Internal Flash  /0x08000000/256*002Kg"}
    with make_world({"board": DeviceProfile(quirks=quirks)}) as world, \
            pytest.raises(ChipMismatch) as info:
        open_link(world, f411)
    assert "256*002Kg" in str(info.value)


def test_product_string_naming_another_dev_id_is_a_chip_mismatch(
        f411: Chip, open_link: OpenLink) -> None:
    quirks = {"product": "STM32 0x418 DFU Bootloader"}
    with make_world({"board": DeviceProfile(quirks=quirks)}) as world, \
            pytest.raises(ChipMismatch):
        open_link(world, f411)


def test_flash_size_register_of_another_part_is_a_chip_mismatch(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world({"board": DeviceProfile(flash_size_register=256)}) as world:
        link = open_link(world, f411)
        with pytest.raises(ChipMismatch) as info:
            link.identify()
        assert "256 KiB" in str(info.value)


def test_run_time_dfu_interface_asks_for_the_bootloader(f411: Chip) -> None:
    class RunTime(SimUsbDevice):
        def __init__(self) -> None:
            super().__init__()
            self.info = DeviceInfo(vendor_id=0x0483, product_id=0xDF11, serial="APP")
            self.configurations = (ConfigurationInfo(interfaces=(
                _interface(0, DFUSE_FUNCTIONAL, protocol=1),)),)

    with make_world() as world:
        endpoints = SimulatedEndpoints(world)
        endpoints.backend.plug(RunTime())
        transport = DfuTransport.open(LinkRequest(device="d", link="l", kind="dfu", options={},
                                                  chip=f411, endpoints=endpoints))
        with pytest.raises(ConnectError) as info:
            transport.connect()
    assert "run-time mode" in str(info.value)


def test_resource_key_is_the_usb_port_when_known() -> None:
    assert DfuTransport.resource_key("l", {"port-path": "1-4.2"}) == "usb:1-4.2"
    assert DfuTransport.resource_key("l", {"serial": "AB"}) == "usb-dfu:0483:df11:AB"


def test_usb_find_sees_every_board_of_the_world(f411: Chip) -> None:
    with make_world() as world:
        for name in ("a", "b", "c"):
            plug(world, f411, name)
        found = list(usb.core.find(find_all=True, idVendor=0x0483, idProduct=0xDF11,
                                   backend=world.shared("usb", SimUsbBackend)))
        assert len({tuple(d.port_numbers) for d in found}) == 3


def test_alt_by_name_selects_the_flash(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411, alt="internal flash")
        assert link.identify().details["flash_layout"].startswith("@Internal Flash")


def test_alt_that_does_not_hold_the_flash_is_refused(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world, pytest.raises(ConnectError) as info:
        open_link(world, f411, alt="Option Bytes")
    assert "holds its flash at 0x08000000" in str(info.value)


def test_alt_the_device_lacks_is_refused_listing_what_it_offers(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world, pytest.raises(ConnectError) as info:
        open_link(world, f411, alt=7)
    assert "@Option Bytes" in str(info.value)


def test_malformed_flash_layout_is_reported_as_such(f411: Chip, open_link: OpenLink) -> None:
    quirks = {"flash-layout": "@Internal Flash  /0x08000000/04*016Kq"}
    with make_world({"board": DeviceProfile(quirks=quirks)}) as world, \
            pytest.raises(ProtocolError) as info:
        open_link(world, f411)
    assert "is malformed" in str(info.value)


def test_transfer_size_option_sets_the_block_size(f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        link = open_link(world, f411, **{"transfer-size": 1024})
        link.erase(f411.flash.blocks[:1])
        board = board_of(world)
        assert board.device is not None
        before = board.device.counts.control
        link.write(0x08000000, bytes(8192))
        # one set-address (DNLOAD + 2 GETSTATUS), then 8 blocks of 3 transfers each
        assert board.device.counts.control - before == 3 + 8 * 3


@pytest.mark.parametrize("where", ["last", "first"])
def test_session_finds_the_functional_descriptor_wherever_the_rom_puts_it(
        f411: Chip, open_link: OpenLink, where: str) -> None:
    quirks = {"functional-descriptor": where, "transfer-size": 1024}
    with make_world({"board": DeviceProfile(quirks=quirks)}) as world:
        assert open_link(world, f411).identify().details["transfer_size"] == 1024


def test_a_forbidden_board_on_another_port_does_not_stop_the_chosen_one(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        other = plug(world, f411, "other")
        assert other.device is not None
        other.device.accessible = False
        link = open_link(world, f411, "board", **{"port-path": "1-7"})
        assert link.identify().details["port_path"] == "1-7"


def test_a_serial_that_cannot_be_read_is_an_environment_problem(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        other = plug(world, f411, "other")
        assert other.device is not None
        other.device.accessible = False
        with pytest.raises(EnvironmentProblem):
            open_link(world, f411, "board", serial="ABC")


def test_a_board_leaving_the_bus_during_the_scan_is_skipped(
        f411: Chip, open_link: OpenLink) -> None:
    with make_world() as world:
        leaving = plug(world, f411, "other")
        gone = leaving.device
        leaving.disconnect()  # e.g. it just started its application
        backend = world.shared("usb", SimUsbBackend)
        listed = backend.enumerate_devices
        backend.enumerate_devices = lambda: [*listed(), gone]  # seen by the scan, then gone
        link = open_link(world, f411)
        assert link.identify().uid == world.chips["board"].uid_hex
