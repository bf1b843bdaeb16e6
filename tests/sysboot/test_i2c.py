"""The I2C transport against the simulated bus (smbus2 i2c_msg semantics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest

from runner.errors import ConnectError, ReadProtected
from transports.base import (
    MASS_ERASE,
    Capability,
    OptionBytesChange,
    ResetMode,
)
from transports.checksums import stm32_crc32
from transports.chips import ChipDatabase
from transports.i2c import I2cTransport
from transports.sim import SimulationWorld
from transports.sim.endpoints import simulated_request
from transports.sim.smbus import SimI2cBus
from transports.sim.world import DeviceProfile

BASE = 0x08000000
OpenI2c = Callable[..., I2cTransport]


@pytest.fixture
def world() -> Iterator[SimulationWorld]:
    with SimulationWorld(seed="i2c") as sim_world:
        yield sim_world


@pytest.fixture
def open_i2c(chips: ChipDatabase, world: SimulationWorld) -> Iterator[OpenI2c]:
    sessions: list[I2cTransport] = []

    def opener(part: str, device: str = "dut", connect: bool = True,
               **options: Any) -> I2cTransport:
        request = simulated_request(world, device=device, link="i2c-1", kind="i2c",
                              options={"bus": 1, **options}, chip=chips.part(part))
        session = I2cTransport.open(request)
        sessions.append(session)
        if connect:
            session.connect()
        return session

    yield opener
    for session in sessions:
        session.close()


def adapter(world: SimulationWorld) -> SimI2cBus:
    bus: SimI2cBus = world.shared("i2c:1", SimI2cBus)
    return bus


def test_v1_2_rom_gets_no_stretch_commands_and_checksum(open_i2c: OpenI2c) -> None:
    session = open_i2c("stm32g071rb")
    assert session.engine.commands.version == 0x12
    assert session.engine.commands.pick("write") == 0x32
    assert session.engine.commands.pick("erase") == 0x45
    assert Capability.CHECKSUM in session.capabilities


def test_identify_over_i2c(open_i2c: OpenI2c, world: SimulationWorld) -> None:
    identity = open_i2c("stm32g071rb").identify()
    assert identity.dev_id == 0x460
    assert identity.uid == world.chips["dut"].uid_hex
    assert identity.bootloader_version == "1.2"


def test_erase_write_read_and_checksum(open_i2c: OpenI2c, world: SimulationWorld) -> None:
    session = open_i2c("stm32g071rb")
    image = bytes(range(256)) * 12
    session.erase(session.chip.flash.blocks_covering(BASE, len(image)))
    session.write(BASE, image)
    assert world.chips["dut"].flash[:len(image)] == image
    assert session.read(BASE, len(image)) == image
    assert session.checksum(BASE, len(image)).value == stm32_crc32(image)


def test_busy_is_polled_on_no_stretch_commands(open_i2c: OpenI2c, world: SimulationWorld) -> None:
    session = open_i2c("stm32g071rb")
    before = adapter(world).transactions
    session.write(BASE, b"\x00" * 8)
    # command, ACK, address, ACK, data, BUSY, ACK
    assert adapter(world).transactions - before == 7


def test_v1_0_rom_uses_stretching_commands(open_i2c: OpenI2c, world: SimulationWorld) -> None:
    world.profiles["dut"] = DeviceProfile(quirks={"i2c-version": 0x10})
    session = open_i2c("stm32f411re", address=0x39)
    assert session.engine.commands.pick("write") == 0x31
    session.erase(MASS_ERASE)
    session.write(BASE, b"\x12\x34\x56\x78")
    assert session.read(BASE, 4) == b"\x12\x34\x56\x78"


def test_get_list_length_is_relearned_when_the_guess_is_wrong(
        open_i2c: OpenI2c, world: SimulationWorld) -> None:
    world.profiles["dut"] = DeviceProfile(quirks={"commands": [0x00, 0x01, 0x02, 0x11, 0x21,
                                                               0x31, 0x44]})
    session = open_i2c("stm32g071rb")
    assert len(session.engine.commands.codes) == 7


def test_two_devices_share_one_bus(open_i2c: OpenI2c, world: SimulationWorld) -> None:
    first = open_i2c("stm32g071rb", device="a", address=0x51)
    second = open_i2c("stm32l476rg", device="b")
    first.write(BASE, b"\xaa" * 4)
    second.write(BASE, b"\x55" * 4)
    assert world.chips["a"].flash[:4] == b"\xaa" * 4
    assert world.chips["b"].flash[:4] == b"\x55" * 4


def test_smbus_only_adapter_is_refused_up_front(open_i2c: OpenI2c,
                                                world: SimulationWorld) -> None:
    world.profiles["dut"] = DeviceProfile(quirks={"smbus-only": True})
    session = open_i2c("stm32g071rb", connect=False)
    with pytest.raises(ConnectError, match="SMBus-only"):
        session.connect()
    assert adapter(world).transactions == 0


def test_chip_running_its_application_does_not_answer(open_i2c: OpenI2c) -> None:
    session = open_i2c("stm32g071rb")
    session.reset(ResetMode.GO)  # the ROM jumps to the application and leaves the bus
    with pytest.raises(ConnectError, match="no bootloader answers"):
        session.connect()


def test_readout_unprotect_over_i2c(open_i2c: OpenI2c, world: SimulationWorld) -> None:
    world.profiles["dut"] = DeviceProfile(rdp_level=1, fill=0x00)
    session = open_i2c("stm32g071rb")
    with pytest.raises(ReadProtected):
        session.read(BASE, 4)
    session.write_option_bytes(OptionBytesChange(rdp_level=0))
    assert session.read(BASE, 4) == b"\xff" * 4


def test_write_protect_count_is_framed_for_i2c(open_i2c: OpenI2c, world: SimulationWorld) -> None:
    session = open_i2c("stm32g071rb")
    session.engine.write_protect([2, 3])
    assert world.chips["dut"].write_protected == frozenset({2, 3})


def test_options_schema_and_resource_key() -> None:
    validator = jsonschema.Draft202012Validator(I2cTransport.options_schema)
    assert validator.is_valid({"bus": "/dev/i2c-3", "address": 0x51})
    assert not validator.is_valid({"bus": 3, "speed": 1})
    assert I2cTransport.resource_key("x", {"bus": "/dev/i2c-3"}) == "i2c:3"
    assert I2cTransport.resource_key("x", {"bus": 3}) == "i2c:3"


def test_chip_without_an_i2c_bootloader_is_refused(open_i2c: OpenI2c) -> None:
    session = open_i2c("stm32f103cb", connect=False, address=0x40)
    with pytest.raises(ConnectError, match="does not listen on I2C"):
        session.connect()


def test_wire_time_counts_every_transaction(open_i2c: OpenI2c, world: SimulationWorld) -> None:
    session = open_i2c("stm32g071rb", clock=400000)
    clock = world.chips["dut"].clock
    before = clock.elapsed
    session.read(BASE, 256)
    # command, ACK, address, ACK, count, ACK, data: START + address byte + data + STOP each
    lengths = (2, 1, 5, 1, 2, 1, 256)
    assert clock.elapsed - before == pytest.approx(sum(2 + 9 * (1 + n) for n in lengths)
                                                   / 400000)
