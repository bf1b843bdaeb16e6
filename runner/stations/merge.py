"""A station's records in the host's audit log: the one place they are merged.

Each record the station's flashrunner wrote is emitted again on the host,
under the host's own ``seq``/``ts``/``run_id`` (so the merged log is one
ordered, flushed-per-record file whose every prefix is valid), with
``station`` naming where it came from and the station's ``seq``, ``ts`` and
``run_id`` kept as ``station_seq``, ``station_ts`` and ``station_run_id``.
Device and step events keep their names: console and reports show every
station's devices as they show local ones. The station's run-level events
are renamed ``station.run-started`` / ``station.run-finished`` /
``station.run-interrupted``, so a reader never mistakes them for the host
run's own start and end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.events import EventSink

__all__ = ["RENAMED", "forward"]

RENAMED = {"run.started": "station.run-started", "run.finished": "station.run-finished",
           "run.interrupted": "station.run-interrupted"}


def forward(sink: EventSink, station: str, record: Mapping[str, Any]) -> None:
    """Emit one station record on the host's ``sink``."""
    fields = dict(record)
    event = str(fields.pop("event", "station.record"))
    origin = {"station": station, "station_seq": fields.pop("seq", None),
              "station_ts": fields.pop("ts", None),
              "station_run_id": fields.pop("run_id", None)}
    fields.pop("prev", None)   # the station's own hash chain stays in the station's log
    sink.emit(RENAMED.get(event, event), **origin, **fields)
