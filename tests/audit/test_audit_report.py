"""``audit report`` over a folder of logs: a clean, a failed, an interrupted and a cut run."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest
from audit_runs import FAILING, cli, run_demo

from runner.audit.report import collect_logs, filter_rows, render, report_rows, sort_rows

GOLDEN = Path(__file__).with_name("golden")


def assert_matches_golden(name: str, text: str) -> None:
    """``text`` equals ``golden/<name>`` (rewritten first with FLASHRUNNER_REGEN_GOLDEN=1)."""
    path = GOLDEN / name
    if os.environ.get("FLASHRUNNER_REGEN_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), \
        f"{name} differs; regenerate with FLASHRUNNER_REGEN_GOLDEN=1"


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four logs of the demo line: ok, one device failed, interrupted, and crash-cut.

    The runs that are cut short run one device at a time, so what they hold is the same
    every time.
    """
    folder = tmp_path_factory.mktemp("line")
    work = tmp_path_factory.mktemp("work")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLASHRUNNER_OPERATOR", "line-lead")
        runs = [run_demo(work, "1-ok", max_parallel=1), run_demo(work, "2-failed", faults=FAILING),
                run_demo(work, "3-interrupted", interrupt_after=7, max_parallel=1)]
    for run in runs:
        assert run.log_file is not None
        shutil.move(run.log_file, folder / run.log_file.name)
        shutil.move(f"{run.log_file}.intoto.json", folder / f"{run.log_file.name}.intoto.json")
    first = (folder / "1-ok.jsonl").read_bytes().split(b"\n")
    (folder / "4-cut.jsonl").write_bytes(b"\n".join(first[:150]) + b"\n")
    return folder


def normalised(text: str) -> str:
    """Run ids, times and the host name replaced by stable placeholders."""
    ids: dict[str, str] = {}
    text = re.sub(r"\d{8}T\d{6}Z-[0-9a-f]{6}",
                  lambda m: ids.setdefault(m.group(0), f"RUN-{len(ids) + 1}"), text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "TIME", text)
    return text.replace(socket.gethostname(), "HOST")


def test_the_report_of_a_folder_of_runs_matches_its_golden_csv(logs: Path) -> None:
    rows = sort_rows(report_rows(collect_logs([logs])), "unit")
    assert_matches_golden("report-line.csv", normalised(render(rows, "csv")))


def test_each_unit_has_its_outcome_and_each_log_its_chain_status(logs: Path) -> None:
    rows = report_rows(collect_logs([logs]))
    by_log = {(Path(r.log).stem, r.device): r for r in rows}
    assert by_log[("1-ok", "gateway")].outcome == "ok"
    assert by_log[("2-failed", "sensor-2")].outcome == "failed"
    assert "nack" in by_log[("2-failed", "sensor-2")].error.lower() or \
        by_log[("2-failed", "sensor-2")].error
    assert by_log[("2-failed", "gateway")].outcome == "upstream-failed"
    assert by_log[("3-interrupted", "sensor-2")].outcome == "interrupted"
    assert {r.chain for r in rows if Path(r.log).stem == "4-cut"} == {"truncated"}
    assert {r.chain for r in rows if Path(r.log).stem != "4-cut"} == {"valid"}


def test_every_uid_that_received_an_image(logs: Path) -> None:
    rows = report_rows(collect_logs([logs]))
    digest = next(r.images for r in rows if r.device == "motor-1" and r.images)[0][1]
    hits = filter_rows(rows, image=digest[:16])
    assert {r.device for r in hits} == {"motor-1", "motor-2"}
    assert hits == filter_rows(rows, image="motor-fw")
    assert {r.uid for r in hits} == {r.uid for r in rows if r.device.startswith("motor")
                                     and r.uid and r.images}
    by_image = sort_rows(rows, "image")
    assert all(len(r.images) == 1 for r in by_image)
    assert len(by_image) == sum(len(r.images) for r in rows)


def test_report_formats_through_the_command_line(logs: Path) -> None:
    as_json = cli("report", str(logs), "--format", "json", "--image", "gw-app")
    assert as_json.returncode == 0, as_json.stderr
    units = json.loads(as_json.stdout)
    assert {u["device"] for u in units} == {"gateway"}
    assert units[0]["images"][1]["name"] == "gw-app"
    as_csv = cli("report", str(logs / "1-ok.jsonl"), "--format", "csv", "--by", "device")
    devices = [row["device"] for row in csv.DictReader(io.StringIO(as_csv.stdout))]
    assert devices == sorted(devices) and len(devices) == 11
    md = cli("report", str(logs), "--format", "md", "--since", "2000-01-01")
    assert md.stdout.startswith("| time | run_id |")
    table = cli("report", str(logs), "--uid", "nonexistent")
    assert table.stdout == "no units\n"
    assert cli("report", str(logs), "--since", "yesterday").returncode == 2
