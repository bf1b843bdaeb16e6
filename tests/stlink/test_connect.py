"""Connecting: modes, power, probe generations, identity and its checks."""

from __future__ import annotations

import pytest

from runner.errors import ChipMismatch, ConnectError
from tests.stlink.conftest import Open, probe_of
from transports.base import ResetMode
from transports.sim import SimulationWorld

NRST = (0xF2, 0x3C)
RESETSYS_VIA_AIRCR = 0xE000ED0C


@pytest.mark.parametrize("mode", ["normal", "under-reset", "hot-plug"])
def test_each_connect_mode_leaves_the_core_halted(open_session: Open, world: SimulationWorld,
                                                  mode: str) -> None:
    session = open_session("stm32f103c8", options={"connect": mode})
    assert session.target is not None and session.target.is_halted()


def test_under_reset_holds_nrst_while_entering_swd(open_session: Open,
                                                   world: SimulationWorld) -> None:
    open_session("stm32f103c8", options={"connect": "under-reset"})
    commands = probe_of(world).commands
    enter = commands.index((0xF2, 0x30))
    assert NRST in commands[:enter]


def test_hot_plug_does_not_reset_the_target(open_session: Open, world: SimulationWorld) -> None:
    open_session("stm32f103c8", options={"connect": "hot-plug"})
    assert world.chips["board"].stats.resets == 0


def test_normal_connect_resets_into_halt(open_session: Open, world: SimulationWorld) -> None:
    open_session("stm32f103c8")
    assert world.chips["board"].stats.resets == 1


def test_unpowered_target_is_named_as_such(open_session: Open) -> None:
    with pytest.raises(ConnectError, match=r"target not powered \(VDD 0\.00 V\)"):
        open_session("stm32f103c8", quirks={"target-voltage": 0.0})


def test_min_voltage_refuses_a_low_supply(open_session: Open) -> None:
    with pytest.raises(ConnectError, match="below min-voltage"):
        open_session("stm32f411re", quirks={"target-voltage": 2.0},
                     options={"min-voltage": 2.7})


def test_identity_reports_dev_id_uid_and_flash_size(open_session: Open,
                                                    world: SimulationWorld) -> None:
    identity = open_session("stm32f411re").identify()
    sim = world.chips["board"]
    assert (identity.dev_id, identity.uid, identity.flash_size, identity.rdp_level) == \
        (0x431, sim.uid_hex, 512 * 1024, 0)
    assert identity.probe == "ST-Link/V2 V2J37S7"


def test_h7_idcode_is_read_at_its_own_address(open_session: Open) -> None:
    identity = open_session("stm32h743zi").identify()
    assert identity.dev_id == 0x450


def test_a_different_flash_size_is_refused_before_anything_is_written(
        open_session: Open, world: SimulationWorld) -> None:
    from tests.stlink.conftest import request
    from transports.sim.world import DeviceProfile
    from transports.stlink import StLinkTransport

    world.profiles["board"] = DeviceProfile(flash_size_register=64)
    session = StLinkTransport.open(request(world, "stm32f103cb"))
    session.connect()
    try:
        with pytest.raises(ChipMismatch, match="128 KiB of flash but the chip reports 64 KiB"):
            session.identify()
    finally:
        session.close()


def test_flash_size_override_accepts_a_part_that_hides_its_size(
        open_session: Open, world: SimulationWorld) -> None:
    from tests.stlink.conftest import request
    from transports.sim.world import DeviceProfile
    from transports.stlink import StLinkTransport

    world.profiles["board"] = DeviceProfile(flash_size_register=0xFFFF)
    session = StLinkTransport.open(request(world, "stm32f103cb",
                                           options={"flash-size-kib": 128}))
    session.connect()
    try:
        assert session.identify().dev_id == 0x410
    finally:
        session.close()


