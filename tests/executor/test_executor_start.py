"""Devices ready at the same moment begin together, not one after another."""

from __future__ import annotations

import threading

import pytest
from executor_plans import device, plan

from runner import executor as executor_module
from runner.device_session import DeviceSession
from runner.launch import execute
from runner.plan import DeviceResult
from transports.sim import SimulationWorld


def test_no_ready_device_begins_before_every_ready_one_has_its_worker(
        world: SimulationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real = executor_module.run_device

    def counting(session: DeviceSession) -> DeviceResult:
        seen.append(sum(thread.name.startswith("flashrunner-")
                        for thread in threading.enumerate()))
        return real(session)

    monkeypatch.setattr(executor_module, "run_device", counting)
    run = execute(plan([device(f"d{i}") for i in range(12)], max_parallel=12), world=world)
    assert run.ok
    assert seen[0] == 12  # the first to begin already saw all twelve workers started


def test_devices_that_become_ready_later_are_started_by_a_later_pass(
        world: SimulationWorld) -> None:
    devices = [device("a"), device("b", after=("a",)), device("c", after=("a",))]
    run = execute(plan(devices, max_parallel=2), world=world)
    assert run.ok
    assert [result.device for result in run.devices] == ["a", "b", "c"]
