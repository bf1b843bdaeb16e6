"""Hub port power against the simulated hub and sysfs tree (USB 2.0 §11.24, Linux ≥ 6.0)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import usb.core

from transports.errors import HardwareControlError
from transports.power.sysfs import port_dir
from transports.power.usbhub import UsbHubPort
from transports.sim.clock import SimClock
from transports.sim.control import SimHardware
from transports.sim.usb import SimUsbBackend
from transports.sim.usbhub import SimUsbHub


class Board:
    """A board on a hub port: present on the bus while powered."""

    def __init__(self, backend: SimUsbBackend, path: str) -> None:
        self.path = path
        self.present = True
        self.events: list[str] = []

    def power_off(self) -> None:
        self.present = False
        self.events.append("off")

    def power_on(self) -> None:
        self.present = True
        self.events.append("on")


@pytest.fixture
def hardware() -> Iterator[SimHardware]:
    hardware = SimHardware(SimUsbBackend(), SimClock())
    yield hardware
    hardware.close()


def port(hardware: SimHardware, hub: str, number: int, **kwargs: object) -> UsbHubPort:
    return UsbHubPort(hub, number, usb_backend=hardware.backend, sysfs=hardware.sysfs,
                      sleep=hardware.clock.advance, **kwargs)  # type: ignore[arg-type]


def boards_on(hub: SimUsbHub, number: int) -> Board:
    board = Board(hub.backend, hub.child_path(number))
    hub.attach(number, board)
    return board


def test_the_sysfs_disable_file_is_preferred_and_cuts_only_that_port(
        hardware: SimHardware) -> None:
    hub = hardware.hub("1-1")
    two, three = boards_on(hub, 2), boards_on(hub, 3)
    switch = port(hardware, "1-1", 3)
    assert switch.off()["method"] == "sysfs"
    assert hardware.sysfs.read(f"{port_dir('1-1', 3)}/disable") == "1"
    assert (two.present, three.present) == (True, False)
    assert switch.is_on() is False
    switch.still_off()
    fields = switch.on()
    assert three.events == ["off", "on"] and three.present
    assert fields["power_good_s"] == pytest.approx(0.1)
    assert hub.switches[-1][1:] == (3, True, "sysfs")


@pytest.mark.parametrize("mode", ["read-only", "absent"])
def test_hub_requests_are_the_fallback_and_say_why(hardware: SimHardware, mode: str) -> None:
    hub = hardware.hub("1-2", {"sysfs": mode})
    board = boards_on(hub, 1)
    switch = port(hardware, "1-2", 1)
    fields = switch.off()
    assert fields["method"] == "hub-request"
    assert ("not writable" if mode == "read-only" else "does not exist") \
        in fields["fallback_reason"]
    assert not board.present and hub.switches[-1][1:] == (1, False, "hub-request")
    switch.on()
    assert board.present


def test_a_ganged_hub_is_refused_unless_the_inventory_accepts_it(
        hardware: SimHardware) -> None:
    hub = hardware.hub("1-3", {"ganged": True})
    one, two = boards_on(hub, 1), boards_on(hub, 2)
    with pytest.raises(HardwareControlError, match="ganged"):
        port(hardware, "1-3", 1).off()
    assert one.present and two.present
    accepted = port(hardware, "1-3", 1, ganged=True)
    assert accepted.resource == "usb-hub:1-3"  # the whole hub is one resource
    accepted.off()
    assert not one.present and not two.present
    accepted.on()


def test_a_usb3_hubs_superspeed_half_is_switched_with_its_port(hardware: SimHardware) -> None:
    hub = hardware.hub("1-4", {"superspeed-peer": "2-4"})
    peer = hardware.hubs["2-4"]
    switch = port(hardware, "1-4", 2)
    fields = switch.off()
    assert fields["peer"] == "2-4 port 2"
    assert hub.powered[2] is False and peer.powered[2] is False
    assert hardware.sysfs.read(f"{port_dir('2-4', 2)}/disable") == "1"
    switch.on()
    assert hub.powered[2] and peer.powered[2]


def test_a_port_the_kernel_powers_back_on_is_reported_not_retried(
        hardware: SimHardware) -> None:
    hardware.hub("1-5", {"sysfs": "absent", "repowers-after": 0.5})
    switch = port(hardware, "1-5", 1)
    switch.off()
    hardware.clock.advance(1.0)
    with pytest.raises(HardwareControlError, match="came back on by itself") as caught:
        switch.still_off()
    assert "6.0" in (caught.value.hint or "")


def test_the_sysfs_path_is_immune_to_the_kernel_repowering(hardware: SimHardware) -> None:
    hub = hardware.hub("1-6", {"repowers-after": 0.5})
    switch = port(hardware, "1-6", 1)
    assert switch.off()["method"] == "sysfs"
    hardware.clock.advance(1.0)
    switch.still_off()  # raises if the port came back on
    assert switch.is_on() is False
    assert hub.powered[1] is False
    assert all(how != "kernel" for _, _, _, how in hub.switches)


def test_a_board_vanishes_and_returns_under_the_same_port_path(hardware: SimHardware) -> None:
    from tests.dfu.conftest import make_world
    from transports.chips import chip_database
    from transports.sim.control import sim_hardware
    from transports.sim.dfu import plug_rom_dfu

    with make_world() as world:
        sim = sim_hardware(world)
        sim.hub("1-1")
        chip = chip_database().part("stm32f411re")
        board = plug_rom_dfu(world, sim.backend, "dut", chip, port_path="1-1.4")

        def paths() -> list[str]:
            return [f"{d.bus}-{'.'.join(map(str, d.port_numbers))}"
                    for d in usb.core.find(find_all=True, backend=sim.backend, idVendor=0x0483)]

        assert paths() == ["1-1.4"]
        switch = UsbHubPort("1-1", 4, usb_backend=sim.backend, sysfs=sim.sysfs,
                            sleep=sim.clock.advance)
        switch.off()
        assert paths() == []
        switch.on()
        assert paths() == ["1-1.4"]
        assert board.power_cycles == 1


def test_a_port_the_hub_does_not_have_is_refused(hardware: SimHardware) -> None:
    hardware.hub("1-7", {"ports": 4})
    with pytest.raises(HardwareControlError, match="has 4 ports"):
        port(hardware, "1-7", 5).off()


def test_a_hub_that_is_not_there_is_named(hardware: SimHardware) -> None:
    with pytest.raises(HardwareControlError, match="no USB hub at 3-9"):
        port(hardware, "3-9", 1).off()