def test_v3_sets_the_clock_from_the_offered_rates(open_session: Open,
                                                  world: SimulationWorld) -> None:
    session = open_session("stm32f411re", quirks={"probe": "v3"}, options={"clock-khz": 4000})
    assert session.link is not None and session.link.swd_khz == 3300
    assert probe_of(world).target is not None and probe_of(world).target.swd_khz == 3300


def test_v2_sets_the_nearest_lower_divisor(open_session: Open) -> None:
    session = open_session("stm32f103c8", options={"clock-khz": 1000})
    assert session.link is not None and session.link.swd_khz == 950


def test_v1_is_driven_over_bulk_only_transport(open_session: Open,
                                               world: SimulationWorld) -> None:
    session = open_session("stm32f103c8", quirks={"probe": "v1"})
    chip = session.chip
    data = bytes(range(256)) * 8
    session.erase(chip.flash.blocks[:2])
    session.write(chip.flash.base, data)
    assert session.read(chip.flash.base, len(data)) == data
    probe = probe_of(world)
    assert 0 not in probe.kernel_driver  # usb-storage was detached
    assert session.identify().probe == "ST-Link/V1 V1J13"


def test_probe_left_in_dfu_mode_is_taken_out(open_session: Open,
                                             world: SimulationWorld) -> None:
    open_session("stm32f103c8")
    assert (0xF3, 0x07) in probe_of(world).commands


def test_close_leaves_debug_mode(open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    session.close()
    assert probe_of(world).commands[-1] == (0xF2, 0x21)
    session.close()  # idempotent


def test_reset_modes_restart_the_target(open_session: Open, world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    before = world.chips["board"].stats.resets
    session.reset(ResetMode.HARDWARE)
    session.reset(ResetMode.SOFTWARE)
    assert world.chips["board"].stats.resets == before + 2
    session.reset(ResetMode.HALT)
    assert session.target is not None and session.target.is_halted()


def test_a_part_at_rdp_level_2_cannot_be_connected(open_session: Open) -> None:
    with pytest.raises(ConnectError, match="IDCODE") as info:
        open_session("stm32f411re", rdp=2)
    assert "RDP level 2" in str(info.value)


def test_old_v2_firmware_without_16_bit_access_still_flashes_an_f1(
        open_session: Open, world: SimulationWorld) -> None:
    """V2J21: no SWD_SET_FREQ (J22), no 16-bit memory commands (J26)."""
    session = open_session("stm32f103c8", quirks={"firmware": 21})
    data = bytes(range(256)) * 4
    session.erase(session.chip.flash.blocks[:1])
    session.write(0x08000000, data)
    assert session.read(0x08000000, len(data)) == data
    subs = {sub for cmd, sub in probe_of(world).commands if cmd == 0xF2}
    assert 0x43 not in subs and 0x48 not in subs


def test_old_v2_firmware_refuses_the_safe_path_it_cannot_do(open_session: Open,
                                                           world: SimulationWorld) -> None:
    with pytest.raises(ConnectError, match="cannot write half-words"):
        open_session("stm32f103c8", quirks={"firmware": 21}, options={"write-mode": "safe"})
    assert world.chips["board"].stats.bytes_programmed == 0


def test_an_unsupported_controller_is_refused_before_touching_the_probe(
        world: SimulationWorld) -> None:
    import dataclasses

    from tests.stlink.conftest import request
    from transports.stlink import StLinkTransport

    base = request(world, "stm32f103c8")
    odd = dataclasses.replace(base, chip=dataclasses.replace(base.chip, controller="u3"))
    with pytest.raises(ConnectError, match="u3 flash controllers .* not supported"):
        StLinkTransport.open(odd).connect()
    assert probe_of(world).counts.total == 0  # the probe was never spoken to


def test_v1_cannot_connect_under_reset(open_session: Open) -> None:
    with pytest.raises(ConnectError, match="cannot drive NRST"):
        open_session("stm32f103c8", quirks={"probe": "v1"}, options={"connect": "under-reset"})
