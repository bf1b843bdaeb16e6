"""The recovery ladder end to end: the shipped line rehearsal, GPIO entry/exit, quarantine."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from runner.compiler import compile_plan
from runner.launch import execute, simulation_world
from runner.manifest import load_manifest
from runner.model import LogSpec
from runner.plan import Outcome, Plan
from transports.faults import Fault
from transports.sim.control import sim_hardware
from transports.sim.dfu import SimDfuBoard

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
APP = (MANIFESTS / "images" / "dfu-blinky-f411.bin").read_bytes()


def _plan(path: Path, log: Path, **simulation: Any) -> Plan:
    plan = compile_plan(load_manifest(path))
    return dataclasses.replace(plan, log=LogSpec(file=str(log)),
                               simulation=dataclasses.replace(plan.simulation, time_scale=0.0,
                                                              **simulation))


def _records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.fixture
def line(tmp_path: Path) -> Path:
    shutil.copy(MANIFESTS / "line-recovery.yaml", tmp_path)
    shutil.copytree(MANIFESTS / "recovery", tmp_path / "recovery")
    shutil.copytree(MANIFESTS / "images", tmp_path / "images")
    return tmp_path / "line-recovery.yaml"


def test_the_shipped_line_recovers_a_wedged_board_and_one_that_did_not_enumerate(
        line: Path, tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    plan = _plan(line, log)
    with simulation_world(plan) as world:
        result = execute(plan, world=world)
        boards: dict[str, SimDfuBoard] = world.shared("dfu-boards", dict)
        assert result.exit_code == 0
        for name, board in boards.items():
            assert board.sim.flash[:len(APP)] == APP, name
        assert boards["tray-2"].power_cycles == 1  # the wedge only yields to a power cut
        assert boards["tray-3"].power_cycles == 0  # an NRST pulse was enough
    records = _records(log)
    recoveries = [(r["device"], r["recovery"], r["outcome"]) for r in records
                  if r["event"] == "step.recovery" and r["recovery"] not in ("re-erase",)]
    assert ("tray-2", "power-cycle", "ok") in recoveries
    assert ("tray-3", "nrst-pulse", "ok") in recoveries
    power = [r for r in records if r["event"] == "hardware.power" and r["device"] == "tray-2"]
    assert [(r["switch"], r["hub"], r["port"], r["method"]) for r in power] == \
        [("off", "1-1", 2, "sysfs"), ("on", "1-1", 2, "sysfs")]
    assert power[1]["off_s"] >= 1.0
    gpio = [(r["line_role"], r["active"], r["line"]) for r in records
            if r["event"] == "hardware.gpio" and r["device"] == "tray-3"]
    assert ("nrst", True, "pinctrl-rp1:GPIO22") in gpio
    assert ("nrst", False, "pinctrl-rp1:GPIO22") in gpio
    retried = {r["device"] for r in records if r["event"] == "step.retried"}
    assert retried == {"tray-2", "tray-3"}


def test_the_ladder_picks_power_cycle_where_nrst_is_not_wired(line: Path) -> None:
    plan = compile_plan(load_manifest(line))
    ladders = {device.device: next(task.recovery.actions for task in device.tasks
                                   if task.recovery is not None) for device in plan.devices}
    assert ladders["tray-1"] == ("reconnect", "nrst-pulse", "power-cycle")
    assert ladders["tray-2"] == ("reconnect", "power-cycle", "power-cycle")


def test_a_run_that_fails_releases_its_gpio_lines(line: Path, tmp_path: Path) -> None:
    plan = _plan(line, tmp_path / "run.jsonl")
    devices = dict(plan.simulation.devices)
    devices["tray-3"] = dataclasses.replace(
        devices["tray-3"], faults=(Fault(kind="no-enumerate", times=50),))
    plan = dataclasses.replace(plan, simulation=dataclasses.replace(plan.simulation,
                                                                    devices=devices))
    with simulation_world(plan) as world:
        result = execute(plan, world=world)
        outcomes = {d.device: d.outcome for d in result.devices}
        assert outcomes["tray-3"] is Outcome.FAILED
        hardware = sim_hardware(world)
        chip = hardware.gpio.chip("pinctrl-rp1")
        for name in ("GPIO22", "GPIO23", "GPIO27", "GPIO17"):
            entry = chip.lines[chip.offset(name)]
            assert entry.consumer is None and entry.level  # released, back at the pull-up
        assert any(consumer == "flashrunner:tray-3"
                   for _, consumer, *_ in hardware.gpio.timeline)


def test_boot_entry_brings_the_chip_into_its_rom_and_exit_into_its_application(
        line: Path, tmp_path: Path) -> None:
    from transports.gpio import LineSpec, TargetPins

    plan = _plan(line, tmp_path / "run.jsonl")
    with simulation_world(plan) as world:
        assert execute(plan, world=world).exit_code == 0
        hardware = sim_hardware(world)
        board: SimDfuBoard = world.shared("dfu-boards", dict)["tray-1"]
        pins = TargetPins(hardware.gpio, "test", sleep=hardware.clock.advance,
                          nrst=LineSpec(chip="pinctrl-rp1", line="GPIO27", active_low=True,
                                        open_drain=True),
                          boot0=LineSpec(chip="/dev/gpiochip0", line=17))  # path and offset
        pins.boot(False)
        assert board.device is None and board.application == 0x08000000
        pins.boot(True)
        assert board.device is not None and board.application is None
        pins.close()


def test_a_slot_is_quarantined_after_devices_fail_on_it_in_a_row(tmp_path: Path) -> None:
    (tmp_path / "app.bin").write_bytes(APP[:4096])
    manifest = tmp_path / "tray.yaml"
    devices = "\n".join(f"  bad-{i}: {{chip: stm32f411ce, transport: fixture-a, recipe: flash}}"
                        for i in range(5))
    devices += "\n" + "\n".join(
        f"  good-{i}: {{chip: stm32f411ce, transport: fixture-b, recipe: flash}}"
        for i in range(3))
    faults = "\n".join(f"    bad-{i}: {{faults: [{{kind: timeout, op: connect, permanent: true}}]}}"
                       for i in range(5))
    manifest.write_text(f"""manifest: 1
