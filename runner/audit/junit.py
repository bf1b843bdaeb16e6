"""JUnit XML for CI: one ``<testcase>`` per device, from audit logs alone.

Layout (the dialect Jenkins' junit-10 and GitLab read): ``<testsuites>`` holds
one ``<testsuite>`` per run (``name`` = manifest and run id, ``hostname`` =
station, ``timestamp``, counts, ``<properties>`` with the run's provenance).
Each device is a ``<testcase>``: ``classname`` = ``<manifest>.<station>`` (what
GitLab shows as the suite), ``name`` = the device and its UID, ``time`` its
seconds. A failed device has ``<failure type="<error category>" message=…>``;
an interrupted one, or one the log ends before, an ``<error>``; skipped and
upstream-failed devices ``<skipped message=…>``. GitLab drops testcases whose
``classname`` and ``name`` repeat, so names are made unique across the file
(several runs: the run id is added; the same run twice: ``#2``).

Written with :mod:`xml.etree.ElementTree` only.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from runner.audit.records import RunRecord, UnitRecord, read_run
from runner.audit.verify import verify_log

__all__ = ["junit_tree", "write_junit"]


def _moment(ts: str) -> datetime | None:
    try:
        return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None


def _seconds(start: str, end: str) -> float:
    first, last = _moment(start), _moment(end)
    if first is None or last is None:
        return 0.0
    return max(0.0, (last - first).total_seconds())


def _testcase(suite: ET.Element, run: RunRecord, unit: UnitRecord, name: str) -> str:
    """Add the device's testcase; return its outcome class (passed/failure/error/skipped)."""
    case = ET.SubElement(suite, "testcase", {
        "classname": f"{run.manifest}.{unit.station or run.station}", "name": name,
        "time": f"{_seconds(unit.started, unit.finished):.3f}"})
    images = ", ".join(f"{i['name']}@{i['sha256'][:12]}" for i in unit.images)
    summary = [f"device {unit.device} ({unit.chip or 'chip unknown'}) on {unit.transport}",
               f"uid {unit.uid or '-'}; images {images or '-'}; verify "
               f"{unit.verify_method or '-'} {unit.verify_result}".rstrip()]
    summary += [f"{step.step}: {step.outcome or 'unfinished'} ({step.attempts} attempt(s))"
                for step in unit.steps]
    if unit.outcome == "failed":
        ET.SubElement(case, "failure", {"type": unit.error_category or "failed",
                                        "message": unit.error or "failed"}).text = unit.error
        kind = "failure"
    elif unit.outcome in ("skipped", "upstream-failed"):
        ET.SubElement(case, "skipped", {"message": f"{unit.outcome}: {unit.reason}"})
        kind = "skipped"
    elif unit.outcome != "ok":
        message = "interrupted" if unit.outcome == "interrupted" else \
            "outcome unknown: the log ends before the device did"
        ET.SubElement(case, "error", {"type": unit.outcome, "message": message})
        kind = "error"
    else:
        kind = "passed"
    ET.SubElement(case, "system-out").text = "\n".join(summary) + "\n"
    return kind


def junit_tree(logs: Sequence[Path]) -> ET.ElementTree:
    """The JUnit document for ``logs`` (each a run)."""
    runs = [run for run in (read_run(path) for path in logs) if run.run_id]
    several = len({run.run_id for run in runs}) > 1
    root = ET.Element("testsuites", {"name": "flashrunner"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    seconds = 0.0
    used: set[tuple[str, str]] = set()
    for index, run in enumerate(runs):
        started = (_moment(run.started) or datetime(1970, 1, 1)).strftime("%Y-%m-%dT%H:%M:%S")
        duration = _seconds(run.started, run.finished)
        suite = ET.SubElement(root, "testsuite", {
            "name": f"{run.manifest} {run.run_id}", "id": str(index),
            "package": run.manifest, "hostname": run.station or "unknown",
            "timestamp": started, "time": f"{duration:.3f}"})
        properties = ET.SubElement(suite, "properties")
        for key, value in (("run_id", run.run_id), ("manifest_sha256", run.manifest_sha256),
                           ("tool_version", run.tool_version), ("operator", run.operator),
                           ("station", run.station), ("log", str(run.path)),
                           ("chain", verify_log(run.path).status)):
            ET.SubElement(properties, "property", {"name": key, "value": value})
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for unit in run.units:
            name = f"{unit.device} [{unit.uid}]" if unit.uid else unit.device
            if several:
                name += f" @{run.run_id}"
            classname = f"{run.manifest}.{unit.station or run.station}"
            unique, n = name, 1
            while (classname, unique) in used:
                n += 1
                unique = f"{name} #{n}"
            used.add((classname, unique))
            kind = _testcase(suite, run, unit, unique)
            counts["tests"] += 1
            if kind != "passed":
                counts[{"failure": "failures", "error": "errors"}.get(kind, kind)] += 1
        for key, count in counts.items():
            suite.set(key, str(count))
            totals[key] += count
        seconds += duration
        # The schema wants properties, testcases, then system-out and system-err.
        ET.SubElement(suite, "system-out").text = f"audit log {run.path}\n"
        ET.SubElement(suite, "system-err")
    for key, total in totals.items():
        root.set(key, str(total))
    root.set("time", f"{seconds:.3f}")
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(logs: Sequence[Path], path: Path) -> None:
    """Write the JUnit document of ``logs`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_tree(logs).write(path, encoding="utf-8", xml_declaration=True)
