"""Probe selection: by serial, by port path, ambiguity, absence, permissions, serial quirk."""

from __future__ import annotations

import pytest

from runner.errors import ConnectError, EnvironmentProblem
from tests.stlink.conftest import Open, backend_of, probe_of
from transports.sim import SimulationWorld
from transports.stlink.usb import find_candidates, normalise_serial


def test_two_probes_are_told_apart_by_serial(open_session: Open,
                                             world: SimulationWorld) -> None:
    open_session("stm32f103c8", device="a", options={"serial": "AAAA00000000000000000001"},
                 connect=False)
    second = open_session("stm32f411re", device="b",
                          options={"serial": "BBBB00000000000000000002"})
    assert second.identify().dev_id == 0x431


def test_probe_is_selected_by_port_path(open_session: Open, world: SimulationWorld) -> None:
    open_session("stm32f103c8", device="a", quirks={"port-path": "3-1.2"}, connect=False)
    open_session("stm32f411re", device="b", quirks={"port-path": "3-1.4"}, connect=False)
    from tests.stlink.conftest import attach_probe, request

    for device, part in (("a", "stm32f103c8"), ("b", "stm32f411re")):
        req = request(world, part, device=device)
        attach_probe(world, device, req.chip)
    session = open_session("stm32f411re", device="b", options={"port-path": "3-1.4"})
    assert session.identify().details["probe_port"] == "3-1.4"


def test_ambiguous_serial_lists_every_candidate(open_session: Open,
                                                world: SimulationWorld) -> None:
    from tests.stlink.conftest import attach_probe
    from transports.chips import chip_database
    from transports.sim.world import DeviceProfile

    for device in ("a", "b"):  # two probes on the bench whose serials collide
        world.profiles[device] = DeviceProfile(quirks={"serial": "SAMESERIAL0000000000000"})
        attach_probe(world, device, chip_database().part("stm32f103c8"))
    session = open_session("stm32f103c8", device="c", quirks={"serial": "0THER000000000000000000C"},
                           options={"serial": "SAMESERIAL0000000000000"}, connect=False)
    with pytest.raises(ConnectError) as info:
        session.connect()
    message = str(info.value)
    assert "2 ST-Links match" in message
    assert "1-4.1" in message and "1-4.2" in message and "port-path" in message


def test_no_match_lists_what_was_found(open_session: Open) -> None:
    session = open_session("stm32f103c8", quirks={"serial": "ABCDEF000000000000000001"},
                           options={"serial": "000000000000000000000000"}, connect=False)
    with pytest.raises(ConnectError) as info:
        session.connect()
    assert "no ST-Link with serial 000000000000000000000000" in str(info.value)
    assert "ST-Links present: ST-Link/V2 serial ABCDEF000000000000000001 at port 1-4.1" \
        in str(info.value)


def test_devices_sharing_a_probe_take_turns_on_it(open_session: Open,
                                                  world: SimulationWorld) -> None:
    first = open_session("stm32f103c8", device="a", options={"serial": "5A4E000000000000000000AA"})
    assert first.identify().dev_id == 0x410
    first.close()
    second = open_session("stm32f411re", device="b",
                          options={"serial": "5A4E000000000000000000AA"})
    assert second.identify().dev_id == 0x431
    assert probe_of(world, "a") is probe_of(world, "b")


def test_binary_serial_of_old_firmware_is_hex_encoded(open_session: Open,
                                                      world: SimulationWorld) -> None:
    session = open_session("stm32f103c8", quirks={"binary-serial": True,
                                                  "serial": "563F6F06513F52481953253F"},
                           options={"serial": "563f6f06513f52481953253f"})
    assert session.identify().details["probe_serial"] == "563F6F06513F52481953253F"


def test_normalise_serial_keeps_text_serials() -> None:
    assert normalise_serial("066bff3035344e5043141238") == "066BFF3035344E5043141238"
    assert normalise_serial("\x56\x3f\x6f\x06\x51\x3f\x52\x48\x19\x53\x25\x3f") == \
        "563F6F06513F52481953253F"


def test_permission_denied_points_at_the_udev_rules(open_session: Open,
                                                    world: SimulationWorld) -> None:
    session = open_session("stm32f103c8", connect=False)
    from tests.stlink.conftest import attach_probe

    attach_probe(world, "board", session.chip).accessible = False
    with pytest.raises(EnvironmentProblem) as info:
        session.connect()
    assert "99-flashrunner.rules" in str(info.value)
    assert "udevadm control --reload-rules" in str(info.value)


def test_bootloader_pids_are_not_candidates(world: SimulationWorld) -> None:
    from transports.sim.stlink.probe import ProbeModel, SimStLinkProbe

    loader = ProbeModel(name="STLINK-V3 loader", pid=0x374D, hw_version=3, out_ep=1,
                        trace_ep=None, packet=512, transfer_s=0, bytes_per_s=1e9,
                        jtag_version=0, second_version=0)
    backend_of(world).plug(SimStLinkProbe(loader, None, serial="LOADER"))
    assert find_candidates(backend_of(world)) == []


def test_probe_of_returns_the_plugged_probe(open_session: Open, world: SimulationWorld) -> None:
    open_session("stm32f103c8")
    assert probe_of(world).model.pid == 0x3748


def test_a_dfu_device_with_the_same_serial_is_not_a_candidate(open_session: Open,
                                                               world: SimulationWorld) -> None:
    from transports.sim.usb import DeviceInfo, SimUsbDevice

    class RomDfu(SimUsbDevice):
        def __init__(self) -> None:
            super().__init__()
            self.info = DeviceInfo(vendor_id=0x0483, product_id=0xDF11,
                                   product="STM32  BOOTLOADER",
                                   serial="0670FF545654725187163429")

    backend_of(world).plug(RomDfu())
    session = open_session("stm32f103c8", options={"serial": "0670FF545654725187163429"})
    assert session.identify().details["probe_serial"] == "0670FF545654725187163429"


def test_enumeration_reads_the_serial_and_leaves_the_product_until_a_listing_needs_it(
        open_session: Open, world: SimulationWorld) -> None:
    # Every connect enumerates every probe: the product string is read only to
    # describe a probe, as in the listing of an error.
    open_session("stm32f103c8", quirks={"serial": "ABCDEF000000000000000001"}, connect=False)
    probe = probe_of(world)
    before = probe.counts.control
    (candidate,) = find_candidates(backend_of(world))
    assert candidate.serial == "ABCDEF000000000000000001"
    assert probe.counts.control - before == 2  # the LANGID table and the serial
    assert candidate.describe().endswith("(STM32 STLink)")
    assert probe.counts.control - before == 3
