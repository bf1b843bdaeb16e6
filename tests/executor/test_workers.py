"""A large rehearsal shared among forked worker processes (runner/shards.py)."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from executor_plans import device, plan, read_jsonl

from runner import executor as executor_module
from runner import shards
from runner.audit.verify import VALID, verify_log
from runner.device_session import DeviceSession
from runner.launch import execute
from runner.model import SimulationSpec, Wiring
from runner.plan import DeviceResult, Outcome, Plan

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="workers are forked")


def _line(count: int, *, processes: int | None = 2, time_scale: float = 0.0,
          log: Path | None = None) -> Plan:
    return plan([device(f"d{i:02d}") for i in range(count)], max_parallel=count,
                log_file=str(log) if log else None,
                simulation=SimulationSpec(time_scale=time_scale, processes=processes))


def _pids_of_devices(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Each device appends ``name pid`` to a file (the workers inherit the patch)."""
    seen = tmp_path / "pids.txt"
    real = executor_module.run_device

    def noting(session: DeviceSession) -> DeviceResult:
        with seen.open("a") as out:
            out.write(f"{session.plan.device} {os.getpid()}\n")
        return real(session)

    monkeypatch.setattr(executor_module, "run_device", noting)
    return seen


def test_devices_that_share_a_link_an_edge_or_wiring_stay_in_one_group() -> None:
    wired = Wiring(off_time_s=2.0)
    devices = [device("a"), device("b", bus="can0"), device("c", bus="can0"),
               device("d", after=("a",)), device("e"),
               replace(device("f"), wiring=wired), replace(device("g"), wiring=wired)]
    groups = [[d.device for d in group] for group in shards.groups_of(devices)]
    assert sorted(groups) == [["a", "d"], ["b", "c"], ["e"], ["f", "g"]]


def test_each_worker_starts_its_devices_in_plan_order() -> None:
    devices = [device("a", bus="can0"), device("b"), device("c", bus="can0"), device("d")]
    dealt = [[d.device for d in shard] for shard in shards._balanced(devices, 1)]
    assert dealt == [["a", "b", "c", "d"]]


def test_a_small_line_or_one_with_a_plugins_far_ends_stays_in_this_process() -> None:
    big = _line(64, processes=None)
    assert shards.processes_for(big, cores=2) == 4     # two per core
    assert shards.processes_for(big, cores=8) == 4     # at most one per 16 devices
    assert shards.processes_for(big, cores=1) == 1
    assert shards.processes_for(_line(20, processes=None), cores=4) == 1
    one = replace(big, simulation=SimulationSpec(time_scale=0.0, processes=1))
    assert shards.processes_for(one, cores=4) == 1
    fail_fast = replace(big, execution=replace(big.execution, fail_fast=True))
    assert shards.processes_for(fail_fast, cores=4) == 1
    on_uarts = replace(big, devices=tuple(replace(d, kind="uart") for d in big.devices))
    assert shards.processes_for(on_uarts, cores=2) == 4   # its far ends are made per session
    on_a_plugin = replace(big, devices=tuple(replace(d, kind="acme-jtag") for d in big.devices))
    assert shards.processes_for(on_a_plugin, cores=4) == 1
    # asked for: as many as there are independent groups, whatever the size
    assert shards.processes_for(replace(_line(3), simulation=SimulationSpec(processes=8)),
                                cores=1) == 3


