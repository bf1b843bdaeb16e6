"""A station's records in the host's audit log: the one place they are merged.

Each line the station's flashrunner wrote to its own log is appended to the
host's log with :meth:`runner.logging.AuditLog.append_foreign`: the merged
record gets the host's ``seq``, ``ts`` and ``prev`` (one ordered, hash-chained
file whose every prefix is valid), ``station`` naming where it came from, and
``origin`` with the station's own ``run_id``, ``seq``, ``ts`` and the SHA-256 of
its line (so the station's log can be checked against the host's). Device
and step events keep their names: the console and the reports show every
station's devices as they show local ones.
"""

from __future__ import annotations

import json
from typing import Any

from runner.events import EventSink
from runner.logging import AuditLog

__all__ = ["forward"]


def forward(sink: EventSink, station: str, line: str) -> dict[str, Any]:
    """Append one line of ``station``'s log to the host's ``sink``; the parsed record."""
    record = json.loads(line)
    if isinstance(sink, AuditLog):
        sink.append_foreign(line, station=station)
    else:   # a plain sink (tests, embedding code): the same fields
        fields = {k: v for k, v in record.items()
                  if k not in ("ts", "seq", "run_id", "event", "prev")}
        sink.emit(str(record.get("event")), **fields, station=station,
                  origin={"station": station, "run_id": record.get("run_id"),
                          "seq": record.get("seq"), "ts": record.get("ts")})
    return dict(record)
