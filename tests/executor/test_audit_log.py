"""The JSONL audit log: records, numbering, crash safety, file names."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from executor_plans import device, plan

from runner.errors import EnvironmentProblem
from runner.launch import execute
from runner.logging import AuditLog, JsonlFileSink, StdoutJsonSink, log_path
from transports.sim import SimulationWorld


def progress(device: str, done: int) -> dict[str, object]:
    """The fields of a ``step.progress`` event."""
    return {"device": device, "transport": "probe", "kind": "sim", "step": f"{device}/1-write",
            "action": "write", "done": done, "total": 1000, "percent": done / 10}


def test_records_carry_timestamp_sequence_run_id_and_event_first(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "run.jsonl")
    log = AuditLog("run-1", [sink])
    log.emit("device.identified", device="a", transport="probe", kind="sim", chip="stm32f103c8",
             expected_part="stm32f103c8", expected_dev_id="0x410", dev_id="0x410",
             uid=bytes.fromhex("0a0b"))
    sink.close()
    record = json.loads((tmp_path / "run.jsonl").read_text())
    assert list(record)[:4] == ["ts", "seq", "run_id", "event"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])
    assert (record["seq"], record["run_id"], record["uid"]) == (1, "run-1", "0a0b")


def test_a_killed_run_leaves_a_parseable_prefix(tmp_path: Path) -> None:
    log = AuditLog("run-1", [JsonlFileSink(tmp_path / "run.jsonl")])
    for index in range(5):
        log.emit("step.progress", **progress("a", index))
    # No close(): the process "dies" here; every record is already on disk.
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    assert [json.loads(line)["done"] for line in lines] == [0, 1, 2, 3, 4]


def test_seq_is_strictly_increasing_in_file_order_across_threads(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "run.jsonl")
    log = AuditLog("run-1", [sink])

    def worker(name: str) -> None:
        for index in range(200):
            log.emit("step.progress", **progress(name, index))

    threads = [threading.Thread(target=worker, args=(f"d{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sink.close()
    seqs = [json.loads(line)["seq"] for line in (tmp_path / "run.jsonl").read_text()
            .splitlines()]
    assert seqs == list(range(1, 801))


def test_an_existing_log_file_is_never_overwritten(tmp_path: Path) -> None:
    existing = tmp_path / "run.jsonl"
    existing.write_text("evidence\n")
    with pytest.raises(EnvironmentProblem, match="already exists"):
        JsonlFileSink(existing)
    assert existing.read_text() == "evidence\n"


def test_a_run_refuses_to_start_over_an_existing_log(
        tmp_path: Path, world: SimulationWorld) -> None:
    (tmp_path / "fixed.jsonl").write_text("evidence\n")
    with pytest.raises(EnvironmentProblem):
        execute(plan([device("a")], log_file=str(tmp_path / "fixed.jsonl")), world=world)
    assert world.chips == {}


def test_log_directories_are_created(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "a" / "b" / "run.jsonl")
    sink.close()
    assert (tmp_path / "a" / "b" / "run.jsonl").exists()


def test_log_path_expands_name_run_id_date_and_time() -> None:
    now = datetime(2026, 11, 22, 3, 4, 5, tzinfo=timezone.utc)
    path = log_path("logs/{date}/{name}-{time}-{run_id}.jsonl", name="line-7", run_id="r1",
                    now=now)
    assert path == Path("logs/2026-11-22/line-7-030405-r1.jsonl")


def test_log_path_rejects_unknown_placeholders() -> None:
    with pytest.raises(EnvironmentProblem, match="host"):
        log_path("{host}.jsonl", name="n", run_id="r", now=datetime.now(timezone.utc))


def test_stdout_sink_writes_the_same_records(capsys: pytest.CaptureFixture[str]) -> None:
    AuditLog("run-9", [StdoutJsonSink()]).emit("plan.warning", message="slow link")
    record = json.loads(capsys.readouterr().out)
    assert (record["event"], record["message"], record["run_id"]) == \
        ("plan.warning", "slow link", "run-9")


def test_run_started_records_provenance(tmp_path: Path, world: SimulationWorld,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLASHRUNNER_OPERATOR", "line-lead")
    run = execute(plan([device("a")], log_file=str(tmp_path / "r.jsonl")), world=world)
    started = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert started["event"] == "run.started"
    assert started["operator"] == "line-lead"
    assert started["manifest_sha256"] == run.plan.manifest_sha256
    assert started["images"] == dict(run.plan.image_digests)
    assert {"tool_version", "host", "python", "simulate", "devices", "max_parallel",
            "fail_fast", "estimate_s"} <= started.keys()
