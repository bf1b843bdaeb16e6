"""The shipped DFU example, run as ``flashrunner run`` would: manifest to verified boards."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import runner
from runner.launch import execute, simulation_world
from runner.plan import Outcome
from tests.dfu.conftest import board_of

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "dfu-f411.yaml"


def test_example_manifest_ends_verified_with_the_applications_running() -> None:
    manifest = runner.load_manifest(EXAMPLE)
    plan = runner.compile_plan(manifest)
    plan = dataclasses.replace(plan, simulation=dataclasses.replace(plan.simulation,
                                                                   time_scale=0.0))
    image = (EXAMPLE.parent / "images" / "dfu-blinky-f411.bin").read_bytes()
    with simulation_world(plan) as world:
        result = execute(plan, world=world)
        assert result.ok, [(d.device, d.error) for d in result.devices]
        for device in result.devices:
            kinds = [(step.kind.value, step.outcome) for step in device.steps]
            assert ("verify", Outcome.OK) in kinds
            assert kinds[-1] == ("reset", Outcome.OK)
            assert device.identity["port_path"] in ("1-4.1", "1-4.2")
            assert world.chips[device.device].flash[:len(image)] == image
            assert board_of(world, device.device).application == 0x08000000


def test_example_manifest_binds_each_board_to_its_port() -> None:
    plan = runner.compile_plan(runner.load_manifest(EXAMPLE))
    keys = {device.device: device.resource for device in plan.devices}
    assert keys == {"nucleo-f411": "usb:1-4.1", "blackpill-f411": "usb:1-4.2"}
