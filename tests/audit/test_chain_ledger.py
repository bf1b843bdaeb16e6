"""The hash chain of a log and the host's ledger of runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_runs import records, run_demo

from runner.audit.chain import FORMAT, genesis, line_hash
from runner.audit.ledger import LEDGER_FORMAT, Ledger, default_ledger_dir
from runner.errors import EnvironmentProblem
from runner.plan import RunResult


def test_each_record_carries_the_hash_of_the_line_before(demo_run: RunResult) -> None:
    assert demo_run.log_file is not None
    lines = demo_run.log_file.read_text().splitlines()
    first = json.loads(lines[0])
    assert (first["format"], first["prev"]) == (FORMAT, genesis(demo_run.run_id))
    for before, line in zip(lines, lines[1:], strict=False):
        assert json.loads(line)["prev"] == line_hash(before)


def test_the_first_prev_is_derived_from_the_run_id() -> None:
    import hashlib

    assert genesis("r-1") == hashlib.sha256(b"flashrunner-audit/2\nr-1").hexdigest()


def test_the_ledger_records_each_runs_start_and_final_hash(tmp_path: Path) -> None:
    ledger_dir = tmp_path / "ledger"
    runs = [run_demo(tmp_path, name, ledger=ledger_dir) for name in ("one", "two")]
    lines = Ledger(ledger_dir).lines()
    assert [(line.entry or {})["event"] for line in lines] == \
        ["run.started", "run.finished"] * 2
    assert json.loads(lines[0].text)["prev"] == line_hash(LEDGER_FORMAT)
    for before, line in zip(lines, lines[1:], strict=False):
        assert (line.entry or {})["prev"] == before.sha256
    for run, started, finished in zip(runs, lines[::2], lines[1::2], strict=True):
        assert run.log_file is not None
        log_lines = run.log_file.read_text().splitlines()
        assert finished.entry is not None and started.entry is not None
        assert finished.entry["head"] == line_hash(log_lines[-1])
        assert finished.entry["lines"] == len(log_lines)
        assert started.entry["log"] == finished.entry["log"] == str(run.log_file)
        entered = records(run.log_file)[0]["ledger"]
        assert (entered["seq"], entered["entry"]) == (started.number, started.sha256)


def test_an_unwritable_ledger_stops_the_run_before_anything_is_touched(
        tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(EnvironmentProblem, match="ledger"):
        run_demo(tmp_path, ledger=blocker / "ledger")
    assert not (tmp_path / "run.jsonl").exists()


def test_the_default_ledger_lives_in_the_state_directory(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_ledger_dir() == tmp_path / "flashrunner"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_ledger_dir() == tmp_path / ".local" / "state" / "flashrunner"


def _entries(count: int) -> list[str]:
    return [json.dumps({"seq": seq, "event": "run.started", "run_id": f"r-{seq}"})
            for seq in range(1, count + 1)]


def test_an_append_to_a_long_ledger_numbers_and_chains_from_its_last_entry(
        tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    lines = _entries(5000)     # ~300 KiB: more than the tail an append reads
    ledger.path.write_text("\n".join(lines) + "\n")
    line = ledger.append("run.finished", run_id="r-5000")
    assert line.number == 5001
    assert line.entry is not None and line.entry["prev"] == line_hash(lines[-1])
    assert [entry.number for entry in ledger.lines()[-2:]] == [5000, 5001]
    assert (ledger.lines()[-1].entry or {})["seq"] == 5001


@pytest.mark.parametrize("last", ['{"seq": 3, "event": "run.sta',        # a crash mid-write
                                  json.dumps({"seq": 3, "host": "h" * 40_000})])  # > the tail
def test_a_last_line_the_tail_does_not_settle_is_counted_with_the_rest(
        tmp_path: Path, last: str) -> None:
    ledger = Ledger(tmp_path)
    ledger.path.write_text("\n".join([*_entries(2), last]))
    line = ledger.append("run.started", run_id="r-4")
    assert line.number == 4
    assert line.entry is not None and line.entry["prev"] == line_hash(last)
