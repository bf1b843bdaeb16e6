"""The endpoint seam: the same driver code on the hardware provider and the simulated one.

The hardware provider is exercised where a real far end exists on any machine:
a pty serving the simulated ROM stands in for a USB-UART adapter, a python-can
``virtual`` bus for a CAN interface, and absent devices for the error paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import serial

from transports.base import LinkRequest
from transports.chips import Chip, chip_database
from transports.endpoints import HARDWARE
from transports.errors import ConnectError, EnvironmentProblem
from transports.i2c import I2cTransport
from transports.memory import MemoryTransport
from transports.sim import SimChip, SimulationWorld
from transports.sim.bootloader import BootloaderCore, Link, bootloader_profile
from transports.sim.bootloader_stream import StreamBootloader
from transports.sim.endpoints import simulated_request
from transports.sim.usart import PtyBootloader
from transports.uart import UsartTransport


@pytest.fixture
def f103() -> Chip:
    return chip_database().part("stm32f103c8")


@pytest.fixture
def pty(f103: Chip) -> Iterator[tuple[SimChip, str]]:
    sim = SimChip(f103)
    core = BootloaderCore(sim, bootloader_profile(f103, Link.USART, {}))
    with PtyBootloader(StreamBootloader(core, Link.USART)) as server:
        yield sim, server.path


def _write_and_read(transport: Any, chip: Chip) -> bytes:
    transport.connect()
    try:
        transport.erase(chip.flash.blocks[:1])
        transport.write(chip.flash.base, bytes(range(256)))
        data: bytes = transport.read(chip.flash.base, 256)
        return data
    finally:
        transport.close()


def test_the_usart_driver_runs_on_hardware_endpoints_through_a_real_tty(
        f103: Chip, pty: tuple[SimChip, str]) -> None:
    sim, path = pty
    request = LinkRequest(device="dut", link="usart", kind="uart", chip=f103,
                          options={"port": path, "parity": "none"}, endpoints=HARDWARE)
    assert _write_and_read(UsartTransport.open(request), f103) == bytes(range(256))
    assert sim.read_flash(f103.flash.base, 4) == bytes(range(4))


def test_the_usart_driver_runs_on_simulated_endpoints(f103: Chip) -> None:
    with SimulationWorld(seed="endpoints") as world:
        request = simulated_request(world, device="dut", link="usart", kind="uart", chip=f103,
                                    options={"port": "/dev/ttyUSB0"})
        assert _write_and_read(UsartTransport.open(request), f103) == bytes(range(256))
        assert world.chips["dut"].read_flash(f103.flash.base, 4) == bytes(range(4))


def test_the_hardware_serial_port_is_opened_from_the_manifest_url() -> None:
    request = LinkRequest(device="d", link="l", kind="uart", options={},
                          chip=chip_database().part("stm32f103c8"))
    port = HARDWARE.serial_port(request, "loop://")
    assert isinstance(port, serial.SerialBase) and not port.is_open


def test_a_missing_i2c_adapter_is_a_connect_error_on_hardware() -> None:
    bus = 250 if not os.path.exists("/dev/i2c-250") else 251
    request = LinkRequest(device="d", link="i2c", kind="i2c", options={"bus": bus},
                          chip=chip_database().part("stm32g071rb"))
    with pytest.raises(ConnectError, match=f"cannot open I2C adapter {bus}"):
        I2cTransport.open(request).connect()


def test_the_memory_link_exists_only_in_simulation() -> None:
    request = LinkRequest(device="d", link="bench", kind="sim", options={},
                          chip=chip_database().part("stm32f103c8"))
    with pytest.raises(ConnectError, match="only exists in simulation"):
        MemoryTransport.open(request)


def test_the_can_driver_opens_its_bus_through_the_hardware_provider() -> None:
    # A python-can virtual bus with nobody on it: the driver's own code finds no ROM.
    from transports.can import CanTransport

    request = LinkRequest(device="d", link="can", kind="can",
                          options={"interface": "virtual", "channel": f"empty-{os.getpid()}"},
                          chip=chip_database().part("stm32l476rg"))
    with pytest.raises((ConnectError, EnvironmentProblem)):
        CanTransport.open(request).connect()


@pytest.mark.parametrize("kind", ["stlink", "dfu"])
def test_usb_links_search_libusb_through_the_hardware_provider(kind: str) -> None:
    # A serial no device has: selection refuses before anything is claimed, even
    # on a machine with probes plugged in (or libusb missing: an environment problem).
    from transports.registry import load_transport

    request = LinkRequest(device="d", link="usb", kind=kind,
                          options={"serial": "0000FLASHRUNNER0NO0SUCH00"},
                          chip=chip_database().part("stm32f411re"))
    assert HARDWARE.usb_backend(request) is None  # pyusb's default: libusb
    session = load_transport(kind).open(request)
    try:
        with pytest.raises((ConnectError, EnvironmentProblem)) as info:
            session.connect()
        if isinstance(info.value, ConnectError):
            assert "0000FLASHRUNNER0NO0SUCH00" in str(info.value)
    finally:
        session.close()
