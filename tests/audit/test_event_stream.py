"""One event stream: typed events, one numbering for every sink, the schema, library-safe."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import structlog
from audit_runs import ROOT, demo_copy, records, run_demo

from runner.audit.schema import render_schema
from runner.events import EVENT_TYPES, CapturingSink, EventContractError, FanOutSink
from runner.logging import AuditLog, JsonlFileSink, render_record
from runner.plan import Outcome, RunResult
from schemas import load_schema


def schema_errors(path: Path) -> list[str]:
    validator = jsonschema.Draft202012Validator(load_schema("audit-log"))
    return [f"line {n}: {error.message}" for n, record in enumerate(records(path), 1)
            for error in validator.iter_errors(record)]


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = (ROOT / "schemas" / "audit-log.schema.json").read_text()
    assert committed == render_schema(), "run: python3 -m runner.audit.schema > " \
        "schemas/audit-log.schema.json"
    jsonschema.Draft202012Validator.check_schema(load_schema("audit-log"))


def test_every_record_of_the_demo_run_matches_the_schema(demo_run: RunResult) -> None:
    assert demo_run.log_file is not None
    events = {r["event"] for r in records(demo_run.log_file)}
    assert {"run.started", "step.retried", "step.recovery", "run.finished"} <= events
    assert schema_errors(demo_run.log_file) == []


def test_every_record_of_a_failing_run_matches_the_schema(failed_run: RunResult) -> None:
    assert failed_run.log_file is not None
    outcomes = {d.device: d.outcome for d in failed_run.devices}
    assert (outcomes["sensor-2"], outcomes["gateway"]) == \
        (Outcome.FAILED, Outcome.UPSTREAM_FAILED)
    assert schema_errors(failed_run.log_file) == []


def test_the_schema_rejects_a_record_missing_a_field_or_with_an_unknown_one(
        demo_run: RunResult) -> None:
    assert demo_run.log_file is not None
    validator = jsonschema.Draft202012Validator(load_schema("audit-log"))
    finished = next(r for r in records(demo_run.log_file) if r["event"] == "step.finished")
    assert validator.is_valid(finished)
    assert not validator.is_valid({k: v for k, v in finished.items() if k != "outcome"})
    assert not validator.is_valid({**finished, "outcme": "ok"})
    assert not validator.is_valid({**finished, "event": "step.finnished"})


def test_json_stdout_carries_the_very_lines_of_the_log_file(tmp_path: Path) -> None:
    manifest = demo_copy(tmp_path / "m")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "runner", "run", str(manifest), "--json", "--quiet",
         "--log-file", str(tmp_path / "run.jsonl")],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == (tmp_path / "run.jsonl").read_text().splitlines()


def test_the_console_sees_the_records_with_the_same_seq_and_ts(tmp_path: Path) -> None:
    sink = CapturingSink()
    console = io.StringIO()
    run = run_demo(tmp_path, events=FanOutSink([sink]), console=console)
    assert run.log_file is not None
    written = [(r["seq"], r["ts"], r["event"]) for r in records(run.log_file)]
    seen = [(fields["seq"], fields["ts"], name) for name, fields in sink.events]
    assert seen == written
    assert "exit code 0" in console.getvalue()


def step_progress(**overrides: Any) -> dict[str, Any]:
    fields = {"device": "a", "transport": "probe", "kind": "sim", "step": "a/1-write",
              "action": "write", "done": 1, "total": 2, "percent": 50.0}
    fields.update(overrides)
    return fields


def test_an_unknown_event_or_a_missing_or_undeclared_field_raises(tmp_path: Path) -> None:
    log = AuditLog("run-1", [JsonlFileSink(tmp_path / "r.jsonl")], strict=True)
    with pytest.raises(EventContractError, match="unknown event 'step.finnished'"):
        log.emit("step.finnished", **step_progress())
    with pytest.raises(EventContractError, match="lacks required field.*percent"):
        log.emit("step.progress", **{k: v for k, v in step_progress().items()
                                     if k != "percent"})
    with pytest.raises(EventContractError, match="undeclared field.*speed"):
        log.emit("step.progress", **step_progress(speed=3))
    log.close()
    assert (tmp_path / "r.jsonl").read_text() == ""


def test_outside_the_tests_a_bad_event_is_written_and_flagged(tmp_path: Path) -> None:
    log = AuditLog("run-1", [JsonlFileSink(tmp_path / "r.jsonl")], strict=False)
    log.emit("step.progress", **step_progress(speed=3))
    log.close()
    (record,) = records(tmp_path / "r.jsonl")
    assert record["speed"] == 3
    assert "undeclared field(s) speed" in record["contract_error"]


def test_every_event_is_defined_once_with_its_fields() -> None:
    from runner import events

    names = {value for key, value in vars(events).items()
             if key.isupper() and isinstance(value, str) and "." in value}
    assert names == set(EVENT_TYPES)
    for name, definition in EVENT_TYPES.items():
        assert definition.name == name and definition.doc
        assert not set(definition.required) & set(definition.optional), name


def test_a_station_record_keeps_its_own_seq_and_ts_in_origin(tmp_path: Path) -> None:
    station = AuditLog("st-run", [JsonlFileSink(tmp_path / "station.jsonl")])
    station.emit("step.progress", **step_progress(done=2))
    station.close()
    line = (tmp_path / "station.jsonl").read_text().splitlines()[0]
    host = AuditLog("host-run", [JsonlFileSink(tmp_path / "host.jsonl")])
    host.emit("plan.warning", message="before")
    host.append_foreign(line, station="bench-2")
    host.close()
    merged = records(tmp_path / "host.jsonl")[1]
    original = json.loads(line)
    assert (merged["seq"], merged["run_id"], merged["station"]) == (2, "host-run", "bench-2")
    assert merged["origin"]["seq"] == original["seq"] == 1
    assert merged["origin"]["ts"] == original["ts"]
    assert merged["origin"]["run_id"] == "st-run"
    assert merged["done"] == 2 and merged["prev"] != original["prev"]
    assert jsonschema.Draft202012Validator(load_schema("audit-log")).is_valid(merged)


def test_a_run_leaves_the_host_applications_structlog_configuration_alone(
        tmp_path: Path) -> None:
    seen: list[str] = []

    class HostLogger:
        def msg(self, message: str) -> None:
            seen.append(message)

        info = msg

    def tag(logger: Any, method: str, event_dict: Any) -> Any:
        return f"host:{event_dict['event']}"

    structlog.configure(processors=[tag], logger_factory=lambda *args: HostLogger(),
                        cache_logger_on_first_use=False)
    try:
        before = structlog.get_config()
        run = run_demo(tmp_path)
        assert structlog.get_config() == before
        structlog.get_logger().info("after the run")
        assert seen == ["host:after the run"]
        assert run.exit_code == 0
    finally:
        structlog.reset_defaults()


@pytest.mark.parametrize(("record", "line"), [
    ({"ts": "2026-12-03T12:00:00.000Z", "seq": 1, "run_id": "r", "event": "run.started",
      "manifest": "line", "images": {"app": "abababab"}, "devices": 2, "simulate": False,
      "estimate_s": 1.25, "prev": "00000000"},
     '{"ts": "2026-12-03T12:00:00.000Z", "seq": 1, "run_id": "r", "event": "run.started", '
     '"manifest": "line", "images": {"app": "abababab"}, "devices": 2, "simulate": false, '
     '"estimate_s": 1.25, "prev": "00000000"}'),
    ({"ts": "t", "seq": 7, "run_id": "r", "event": "step.finished", "device": "dut-\u00fc",
      "message": "Gr\u00fc\u00dfe \u2014 \u2713 \"quoted\" \n\t", "units": [1, 2, 3],
      "error": None, "nested": {"b": [True, {"c": 1.5e-7}], "a": []}, "prev": "ffffffff"},
     '{"ts": "t", "seq": 7, "run_id": "r", "event": "step.finished", "device": "dut-\u00fc", '
     '"message": "Gr\u00fc\u00dfe \u2014 \u2713 \\"quoted\\" \\n\\t", "units": [1, 2, 3], '
     '"error": null, "nested": {"b": [true, {"c": 1.5e-07}], "a": []}, "prev": "ffffffff"}'),
    ({"ts": "t", "seq": 2, "run_id": "r", "event": "plan.warning", "value": complex(1, 2),
      "big": 2**70, "inf": float("inf"), "prev": "aa"},
     '{"ts": "t", "seq": 2, "run_id": "r", "event": "plan.warning", "value": "(1+2j)", '
     '"big": 1180591620717411303424, "inf": Infinity, "prev": "aa"}'),
])
def test_audit_lines_keep_their_bytes(record: dict[str, Any], line: str) -> None:
    # Hashes chain over these bytes, so a change of renderer or its options would
    # break every chain over existing logs: non-ASCII text is kept as is, values JSON
    # cannot take are written as their repr.
    assert render_record(record) == line


def test_a_record_with_envelope_named_fields_keeps_the_audit_order(tmp_path: Path) -> None:
    lines: list[str] = []

    class Lines:
        def write_records(self, batch: Sequence[str]) -> None:
            lines.extend(batch)

        def close(self) -> None:
            pass

    log = AuditLog("run-1", [Lines()], strict=False)
    log.emit("plan.warning", message="m", prev="forged", seq=99)
    keys = list(json.loads(lines[0]))
    assert keys[:4] == ["ts", "seq", "run_id", "event"] and keys[-1] == "prev"
    assert json.loads(lines[0])["prev"] != "forged"