def test_a_line_in_two_workers_logs_as_one_run(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _pids_of_devices(monkeypatch, tmp_path)
    log = tmp_path / "run.jsonl"
    run = execute(_line(24, log=log))
    assert run.ok and run.exit_code == 0
    assert [d.device for d in run.devices] == [f"d{i:02d}" for i in range(24)]
    assert all(sum(step.bytes for step in d.steps) for d in run.devices)
    pids = Counter(line.split()[1] for line in seen.read_text().splitlines())
    assert len(pids) == 2 and str(os.getpid()) not in pids
    assert sorted(pids.values()) == [12, 12]
    records = read_jsonl(log)
    verdict = verify_log(log)
    assert verdict.status == VALID and verdict.complete, verdict.findings
    events = Counter(r["event"] for r in records)
    assert events["run.started"] == events["run.finished"] == 1
    assert records[0]["event"] == "run.started" and records[0]["workers"] == 2
    assert events["device.started"] == events["device.finished"] == 24
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    for name in ("d00", "d13"):
        mine = [r["event"] for r in records if r.get("device") == name]
        assert mine[0] == "device.started" and mine[-1] == "device.finished"
        assert "device.identified" in mine


def test_an_environment_failure_in_a_worker_stops_the_whole_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = executor_module.run_device

    def full_disk(session: DeviceSession) -> DeviceResult:
        result = real(session)
        if session.plan.device != "d00":
            return result
        return replace(result, outcome=Outcome.FAILED, error_type="StorageFailed",
                       error="bytes to keep could not be saved: No space left on device",
                       error_category="environment")

    monkeypatch.setattr(executor_module, "run_device", full_disk)
    log = tmp_path / "run.jsonl"
    run = execute(_line(24, log=log))
    assert run.exit_code == 3                   # as in one process, not 130
    assert run.stopped_by is not None and "No space left" in run.stopped_by
    interrupted = [r for r in read_jsonl(log) if r["event"] == "run.interrupted"]
    assert len(interrupted) == 1 and interrupted[0]["reason"].startswith("stopped: ")


def test_a_worker_that_dies_fails_its_unfinished_devices_and_reports_none_ok(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = DeviceSession.emit

    def dying(session: DeviceSession, event: str, *args: object, **fields: object) -> None:
        real(session, event, *args, **fields)
        if session.plan.device == "d00" and event == "step.started":
            os.kill(os.getpid(), signal.SIGKILL)  # in the middle of its first step

    monkeypatch.setattr(DeviceSession, "emit", dying)
    log = tmp_path / "run.jsonl"
    run = execute(_line(8, log=log))
    assert not run.ok and run.exit_code == 1
    lost = {d.device: d for d in run.devices if d.outcome is not Outcome.OK}
    assert "d00" in lost
    assert lost["d00"].outcome is Outcome.FAILED
    assert "killed by signal 9" in (lost["d00"].error or "")
    assert all(d.outcome is Outcome.FAILED and d.error_type == "WorkerLoss"
               for d in lost.values())
    ok = [d for d in run.devices if d.outcome is Outcome.OK]
    assert len(ok) + len(lost) == 8 and ok  # the other worker's devices still ran
    finished = {r["device"]: r for r in read_jsonl(log) if r["event"] == "device.finished"}
    assert finished["d00"]["outcome"] == "failed"
    assert finished["d00"]["error_type"] == "WorkerLoss"


class _CancelOnProgress:
    """A listener that cancels the run at the first progress a worker reports."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel

    def emit(self, event: str, **fields: object) -> None:
        if event == "step.progress":
            self.cancel.set()


def test_a_cancel_stops_every_worker_and_is_said_once(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    cancel = threading.Event()
    line = plan([device(f"d{i:02d}", rate=8000) for i in range(8)], max_parallel=4,
                log_file=str(log), simulation=SimulationSpec(time_scale=1.0, processes=2))
    run = execute(line, cancel=cancel, events=_CancelOnProgress(cancel))
    assert run.interrupted and run.exit_code == 130
    # the running ones stopped, the ones waiting for a slot never began; no worker was lost
    outcomes = Counter(d.outcome for d in run.devices)
    assert set(outcomes) <= {Outcome.INTERRUPTED, Outcome.SKIPPED}, run.devices
    assert outcomes[Outcome.INTERRUPTED] >= 1
    records = read_jsonl(log)
    began = {r["device"] for r in records if r["event"] == "device.started"}
    assert began == {d.device for d in run.devices if d.outcome is Outcome.INTERRUPTED}
    assert sum(r["event"] == "run.interrupted" for r in records) == 1
    assert records[-1]["event"] == "run.finished"


def test_max_parallel_is_shared_in_proportion_and_no_worker_is_left_short() -> None:
    assert shards.shares_of([22, 21, 21], 64) == [22, 21, 21]   # room for every device
    assert shards.shares_of([22, 21, 21], 30) == [11, 10, 9]
    assert shards.shares_of([30, 2], 8) == [7, 1]
    assert shards.shares_of([5, 5, 5], 2) == [1, 1, 1]          # at least one each


def test_a_host_that_cannot_follow_its_workers_leaves_none_behind(
        monkeypatch: pytest.MonkeyPatch) -> None:
    forked: list[int] = []
    real_fork = shards._fork

    def noting(*args: object, **kwargs: object) -> object:
        worker = real_fork(*args, **kwargs)  # type: ignore[arg-type]
        forked.append(worker.pid)
        return worker

    def broken(sink: object, records: object) -> None:
        raise RuntimeError("the host's sink broke")

    monkeypatch.setattr(shards, "_fork", noting)
    monkeypatch.setattr(shards, "_emit_all", broken)
    with pytest.raises(RuntimeError, match="sink broke"):
        execute(plan([device(f"d{i:02d}", rate=8000) for i in range(4)], max_parallel=4,
                     simulation=SimulationSpec(time_scale=1.0, processes=2)))
    assert len(forked) == 2
    for pid in forked:  # killed and reaped before the error went on
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
