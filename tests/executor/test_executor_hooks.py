"""The executor's hooks for station runs: per-link OS locks and externally opened gates."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from executor_plans import device, plan

from runner.events import CapturingSink
from runner.launch import execute
from runner.linklocks import LinkBusy, LinkLocks
from runner.plan import Outcome
from transports.sim import SimulationWorld


def test_a_held_link_fails_a_device_at_once_and_names_the_holder(
        tmp_path: Path, world: SimulationWorld) -> None:
    locks = LinkLocks(folder=tmp_path, wait=False, holder={"run_id": "R-1", "operator": "ann"})
    one = device("one", link="shared")
    with locks.hold(one.resource, device="bench"):
        sink = CapturingSink()
        run = execute(plan([one]), world=world, events=sink, locks=locks)
    assert run.devices[0].outcome is Outcome.FAILED
    assert run.devices[0].error_category == "link-busy"
    assert "run R-1, device bench, operator ann" in (run.devices[0].error or "")
    # Released: the next run gets the link.
    assert execute(plan([one]), world=world, locks=locks).exit_code == 0


def test_a_waiting_run_says_who_held_the_link_and_runs_once_it_is_free(
        tmp_path: Path, world: SimulationWorld) -> None:
    locks = LinkLocks(folder=tmp_path, holder={"run_id": "R-2"})
    one = device("one", link="shared")
    sink = CapturingSink()
    released = threading.Event()
    with locks.hold(one.resource, device="bench"):
        runner = threading.Thread(target=lambda: released.set() if execute(
            plan([one]), world=world, events=sink, locks=locks).exit_code == 0 else None)
        runner.start()
        while not sink.named("link.waiting"):
            assert runner.is_alive()
            runner.join(0.01)
        assert not sink.named("device.started")
    runner.join()
    assert released.is_set()
    waiting = sink.named("link.waiting")[0]
    assert waiting["held_by"]["run_id"] == "R-2" and waiting["held_by"]["device"] == "bench"


def test_locks_are_exclusive_between_two_holders(tmp_path: Path) -> None:
    locks = LinkLocks(folder=tmp_path, wait=False)
    with locks.hold("stlink:1-1", device="a"):
        with pytest.raises(LinkBusy), locks.hold("stlink:1-1", device="b"):
            pass
        with locks.hold("stlink:1-2", device="c"):
            pass
    # Simulated links lock under other names than real ones.
    assert LinkLocks(folder=tmp_path, simulated=True).path("x") != locks.path("x")


def test_a_gate_holds_a_device_until_it_opens_and_can_fail_it_upstream(
        world: SimulationWorld) -> None:
    opened: dict[str, str] = {}
    sink = CapturingSink()

    def gate(name: str) -> str | None:
        if name == "free":
            return "go"
        if name == "held" and sink.named("device.finished"):
            opened.setdefault("held", "go")
        if name == "doomed":
            return "elsewhere"
        return opened.get(name)

    run = execute(plan([device("held"), device("free"), device("doomed")]), world=world,
                  events=sink, gate=gate)
    outcomes = {d.device: d for d in run.devices}
    assert outcomes["free"].outcome is Outcome.OK and outcomes["held"].outcome is Outcome.OK
    started = [f["device"] for f in sink.named("device.started")]
    assert started == ["free", "held"]
    assert outcomes["doomed"].outcome is Outcome.UPSTREAM_FAILED
    assert outcomes["doomed"].reason == "elsewhere failed"
