"""A failing environment stops a run cleanly: full disk, unwritable backups, crashing workers.

The disk fills through an injected file whose writes fail with ENOSPC after a
byte budget (a partial write first, as a real full disk does), so the tests
need no special file system. Every run is executed in a thread joined with a
timeout: a hang fails the test instead of the suite.
"""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from executor_plans import device, plan

from runner import executor as executor_module
from runner.audit.verify import verify_log
from runner.launch import execute
from runner.logging import JsonlFileSink
from runner.plan import Outcome, Plan, RunResult
from runner.serials import SerialCounter


class _FillingFile:
    """A raw file that takes ``budget`` bytes, then fails like a full disk."""

    def __init__(self, inner: Any, budget: int) -> None:
        self.inner = inner
        self.budget = budget

    def write(self, data: memoryview) -> int:
        if self.budget <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        taken = min(len(data), self.budget)
        self.budget -= taken
        return int(self.inner.write(data[:taken]))

    def fileno(self) -> int:
        return int(self.inner.fileno())

    def close(self) -> None:
        self.inner.close()


def _disk_of(budget: int, monkeypatch: pytest.MonkeyPatch) -> None:
    class FillingSink(JsonlFileSink):
        def __init__(self, path: Path | str) -> None:
            super().__init__(path)
            self._file = _FillingFile(self._file, budget)  # type: ignore[assignment]

    monkeypatch.setattr(executor_module, "JsonlFileSink", FillingSink)


def _run(the_plan: Plan) -> RunResult:
    box: list[RunResult] = []
    worker = threading.Thread(target=lambda: box.append(execute(the_plan)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the run hangs"
    return box[0]


def _log(path: Path) -> list[dict[str, Any]]:
    text = path.read_text("utf-8")
    assert text == "" or text.endswith("\n"), "the log ends mid-record"
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    return records


def _line(tmp_path: Path, count: int = 6) -> Plan:
    return plan([device(f"unit-{i}") for i in range(count)], max_parallel=2,
                log_file=str(tmp_path / "run.jsonl"))


@pytest.mark.parametrize("budget", [3000, 9000, 20000])
def test_a_disk_filling_mid_run_stops_it_with_exit_3_and_a_valid_log_prefix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
    _disk_of(budget, monkeypatch)
    result = _run(_line(tmp_path))
    assert result.exit_code == 3
    assert result.stopped_by is not None and "No space left on device" in result.stopped_by
    records = _log(tmp_path / "run.jsonl")
    recorded_ok = {r["device"] for r in records
                   if r["event"] == "device.finished" and r["outcome"] == "ok"}
    reported_ok = {d.device for d in result.devices if d.outcome is Outcome.OK}
    assert reported_ok <= recorded_ok        # nothing ok that the log could not record
    assert len(reported_ok) < 6
    assert any(d.outcome is Outcome.SKIPPED for d in result.devices)   # none started after
    verdict = verify_log(tmp_path / "run.jsonl")     # cut short, not tampered with
    assert verdict.status == "truncated", verdict.findings


def test_a_disk_full_at_run_finished_is_exit_3_and_keeps_every_device_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    whole = _run(_line(tmp_path / "a", 2))
    assert whole.log_file is not None
    size = len(whole.log_file.read_bytes())
    run_finished = whole.log_file.read_text().splitlines()[-1]
    _disk_of(size - len(run_finished) // 2, monkeypatch)
    (tmp_path / "b").mkdir()
    result = _run(_line(tmp_path / "b", 2))
    assert result.exit_code == 3
    records = _log(tmp_path / "b" / "run.jsonl")
    assert records[-1]["event"] != "run.finished"
    assert all(d.outcome is Outcome.OK for d in result.devices)   # recorded before it filled


def test_a_worker_whose_reporting_crashes_becomes_a_failed_device_not_a_hang(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(session: Any) -> Any:
        raise RuntimeError("a bug")

    class Crashing:
        def emit(self, event: str, **fields: Any) -> None:
            if event == "device.finished" and fields.get("device") == "unit-1":
                raise RuntimeError("the console broke")

    real = executor_module.run_device
    monkeypatch.setattr(executor_module, "run_device",
                        lambda s: broken(s) if s.plan.device == "unit-1" else real(s))
    the_plan = plan([device("unit-0"), device("unit-1"), device("unit-2")])
    box: list[RunResult] = []
    worker = threading.Thread(target=lambda: box.append(execute(the_plan, events=Crashing())),
                              daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the scheduler waits for a dead worker"
    outcomes = {d.device: d.outcome for d in box[0].devices}
    assert outcomes == {"unit-0": Outcome.OK, "unit-1": Outcome.FAILED, "unit-2": Outcome.OK}
    assert box[0].exit_code == 1


def test_a_counter_that_cannot_be_written_hands_out_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: SerialCounter, allocation: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SerialCounter, "_append_journal", full)
    counter = SerialCounter(state=tmp_path / "serials.json", start=7)
    from runner.errors import EnvironmentProblem

    with pytest.raises(EnvironmentProblem, match="no value was handed out"):
        counter.allocate(device="d", run_id="r")
    assert not counter.state.exists()


def test_the_console_says_why_a_full_disk_stopped_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from runner.cli import main

    _disk_of(2000, monkeypatch)
    line = Path(__file__).resolve().parents[1] / "cli" / "line.yaml"
    assert main(["run", str(line), "--log-file", str(tmp_path / "run.jsonl")]) == 3
    err = capsys.readouterr().err
    assert "the run was stopped: cannot write the audit log" in err
    assert "No space left on device" in err
    assert "internal error" not in err and "Traceback" not in err
    _log(tmp_path / "run.jsonl")
