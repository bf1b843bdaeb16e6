"""The CAN transport against a simulated ROM node on a python-can virtual bus."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import can
import jsonschema
import pytest

from runner.errors import ConnectError, EraseError, ReadProtected, Refused
from transports.base import MASS_ERASE, OptionBytesChange, ResetMode
from transports.can import CanTransport
from transports.chips import ChipDatabase
from transports.sim import SimulationWorld
from transports.sim.endpoints import can_node, simulated_request
from transports.sim.world import DeviceProfile

BASE = 0x08000000
OpenCan = Callable[..., CanTransport]


@pytest.fixture
def world() -> Iterator[SimulationWorld]:
    with SimulationWorld(seed="can") as sim_world:
        yield sim_world


@pytest.fixture
def open_can(chips: ChipDatabase, world: SimulationWorld) -> Iterator[OpenCan]:
    sessions: list[CanTransport] = []

    def opener(part: str = "stm32l476rg", connect: bool = True,
               **options: object) -> CanTransport:
        request = simulated_request(world, device="dut", link="can-a", kind="can",
                              options={"interface": "socketcan", "channel": "can0", **options},
                              chip=chips.part(part))
        session = CanTransport.open(request)
        sessions.append(session)
        if connect:
            session.connect()
        return session

    yield opener
    for session in sessions:
        session.close()


def pattern(size: int) -> bytes:
    return bytes((i * 13 + 5) & 0xFF for i in range(size))


def test_can_rom_lists_speed_and_legacy_erase(open_can: OpenCan) -> None:
    session = open_can()
    assert {0x03, 0x43} <= session.engine.commands.codes
    assert session.engine.commands.pick("erase") == 0x43


def test_identify_over_can(open_can: OpenCan, world: SimulationWorld) -> None:
    identity = open_can().identify()
    assert identity.dev_id == 0x415
    assert identity.uid == world.chips["dut"].uid_hex
    assert identity.flash_size == 1024 * 1024


def test_write_and_read_with_odd_lengths(open_can: OpenCan, world: SimulationWorld) -> None:
    session = open_can()
    image = pattern(1000 + 4)
    session.erase(session.chip.flash.blocks_covering(BASE, len(image)))
    session.write(BASE, image)
    assert world.chips["dut"].flash[:len(image)] == image
    # 13 bytes: one full frame, then five one-byte frames (open bootloader style)
    assert session.read(BASE + 3, 13) == image[3:16]


def test_page_erase_of_a_full_frame_then_write(open_can: OpenCan,
                                               world: SimulationWorld) -> None:
    session = open_can()
    sim = world.chips["dut"]
    sim.program(BASE, b"\x00" * 16)
    session.erase(session.chip.flash.blocks[:8])  # exactly one frame of page numbers
    session.write(BASE + 8 * 2048, b"\x11" * 8)
    assert sim.flash[:16] == b"\xff" * 16
    assert sim.flash[8 * 2048:8 * 2048 + 8] == b"\x11" * 8


def test_mass_erase_over_can(open_can: OpenCan, world: SimulationWorld) -> None:
    session = open_can()
    sim = world.chips["dut"]
    sim.program(BASE + 0x80000, b"\x00" * 8)
    session.erase(MASS_ERASE)
    session.write(BASE, b"\x22" * 4)
    assert sim.stats.mass_erases == 1
    assert sim.read_flash(BASE + 0x80000, 8) == b"\xff" * 8


def test_rdp_blocks_reads_and_unprotect_reconnects(open_can: OpenCan,
                                                   world: SimulationWorld) -> None:
    world.profiles["dut"] = DeviceProfile(rdp_level=1, fill=0x00)
    session = open_can()
    assert session.identify().rdp_level == 1
    with pytest.raises(ReadProtected):
        session.read(BASE, 8)
    session.write_option_bytes(OptionBytesChange(rdp_level=0))
    assert session.read(BASE, 8) == b"\xff" * 8


def test_pages_beyond_one_byte_numbers_are_refused(open_can: OpenCan) -> None:
    session = open_can()
    with pytest.raises(EraseError):
        session.erase(session.chip.flash.blocks[256:257])


def test_go_leaves_the_rom(open_can: OpenCan, world: SimulationWorld) -> None:
    session = open_can()
    session.reset(ResetMode.GO)
    node = can_node(world, "can-a", "dut")
    assert node is not None
    assert node.core.last_go == BASE
    assert not node.core.active


def test_node_ignores_everything_before_sync(chips: ChipDatabase, world: SimulationWorld,
                                             open_can: OpenCan) -> None:
    open_can(connect=False).open_framing().close()
    node = can_node(world, "can-a", "dut")
    assert node is not None
    with can.Bus(interface="virtual", channel=node.channel) as bus:
        bus.send(can.Message(arbitration_id=0x02, is_extended_id=False, data=b""))
        assert bus.recv(timeout=0.3) is None
        bus.send(can.Message(arbitration_id=0x79, is_extended_id=False, data=b""))
        reply = bus.recv(timeout=1)
        assert reply is not None and reply.arbitration_id == 0x79 and bytes(reply.data) == b"\x79"


def test_options_schema_and_resource_key() -> None:
    validator = jsonschema.Draft202012Validator(CanTransport.options_schema)
    assert validator.is_valid({"interface": "pcan", "channel": "PCAN_USBBUS1",
                               "bitrate": 125000})
    assert not validator.is_valid({"interface": "pcan", "channel": "x", "bitrate": 100})
    assert CanTransport.resource_key("c", {"interface": "socketcan",
                                           "channel": "can0"}) == "can:socketcan:can0"


@pytest.mark.parametrize("pages", [3, 8, 12])
def test_both_recorded_erase_dialects_are_accepted(open_can: OpenCan, world: SimulationWorld,
                                                   pages: int) -> None:
    world.profiles["dut"] = DeviceProfile(quirks={"can-erase": "fork"})
    session = open_can()
    sim = world.chips["dut"]
    sim.program(BASE, b"\x00" * 16)
    session.erase(session.chip.flash.blocks[:pages])
    session.write(BASE, b"\x33" * 8)
    session.erase(MASS_ERASE)
    session.write(BASE + 16, b"\x44" * 8)
    assert sim.flash[:24] == b"\xff" * 16 + b"\x44" * 8
    assert sim.stats.blocks_erased == pages


def test_unmapped_address_is_refused_not_protection(open_can: OpenCan) -> None:
    session = open_can()
    with pytest.raises(Refused, match="Read Memory"):
        session.read(0x40000000, 4)


def test_higher_bitrate_is_negotiated_with_speed(open_can: OpenCan,
                                                 world: SimulationWorld) -> None:
    session = open_can(interface="pcan", bitrate=1_000_000)
    node = can_node(world, "can-a", "dut")
    assert node is not None and node.bitrate == 1_000_000
    session.write(BASE, b"\x66" * 64)
    assert session.read(BASE, 64) == b"\x66" * 64


def test_rate_is_negotiated_again_after_the_chip_resets_itself(
        open_can: OpenCan, world: SimulationWorld) -> None:
    session = open_can(interface="pcan", bitrate=500_000)
    session.write_option_bytes(OptionBytesChange(rdp_level=1))
    node = can_node(world, "can-a", "dut")
    assert node is not None and node.bitrate == 500_000
    assert session.identify().rdp_level == 1


def test_socketcan_cannot_leave_the_rom_rate(open_can: OpenCan) -> None:
    session = open_can(connect=False, bitrate=500_000)
    with pytest.raises(ConnectError, match="ip link|cannot change"):
        session.connect()
