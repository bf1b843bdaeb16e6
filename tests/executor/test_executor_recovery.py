"""Recovery policies and cancellation, through real runs on simulated chips."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from executor_plans import FLASH, device, flash_at, image, plan, policy, read_jsonl

from runner.events import CapturingSink
from runner.launch import execute
from runner.model import VerifyMethod
from runner.plan import Outcome
from transports.memory import MemoryTransport
from transports.sim import Fault, SimulationWorld
from transports.sim.world import DeviceProfile


def test_transient_timeout_is_retried_and_leaves_correct_flash(
        tmp_path: Path, world: SimulationWorld) -> None:
    data = image(8192)
    world.profiles["a"] = DeviceProfile(faults=(Fault(kind="timeout", op="write",
                                                      at_byte=3000, times=1),))
    run = execute(plan([device("a", writes=((FLASH, data),),
                               recovery=policy("timeout", actions=("reconnect",)))],
                       log_file=str(tmp_path / "run.jsonl")), world=world)
    assert run.ok
    assert flash_at(world.chips["a"].flash, FLASH, len(data)) == data
    records = read_jsonl(tmp_path / "run.jsonl")
    retried = [r for r in records if r["event"] == "step.retried"]
    assert [(r["attempt"], r["max"], r["error_category"]) for r in retried] == \
        [(1, 2, "timeout")]
    recoveries = [(r["recovery"], r["outcome"]) for r in records
                  if r["event"] == "step.recovery"]
    assert recoveries == [("reconnect", "ok"), ("re-erase", "ok")]
    write = [r for r in records if r["event"] == "step.finished" and r["action"] == "write"]
    assert write[0]["attempts"] == 2 and write[0]["outcome"] == "ok"


def test_retrying_a_write_rewrites_earlier_images_sharing_its_erase_units(
        world: SimulationWorld) -> None:
    first, second = image(0x300, 1), image(0x600, 2)
    world.profiles["a"] = DeviceProfile(faults=(Fault(kind="timeout", op="write",
                                                      at_byte=0x300 + 0x200, times=1),))
    run = execute(plan([device("a", writes=((FLASH, first), (FLASH + 0x300, second)),
                               recovery=policy("timeout"))]), world=world)
    assert run.ok
    flash = world.chips["a"].flash
    assert flash_at(flash, FLASH, 0x300) == first
    assert flash_at(flash, FLASH + 0x300, 0x600) == second


def test_errors_outside_the_policy_are_not_retried(world: SimulationWorld) -> None:
    world.profiles["a"] = DeviceProfile(faults=(Fault(kind="nack", op="write", times=1),))
    sink = CapturingSink()
    run = execute(plan([device("a", recovery=policy("timeout"))]), world=world, events=sink)
    assert run.devices[0].outcome is Outcome.FAILED
    assert sink.named("step.retried") == []


def test_retries_stop_after_the_policy_allows(world: SimulationWorld) -> None:
    world.profiles["a"] = DeviceProfile(faults=(Fault(kind="timeout", op="write",
                                                      times=None),))
    sink = CapturingSink()
    run = execute(plan([device("a", recovery=policy("timeout", retries=3))]), world=world,
                  events=sink)
    assert run.devices[0].outcome is Outcome.FAILED
    assert [r["attempt"] for r in sink.named("step.retried")] == [1, 2, 3]
    assert run.devices[0].steps[-1].attempts == 4


def test_reset_recovery_resets_the_chip_then_reconnects(world: SimulationWorld) -> None:
    world.profiles["a"] = DeviceProfile(faults=(Fault(kind="link-lost", op="write",
                                                      at_byte=1024, times=1),))
    sink = CapturingSink()
    run = execute(plan([device("a", recovery=policy("link-lost", actions=("reset",)))]),
                  world=world, events=sink)
    assert run.ok
    assert [r["recovery"] for r in sink.named("step.recovery")] == ["reset", "re-erase"]


class _FaultAfterIdentify(CapturingSink):
    """Plans a connect timeout once the device is identified: the reconnect will hit it."""

    def __init__(self, world: SimulationWorld) -> None:
        super().__init__()
        self.world = world

    def emit(self, event: str, **fields: Any) -> None:
        super().emit(event, **fields)
        if event == "device.identified":
            self.world.chips[fields["device"]].faults.add(
                Fault(kind="timeout", op="connect", times=1))


def test_failed_recovery_counts_as_an_attempt(world: SimulationWorld) -> None:
    world.profiles["a"] = DeviceProfile(faults=(Fault(kind="timeout", op="write",
                                                      at_byte=1024, times=1),))
    sink = _FaultAfterIdentify(world)
    run = execute(plan([device("a", recovery=policy("timeout", retries=3,
                                                    actions=("reconnect",)))]),
                  world=world, events=sink)
    assert run.ok
    recoveries = [(r["attempt"], r["recovery"], r["outcome"])
                  for r in sink.named("step.recovery")]
    assert recoveries == [(1, "reconnect", "failed"), (2, "reconnect", "ok"),
                          (2, "re-erase", "ok")]
    assert run.devices[0].steps[2].attempts == 3


class _CancelOnProgress(CapturingSink):
    def __init__(self, cancel: threading.Event, device: str) -> None:
        super().__init__()
        self.cancel, self.device = cancel, device

    def emit(self, event: str, **fields: Any) -> None:
        super().emit(event, **fields)
        if event == "step.progress" and fields["device"] == self.device \
                and fields["action"] == "write":
            self.cancel.set()


def test_cancel_mid_write_interrupts_closes_sessions_and_exits_130(
        world: SimulationWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    closed: list[str] = []
    original = MemoryTransport.close

    def recording_close(self: MemoryTransport) -> None:
        closed.append(self.request.device)
        original(self)

    monkeypatch.setattr(MemoryTransport, "close", recording_close)
    cancel = threading.Event()
    sink = _CancelOnProgress(cancel, "a")
    run = execute(plan([device("a", writes=((FLASH, image(16384)),)), device("b")],
                       max_parallel=1, log_file=str(tmp_path / "run.jsonl")),
                  world=world, events=sink, cancel=cancel)
    assert run.interrupted and run.exit_code == 130
    assert [d.outcome for d in run.devices] == [Outcome.INTERRUPTED, Outcome.SKIPPED]
    assert run.devices[1].reason == "interrupted"
    assert closed == ["a"]
    events = [r["event"] for r in read_jsonl(tmp_path / "run.jsonl")]
    assert "run.interrupted" in events and events[-1] == "run.finished"
    assert flash_at(world.chips["a"].flash, FLASH, 16384) != image(16384)


def test_cancel_from_another_thread_stops_a_paced_run(world: SimulationWorld) -> None:
    world.time_scale = 1.0
    cancel = threading.Event()
    timer = threading.Timer(0.2, cancel.set)
    timer.start()
    try:
        run = execute(plan([device("a", rate=20_000, writes=((FLASH, image(65536)),))]),
                      world=world, cancel=cancel)
    finally:
        timer.cancel()
    assert run.exit_code == 130
    assert run.devices[0].outcome is Outcome.INTERRUPTED


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_interrupt_the_run_and_restore_handlers(
        world: SimulationWorld, signum: signal.Signals) -> None:
    world.time_scale = 1.0
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.2, os.kill, args=(os.getpid(), signum))
    timer.start()
    try:
        run = execute(plan([device("a", rate=20_000, writes=((FLASH, image(65536)),)),
                            device("b")], max_parallel=1), world=world)
    finally:
        timer.cancel()
    assert run.exit_code == 130
    assert [d.outcome for d in run.devices] == [Outcome.INTERRUPTED, Outcome.SKIPPED]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_run_cancelled_before_it_starts_touches_no_chip(world: SimulationWorld) -> None:
    cancel = threading.Event()
    cancel.set()
    run = execute(plan([device("a"), device("b")]), world=world, cancel=cancel)
    assert run.exit_code == 130
    assert {(d.outcome, d.reason) for d in run.devices} == {(Outcome.SKIPPED, "interrupted")}
    assert world.chips == {}


def test_a_verify_retry_rewrites_the_bad_unit_instead_of_rereading_it(
        world: SimulationWorld) -> None:
    world.profiles["a"] = DeviceProfile(faults=(Fault(kind="corrupt", op="write",
                                                      at_byte=2048),))
    sink = CapturingSink()
    device_plan = device("a", writes=((FLASH, image(4096)),), verify=VerifyMethod.READBACK,
                         recovery=policy("verify", retries=1))
    run = execute(plan([device_plan]), world=world, events=sink)
    assert run.ok
    assert flash_at(world.chips["a"].flash, FLASH, 4096) == image(4096)
    repairs = [e for e in sink.named("step.recovery") if e["recovery"] == "rewrite"]
    assert len(repairs) == 1 and repairs[0]["outcome"] == "ok"
    # Only the page holding the first wrong byte was erased and written again.
    assert repairs[0]["ranges"] == [[f"0x{FLASH + 2048:08X}", f"0x{FLASH + 3072:08X}"]]
    assert sink.named("step.finished")[-1]["attempts"] == 2
