"""JUnit XML from audit logs: structure, outcomes, unique names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import xmlschema
from audit_runs import ROOT, cli, demo_copy

from runner.audit.junit import junit_tree, write_junit
from runner.plan import RunResult

SCHEMA = xmlschema.XMLSchema(Path(__file__).with_name("data") / "junit-structure.xsd")


def cases(root: ET.Element) -> list[ET.Element]:
    return root.findall("testsuite/testcase")


def test_a_failing_run_gives_a_failure_and_skips_and_validates(
        failed_run: RunResult, tmp_path: Path) -> None:
    assert failed_run.log_file is not None
    write_junit([failed_run.log_file], tmp_path / "junit.xml")
    SCHEMA.validate(str(tmp_path / "junit.xml"))
    root = ET.parse(tmp_path / "junit.xml").getroot()
    by_device = {c.get("name", "").split(" ")[0]: c for c in cases(root)}
    assert len(by_device) == len(failed_run.devices)
    failure = by_device["sensor-2"].find("failure")
    assert failure is not None and failure.get("type") == "fault"
    assert failure.get("message")
    skipped = by_device["gateway"].find("skipped")
    assert skipped is not None and skipped.get("message") == \
        "upstream-failed: sensor-2 failed"
    assert by_device["sensor-1"].find("failure") is None
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("11", "1", "1")
    assert {c.get("classname") for c in cases(root)} == \
        {f"demo-line.{suite.get('hostname')}"}
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["manifest_sha256"] == failed_run.plan.manifest_sha256
    assert properties["chain"] == "valid"


def test_names_never_repeat_even_for_the_same_run_twice(
        demo_run: RunResult, failed_run: RunResult, tmp_path: Path) -> None:
    assert demo_run.log_file is not None and failed_run.log_file is not None
    copy = tmp_path / "copy.jsonl"
    shutil.copy(demo_run.log_file, copy)
    root = junit_tree([demo_run.log_file, failed_run.log_file, copy]).getroot()
    keys = [(c.get("classname"), c.get("name")) for c in cases(root)]
    assert len(keys) == 33 and len(set(keys)) == 33
    assert any(name and name.endswith(" #2") for _, name in keys)
    assert root.get("tests") == "33"
    SCHEMA.validate(ET.tostring(root, encoding="unicode"))


def test_run_junit_writes_the_report_beside_the_log(tmp_path: Path) -> None:
    manifest = demo_copy(tmp_path / "m")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "runner", "run", str(manifest), "--quiet",
                           "--log-file", str(tmp_path / "r.jsonl"),
                           "--junit", str(tmp_path / "out" / "junit.xml")], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    SCHEMA.validate(str(tmp_path / "out" / "junit.xml"))
    report = cli("report", str(tmp_path / "r.jsonl"), "--format", "csv",
                 "--junit", str(tmp_path / "again.xml"))
    assert report.returncode == 0
    assert (tmp_path / "again.xml").read_bytes() == \
        (tmp_path / "out" / "junit.xml").read_bytes()
