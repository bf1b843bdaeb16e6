"""Where protocol traces go: the console (``-v``, ``-vv``) and a JSON-lines trace file.

:class:`Tracing` hands each device session its :class:`~transports.trace.Trace`
and receives the records the protocol engines report: each command with its
reply status and duration, and with ``-vv`` the raw bytes of every transfer.
Console lines read like a bench log::

    sensor-1: GET_VERSION → V2J37S7 (0.4 ms)
    sensor-1: Write Memory (0x31) 0x08000100 256 B → ACK (24.1 ms)
    gateway: DFU_GETSTATUS → dfuDNBUSY OK 250 ms (0.3 ms)
    sensor-1: >> bulk 0x02 f20c0000000000000000000000000000

The trace file (``--trace-file``) holds one JSON object per record with ``ts``,
``device``, ``link``, ``kind``, ``level`` (``command`` or ``raw``) and the
record's own fields. The audit log never carries any of it: a trace is for
diagnosing a bad day, the log for proving what happened.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from runner.errors import EnvironmentProblem
from runner.logging import iso_timestamp
from transports.trace import NO_TRACE, Trace

__all__ = ["Tracing", "trace_line"]


def trace_line(record: dict[str, Any]) -> str:
    """A record as one console line."""
    device = record.get("device", "?")
    if record.get("level") == "raw":
        arrow = ">>" if record.get("direction") == "out" else "<<"
        what = f" {record['what']}" if record.get("what") else ""
        return f"{device}: {arrow}{what} {record.get('hex', '')}"
    detail = f" {record['detail']}" if record.get("detail") else ""
    took = f" ({record['duration_ms']:.1f} ms)" if "duration_ms" in record else ""
    return f"{device}: {record.get('command')}{detail} → {record.get('reply')}{took}"


class Tracing:
    """The run's trace: console lines up to ``verbosity``, everything into ``path``.

    Args:
        verbosity: 0 nothing on the console, 1 commands (``-v``), 2 raw transfers too.
        say: prints a console line (above the progress block).
        path: the JSON-lines trace file (commands, and raw transfers at ``-vv``).
    """

    def __init__(self, verbosity: int, *, say: Callable[[str], None] | None = None,
                 path: Path | None = None) -> None:
        self.verbosity = verbosity
        self.say = say
        self.path = path
        # The file records at least the commands; raw bytes only when asked for.
        self.level = max(verbosity, 1 if path is not None else 0)
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(path, "x", encoding="utf-8")  # noqa: SIM115
            except FileExistsError as error:
                raise EnvironmentProblem(f"trace file {path} already exists",
                                         hint="name a new file for --trace-file") from error
            except OSError as error:
                raise EnvironmentProblem(f"cannot create trace file {path}: {error.strerror}",
                                         hint="check the folder exists and is writable") \
                    from error

    @property
    def enabled(self) -> bool:
        return self.level > 0

    def trace_for(self, device: str, link: str, kind: str) -> Trace:
        """The trace one device's session reports into (off when nothing listens)."""
        if not self.enabled:
            return NO_TRACE
        return Trace(self, level=self.level, device=device, link=link, kind=kind)

    def record(self, record: dict[str, Any]) -> None:
        raw = record.get("level") == "raw"
        with self._lock:
            if self.say is not None and self.verbosity >= (2 if raw else 1):
                self.say(trace_line(record))
            if self._file is not None:
                self._file.write(json.dumps({"ts": iso_timestamp(), **record},
                                            ensure_ascii=False) + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
