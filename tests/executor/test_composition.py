"""The run is composed once: the world, the endpoints and what is plugged into them."""

from __future__ import annotations

import dataclasses

import pytest
from executor_plans import device, plan

from runner import executor, launch
from runner.errors import PlanError
from runner.plan import Outcome
from transports.sim import SimulationWorld
from transports.sim.endpoints import SimulatedEndpoints


def test_a_simulated_plan_is_refused_the_hardware_endpoints() -> None:
    with pytest.raises(PlanError, match="simulated but was given the hardware endpoints"):
        executor.execute(plan([device("a")]))


def test_launch_builds_the_world_from_the_plan_and_runs_on_it() -> None:
    run = launch.execute(plan([device("a"), device("b")]))
    assert [d.outcome for d in run.devices] == [Outcome.OK, Outcome.OK]


def test_a_given_world_is_the_one_the_run_writes() -> None:
    with SimulationWorld(seed="compose") as world:
        run = launch.execute(plan([device("a")]), world=world)
        assert run.exit_code == 0
        assert world.chips["a"].stats.blocks_erased > 0


def test_composition_plugs_every_usb_device_of_the_plan() -> None:
    simulated = plan([
        dataclasses.replace(device("probe-board"), kind="stlink", options={},
                            resource="stlink:bench-probe"),
        dataclasses.replace(device("dfu-board", part="stm32f411re"), kind="dfu", options={},
                            resource="usb-dfu:0483:df11:*"),
    ])
    with SimulationWorld(seed="compose") as world:
        endpoints = launch.compose_endpoints(simulated, world)
        assert isinstance(endpoints, SimulatedEndpoints)
        products = sorted(d.info.product_id for d in endpoints.backend.devices)
        assert products == [0x3748, 0xDF11]  # one ST-Link/V2, one ROM DFU device


def test_only_the_composition_root_imports_the_simulator() -> None:
    from tests.test_layering import ROOT, _modules, _violations

    outside = [path for path in _modules("runner") + _modules("transports")
               if not path.is_relative_to(ROOT / "transports" / "sim")
               and path != ROOT / "runner" / "launch.py"]
    assert _violations(outside, ("transports.sim",)) == []
