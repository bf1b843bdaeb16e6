"""Reading an audit log back: one :class:`RunRecord` per log, one :class:`UnitRecord` per device.

The reader is forgiving (a line that does not parse is skipped; checking a
log is :mod:`runner.audit.verify`'s job), so a crash-truncated log still
yields what it holds. Everything the attestation, ``audit report``, JUnit and
the HTML page show comes from here, that is from the log alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunRecord", "StepRecord", "UnitRecord", "read_run"]


@dataclass(slots=True, kw_only=True)
class StepRecord:
    """One step of a device: when it ran, how it ended, what happened on the way."""

    step: str
    action: str
    started: str
    finished: str = ""
    outcome: str = ""
    attempts: int = 1
    bytes: int = 0
    error: str = ""
    error_category: str = ""
    #: ``(ts, attempt, error)`` of each retry.
    retries: list[tuple[str, int, str]] = field(default_factory=list)
    #: ``(ts, recovery, outcome)`` of each recovery action.
    recoveries: list[tuple[str, str, str]] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class UnitRecord:
    """One device of one run: the chip it found, what went onto it, how it ended."""

    device: str
    chip: str = ""
    kind: str = ""
    transport: str = ""
    station: str = ""
    started: str = ""
    finished: str = ""
    uid: str = ""
    dev_id: str = ""
    rdp_level: int | None = None
    images: list[dict[str, str]] = field(default_factory=list)
    verify_method: str = ""
    verify_result: str = ""
    option_bytes: dict[str, Any] | None = None
    unit_data: dict[str, Any] = field(default_factory=dict)
    outcome: str = ""
    error: str = ""
    error_category: str = ""
    reason: str = ""
    steps: list[StepRecord] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class RunRecord:
    """One log: the run's provenance and its units, in manifest order."""

    path: Path
    run_id: str = ""
    manifest: str = ""
    manifest_path: str = ""
    manifest_sha256: str = ""
    tool_version: str = ""
    host: str = ""
    station: str = ""
    operator: str = ""
    simulate: bool = False
    started: str = ""
    finished: str = ""
    images: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    interrupted: bool = False
    #: The run.finished record was found.
    complete: bool = False
    units: list[UnitRecord] = field(default_factory=list)
    attestation: dict[str, Any] = field(default_factory=dict)

    def unit(self, device: str) -> UnitRecord:
        for unit in self.units:
            if unit.device == device:
                return unit
        unit = UnitRecord(device=device, station=self.station)
        self.units.append(unit)
        return unit


def _records(path: Path) -> list[dict[str, Any]]:
    out = []
    with path.open("rb") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
    return out


def _step(unit: UnitRecord, record: dict[str, Any]) -> StepRecord:
    name = str(record.get("step", ""))
    for step in reversed(unit.steps):
        if step.step == name:
            return step
    step = StepRecord(step=name, action=str(record.get("action", "")),
                      started=str(record.get("ts", "")))
    unit.steps.append(step)
    return step


def _on_step_finished(unit: UnitRecord, record: dict[str, Any]) -> None:
    step = _step(unit, record)
    step.finished = str(record.get("ts", ""))
    step.outcome = str(record.get("outcome", ""))
    step.attempts = int(record.get("attempts", 1))
    step.bytes = int(record.get("bytes", 0))
    step.error = str(record.get("error", ""))
    step.error_category = str(record.get("error_category", ""))
    step.fields = record
    action, ok = step.action, step.outcome == "ok"
    if action == "write" and ok:
        for image in record.get("images", ()):
            entry = {"name": str(image.get("name", "")), "sha256": str(image.get("sha256", ""))}
            if entry not in unit.images:
                unit.images.append(entry)
    elif action == "verify":
        methods = [m for m in (unit.verify_method, str(record.get("method", ""))) if m]
        unit.verify_method = "+".join(dict.fromkeys(methods))
        result = "ok" if ok else step.outcome
        unit.verify_result = result if unit.verify_result in ("", "ok") else unit.verify_result
    elif action == "option-bytes" and ok:
        unit.option_bytes = {"rdp_level": record.get("rdp_level"),
                             "fields": dict(record.get("fields") or {})}
    elif action == "unit-data" and ok:
        unit.unit_data[step.step.partition("/")[2] or step.step] = record.get("unit_value")


def read_run(path: Path | str) -> RunRecord:
    """Everything a log says about its run and units (lines that do not parse are skipped)."""
    path = Path(path)
    run = RunRecord(path=path)
    for record in _records(path):
        event = record.get("event")
        if event in ("run.started", "run.finished", "run.interrupted") \
                and "origin" in record:
            continue   # a station's own run, merged into this one: not this run's start or end
        if event == "run.started":
            run.run_id = str(record.get("run_id", ""))
            for name in ("manifest", "manifest_path", "manifest_sha256", "tool_version",
                         "host", "operator"):
                setattr(run, name, str(record.get(name, "")))
            run.station = str(record.get("station") or run.host)
            run.simulate = bool(record.get("simulate", False))
            run.started = str(record.get("ts", ""))
            run.images = {str(k): str(v) for k, v in dict(record.get("images") or {}).items()}
            continue
        if event == "run.finished":
            run.finished = str(record.get("ts", ""))
            run.exit_code = record.get("exit_code")
            run.interrupted = bool(record.get("interrupted", False))
            run.attestation = dict(record.get("attestation") or {})
            run.complete = True
            continue
        if "device" not in record or not isinstance(record.get("device"), str):
            continue
        unit = run.unit(record["device"])
        if record.get("station"):
            unit.station = str(record["station"])
        if event == "device.started":
            unit.started = str(record.get("ts", ""))
            unit.chip = str(record.get("chip", ""))
            unit.kind = str(record.get("kind", ""))
            unit.transport = str(record.get("transport", ""))
        elif event == "device.identified":
            unit.uid = str(record.get("uid", ""))
            unit.dev_id = str(record.get("dev_id", ""))
            rdp = record.get("rdp_level")
            unit.rdp_level = rdp if isinstance(rdp, int) else None
        elif event == "step.started":
            _step(unit, record)
        elif event == "step.retried":
            _step(unit, record).retries.append((str(record.get("ts", "")),
                                                int(record.get("attempt", 0)),
                                                str(record.get("error", ""))))
        elif event == "step.recovery":
            _step(unit, record).recoveries.append((str(record.get("ts", "")),
                                                   str(record.get("recovery", "")),
                                                   str(record.get("outcome", ""))))
        elif event == "step.finished":
            _on_step_finished(unit, record)
        elif event in ("device.finished", "device.skipped"):
            unit.finished = str(record.get("ts", ""))
            unit.outcome = str(record.get("outcome", ""))
            unit.error = str(record.get("error", ""))
            unit.error_category = str(record.get("error_category", ""))
            unit.reason = str(record.get("reason", ""))
            unit.kind = unit.kind or str(record.get("kind", ""))
            unit.transport = unit.transport or str(record.get("transport", ""))
    for unit in run.units:
        if not unit.outcome:
            unit.outcome = "unknown"   # the log ends before the device did
    return run
