"""``flashrunner collect LOG``: the outcome of devices a run lost contact with.

A run that lost a station reports that station's unfinished devices as
``unknown (station lost)``; their run went on, detached, on the station. Once
the station is reachable again, ``collect`` reads the run's audit log, tails
each such station's run after the last ``seq`` the log holds, and writes what
it fetched to ``<LOG>.collect-<run id>.jsonl`` (merged exactly as during the
run). Exit 0 when every device of the run has now ended ok.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from runner.console import ConsoleRenderer
from runner.errors import EnvironmentProblem
from runner.events import EventSink, FanOutSink
from runner.logging import AuditLog, JsonlFileSink, new_run_id
from runner.manifest import load_manifest
from runner.plan import DeviceResult, Outcome
from runner.stations.dispatch import StationFollower, _Dropped
from runner.stations.errors import StationError
from runner.stations.staging import StationBundle

__all__ = ["collect"]

_FINAL = ("device.finished", "device.skipped")


def _records(path: Path) -> Iterator[dict[str, Any]]:
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as error:
        raise EnvironmentProblem(f"cannot read {path}: {error.strerror}") from error
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue   # a crash-truncated last line
        if isinstance(record, dict):
            yield record


def collect(log: Path, *, manifest_path: Path | None = None,
            console: TextIO | None = None) -> int:
    outcomes: dict[str, str] = {}
    last_seq: dict[str, int] = {}
    station_of: dict[str, str] = {}
    run_id = ""
    for record in _records(log):
        if record.get("event") == "run.started":
            run_id = str(record.get("run_id", ""))
            manifest_path = manifest_path or Path(str(record.get("manifest_path")))
        station = record.get("station")
        origin = record.get("origin")
        if isinstance(station, str) and isinstance(origin, dict) \
                and isinstance(origin.get("seq"), int):
            last_seq[station] = max(last_seq.get(station, 0), origin["seq"])
        device = record.get("device")
        if record.get("event") in _FINAL and isinstance(device, str):
            outcomes[device] = str(record.get("outcome"))
            if isinstance(station, str):
                station_of[device] = station
    if not run_id or manifest_path is None:
        raise EnvironmentProblem(f"{log} is not the audit log of a run (no run.started)")
    manifest = load_manifest(manifest_path)
    missing: dict[str, list[str]] = {}
    for name, device in manifest.devices.items():
        if device.station and outcomes.get(name, Outcome.UNKNOWN.value) == "unknown" \
                and (name in outcomes or not outcomes):
            missing.setdefault(device.station, []).append(name)
    if not missing:
        _summary(console, outcomes)
        return 0 if all(o == "ok" for o in outcomes.values()) else 1
    collect_id = new_run_id()
    target = log.with_name(f"{log.stem}.collect-{collect_id}.jsonl")
    audit = AuditLog(collect_id, [JsonlFileSink(target)])
    sinks: list[EventSink] = [audit]
    if console is not None:
        sinks.append(ConsoleRenderer(console))
    sink = FanOutSink(sinks)
    sink.emit("collect.started", of_run=run_id, log=str(log),
              stations={s: sorted(d) for s, d in missing.items()},
              at=datetime.now(timezone.utc).isoformat())

    def found(result: DeviceResult) -> None:
        outcomes[result.device] = result.outcome.value

    async def one(station: str, devices: list[str]) -> None:
        bundle = StationBundle(station=manifest.stations[station], devices=tuple(devices),
                               manifest=b"", manifest_sha256="", images={}, gated={},
                               max_parallel=1)
        follower = StationFollower(bundle=bundle, run_id=run_id, sink=sink, on_result=found,
                                   last_seq=last_seq.get(station, 0))
        try:
            await follower.connect()
            follower.started = True
            await follower.follow(follower.tail_argv())
        except (StationError, _Dropped) as error:
            sink.emit("station.failed", station=station, error=str(error))
        finally:
            follower.close()

    async def every() -> None:
        await asyncio.gather(*(one(s, d) for s, d in missing.items()))

    try:
        asyncio.run(every())
        sink.emit("collect.finished", of_run=run_id, outcomes=dict(outcomes))
    finally:
        audit.close()
    if console is not None:
        print(f"collected log: {target}", file=console)
    _summary(console, outcomes)
    return 0 if all(o == "ok" for o in outcomes.values()) else 1


def _summary(console: TextIO | None, outcomes: dict[str, str]) -> None:
    if console is None:
        return
    for device, outcome in outcomes.items():
        print(f"  {device}: {outcome}", file=console)
