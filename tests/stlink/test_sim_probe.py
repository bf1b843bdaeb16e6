"""The simulated probe answers the command set byte-exact (reference §4.6), through pyusb."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest
import usb.core
import usb.util

from transports.chips import chip_database
from transports.sim import SimulationWorld
from transports.sim.stlink import attach_probe
from transports.sim.usb import SimUsbBackend
from transports.sim.world import DeviceProfile


class Raw:
    """Bare bulk transfers to the probe, as a host tool would make them."""

    def __init__(self, device: Any, out_ep: int) -> None:
        self.device, self.out_ep = device, out_ep

    def ask(self, *block: int, reply: int = 0, data: bytes = b"") -> bytes:
        self.device.write(self.out_ep, bytes(block).ljust(16, b"\0"))
        if data:
            self.device.write(self.out_ep, data)
        return bytes(self.device.read(0x81, max(reply, 64))) if reply else b""


@pytest.fixture
def raw(world: SimulationWorld) -> Iterator[Raw]:
    attach_probe(world, "board", chip_database().part("stm32f103c8"))
    device = usb.core.find(backend=world.shared("usb", SimUsbBackend), idProduct=0x3748)
    usb.util.claim_interface(device, 0)
    yield Raw(device, 0x02)
    usb.util.dispose_resources(device)


def enter(raw: Raw) -> None:
    raw.ask(0xF3, 0x07)
    assert raw.ask(0xF2, 0x30, 0xA3, reply=2) == b"\x80\x00"


def test_get_version_is_six_bytes_with_a_big_endian_word(raw: Raw) -> None:
    reply = raw.ask(0xF1, reply=6)
    assert len(reply) == 6
    word = struct.unpack(">H", reply[:2])[0]
    assert (word >> 12, (word >> 6) & 0x3F) == (2, 37)
    assert struct.unpack("<HH", reply[2:]) == (0x0483, 0x3748)


def test_fresh_probe_reports_dfu_then_mass_storage_then_debug(raw: Raw) -> None:
    assert raw.ask(0xF5, reply=2) == b"\x00\x00"
    raw.ask(0xF3, 0x07)
    assert raw.ask(0xF5, reply=2) == b"\x01\x00"
    assert raw.ask(0xF2, 0x30, 0xA3, reply=2) == b"\x80\x00"
    assert raw.ask(0xF5, reply=2) == b"\x02\x00"


@pytest.mark.parametrize(("block", "length"), [
    ((0xF7,), 8), ((0xF2, 0x31), 12), ((0xF2, 0x36, 0x00, 0xED, 0x00, 0xE0), 8),
    ((0xF2, 0x3E), 12), ((0xF2, 0x3B), 2), ((0xF2, 0x32), 2), ((0xF2, 0x43, 0x01, 0x00), 2)])
def test_reply_lengths_follow_the_cheat_sheet(raw: Raw, block: tuple[int, ...],
                                              length: int) -> None:
    enter(raw)
    assert len(raw.ask(*block, reply=length)) == length


def test_a_one_byte_read_sends_two_bytes(raw: Raw) -> None:
    enter(raw)
    reply = raw.ask(0xF2, 0x0C, *struct.pack("<IH", 0x20000000, 1), reply=1)
    assert len(reply) == 2


def test_a_faulting_read_is_reported_by_getlastrwstatus2_with_its_address(raw: Raw) -> None:
    enter(raw)
    raw.ask(0xF2, 0x07, *struct.pack("<IH", 0x60000000, 4), reply=4)
    status = raw.ask(0xF2, 0x3E, reply=12)
    assert status[0] == 0x11 and struct.unpack_from("<I", status, 4)[0] == 0x60000000
    assert raw.ask(0xF2, 0x3E, reply=12)[0] == 0x80  # reported once, then cleared


def test_a_write_is_followed_by_its_data_phase(raw: Raw, world: SimulationWorld) -> None:
    enter(raw)
    raw.ask(0xF2, 0x08, *struct.pack("<IH", 0x20000100, 8), data=b"ABCDEFGH")
    assert raw.ask(0xF2, 0x3E, reply=12)[0] == 0x80
    assert world.chips["board"].read_memory(0x20000100, 8) == b"ABCDEFGH"


def test_debug_register_writes_without_the_key_are_ignored(raw: Raw) -> None:
    enter(raw)
    raw.ask(0xF2, 0x35, *struct.pack("<II", 0xE000EDF0, 0x00000003), reply=2)
    value = struct.unpack_from("<I", raw.ask(0xF2, 0x36, *struct.pack("<I", 0xE000EDF0),
                                             reply=8), 4)[0]
    assert not value & (1 << 17)
    raw.ask(0xF2, 0x35, *struct.pack("<II", 0xE000EDF0, 0xA05F0003), reply=2)
    value = struct.unpack_from("<I", raw.ask(0xF2, 0x36, *struct.pack("<I", 0xE000EDF0),
                                             reply=8), 4)[0]
    assert value & (1 << 17)


def test_an_unknown_command_answers_0x42(raw: Raw) -> None:
    enter(raw)
    assert raw.ask(0xF2, 0x7E, reply=2)[0] == 0x42


def test_target_voltage_encodes_vdd_against_the_reference(world: SimulationWorld) -> None:
    world.profiles["board"] = DeviceProfile(quirks={"target-voltage": 1.8})
    attach_probe(world, "board", chip_database().part("stm32f103c8"))
    device = usb.core.find(backend=world.shared("usb", SimUsbBackend), idProduct=0x3748)
    reply = Raw(device, 0x02).ask(0xF7, reply=8)
    reference, vdd = struct.unpack("<II", reply)
    assert round(2 * 1.2 * vdd / reference, 2) == 1.8


def test_every_transfer_costs_usb_time(raw: Raw, world: SimulationWorld) -> None:
    before = world.chips["board"].clock.elapsed
    raw.ask(0xF1, reply=6)
    assert world.chips["board"].clock.elapsed - before >= 2 * 0.000125


def test_v1_is_held_by_usb_storage_until_detached_and_echoes_cbw_tags(
        world: SimulationWorld) -> None:
    import errno

    world.profiles["board"] = DeviceProfile(quirks={"probe": "v1"})
    attach_probe(world, "board", chip_database().part("stm32f103c8"))
    device = usb.core.find(backend=world.shared("usb", SimUsbBackend), idProduct=0x3744)
    with pytest.raises(usb.core.USBError) as info:
        usb.util.claim_interface(device, 0)
    assert info.value.errno == errno.EBUSY
    device.detach_kernel_driver(0)
    usb.util.claim_interface(device, 0)
    cbw = struct.pack("<IIIBBB", 0x43425355, 0x1234, 6, 0x80, 0, 10) + bytes([0xF1]).ljust(16,
                                                                                      b"\0")
    device.write(0x02, cbw)
    assert len(bytes(device.read(0x81, 64))) == 6
    csw = bytes(device.read(0x81, 64))
    assert struct.unpack("<IIIB", csw) == (0x53425355, 0x1234, 0, 0)
    usb.util.dispose_resources(device)