name: tray
simulate: true
images:
  app: {{file: app.bin, address: 0x08000000}}
transports:
  fixture-a: {{kind: sim}}
  fixture-b: {{kind: sim}}
recipes:
  flash: [{{erase: {{scope: used}}}}, {{write: [app]}}, {{verify: {{}}}}]
devices:
{devices}
execution: {{max-parallel: 2, quarantine-after: 3}}
simulation:
  time-scale: 0
  devices:
{faults}
""")
    log = tmp_path / "run.jsonl"
    plan = _plan(manifest, log)
    result = execute(plan)
    outcomes = {d.device: d.outcome for d in result.devices}
    assert [outcomes[f"bad-{i}"] for i in range(3)] == [Outcome.FAILED] * 3
    assert [outcomes[f"bad-{i}"] for i in (3, 4)] == [Outcome.SKIPPED] * 2
    assert all(outcomes[f"good-{i}"] is Outcome.OK for i in range(3))
    assert result.exit_code == 1
    records = _records(log)
    (quarantine,) = [r for r in records if r["event"] == "slot.quarantined"]
    assert quarantine["failures"] == 3 and quarantine["devices"] == ["bad-0", "bad-1", "bad-2"]
    skipped = [r for r in records if r["event"] == "device.skipped"]
    assert {r["device"] for r in skipped} == {"bad-3", "bad-4"}
    assert all("quarantined" in r["reason"] for r in skipped)


def test_a_wedged_probe_is_recovered_by_cycling_its_own_hub_port(tmp_path: Path) -> None:
    (tmp_path / "app.bin").write_bytes(APP[:16384])
    manifest = tmp_path / "probe.yaml"
    manifest.write_text("""manifest: 1
name: probe-ladder
simulate: true
images:
  app: {file: app.bin, address: 0x08000000}
power:
  bench-hub: {kind: usb-hub, hub: "1-2"}
transports:
  probe: {kind: stlink, port-path: "1-2.3"}
recipes:
  flash: [{erase: {scope: used}}, {write: [app]}, {verify: {}}]
recovery:
  default: {retries: 2, on: [timeout, link-lost, connect], actions: [reconnect, probe-power-cycle]}
devices:
  board: {chip: stm32f103cb, transport: probe, recipe: flash, wiring: {probe-power: auto}}
simulation:
  time-scale: 0
  devices:
    board: {faults: [{kind: wedged, op: write, at-byte: 4096}]}
""")
    log = tmp_path / "run.jsonl"
    plan = _plan(manifest, log)
    with simulation_world(plan) as world:
        result = execute(plan, world=world)
        assert result.exit_code == 0, result.devices
        assert world.chips["board"].flash[:16384] == APP[:16384]
    records = _records(log)
    recoveries = [(r["recovery"], r["outcome"]) for r in records
                  if r["event"] == "step.recovery" and r["recovery"] != "re-erase"]
    assert recoveries == [("reconnect", "failed"), ("probe-power-cycle", "ok")]
    power = [(r["switch"], r["target"], r["hub"], r["port"]) for r in records
             if r["event"] == "hardware.power"]
    assert power == [("off", "probe", "1-2", 3), ("on", "probe", "1-2", 3)]


def test_wiring_on_the_link_serves_the_device_on_it(line: Path, tmp_path: Path) -> None:
    """The station's cabling written on its link (as discover --interactive writes it)."""
    station = line.parent / "recovery" / "station.yaml"
    text = station.read_text()
    own = ("    transport: {use: dfu, port-path: \"1-1.3\"}\n    recipe: flash\n"
           "    wiring:\n      power: auto\n      nrst: {chip: pinctrl-rp1, line: GPIO22}\n"
           "      boot0: {chip: pinctrl-rp1, line: GPIO23}\n")
    assert own in text
    text = text.replace(own, "    transport: tray-3\n    recipe: flash\n").replace(
        "  dfu: {kind: dfu}\n",
        "  dfu: {kind: dfu}\n  tray-3: {kind: dfu, port-path: \"1-1.3\", wiring: {power: auto, "
        "nrst: {chip: pinctrl-rp1, line: GPIO22}, boot0: {chip: pinctrl-rp1, line: GPIO23}}}\n")
    station.write_text(text)
    log = tmp_path / "run.jsonl"
    plan = _plan(line, log)
    assert next(d for d in plan.devices if d.device == "tray-3").options["port-path"] == "1-1.3"
    with simulation_world(plan) as world:
        assert execute(plan, world=world).exit_code == 0
    records = _records(log)
    assert ("tray-3", "nrst-pulse", "ok") in [
        (r["device"], r["recovery"], r["outcome"]) for r in records
        if r["event"] == "step.recovery"]
    assert ("nrst", True, "pinctrl-rp1:GPIO22") in [
        (r["line_role"], r["active"], r["line"]) for r in records
        if r["event"] == "hardware.gpio" and r["device"] == "tray-3"]
