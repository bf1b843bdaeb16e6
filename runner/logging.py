"""The audit log: structlog configured once, one JSON object per line.

:func:`configure` is the only place that sets up structlog. Its processor
chain stamps ``ts`` (UTC, milliseconds, ``Z``), puts the audit keys first
(``ts``, ``seq``, ``run_id``, ``event``), makes values JSON-ready (bytes as
hex, paths as text, enums as their value) and renders JSON. The loggers it
hands out write each rendered line to the :class:`RecordOutput` s they were
created for, so every run has its own files while the chain stays global.

:class:`AuditLog` is the :class:`~runner.events.EventSink` that feeds it: it
numbers records (``seq``, strictly increasing in file order, under one lock
across worker threads) and binds the ``run_id``.
"""

from __future__ import annotations

import enum
import os
import secrets
import sys
import threading
from collections.abc import Mapping, MutableMapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TextIO

import structlog

from runner.errors import EnvironmentProblem

__all__ = [
    "AuditLog",
    "JsonlFileSink",
    "RecordOutput",
    "StdoutJsonSink",
    "configure",
    "iso_timestamp",
    "log_path",
    "new_run_id",
]

_LEADING_KEYS = ("ts", "seq", "run_id", "event")


class RecordOutput(Protocol):
    """Where rendered records go: one call per record, the line without its newline."""

    def write_record(self, line: str) -> None: ...

    def close(self) -> None: ...


class JsonlFileSink:
    """A JSON-lines file written record by record.

    Each record is one ``write()`` of the whole line followed by a flush, so a
    killed run leaves a file whose every complete line is valid JSON. An
    existing file is never truncated: opening one is refused.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO | None = open(self.path, "x", encoding="utf-8")  # noqa: SIM115
        except FileExistsError as error:
            from runner.logtarget import log_target_problem

            raise log_target_problem(self.path) or EnvironmentProblem(
                f"log file {self.path} already exists; an audit log is never overwritten",
                hint="put {run_id} or {time} in log.file, or move the old log away") from error
        except OSError as error:
            from runner.logtarget import log_target_problem

            raise log_target_problem(self.path) or EnvironmentProblem(
                f"cannot create log file {self.path}: {error.strerror}",
                hint="check the directory exists and is writable") from error
        self._lock = threading.Lock()

    def write_record(self, line: str) -> None:
        with self._lock:
            if self._file is None:
                return
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class StdoutJsonSink:
    """JSON records on stdout (``--json``); stdout itself is never replaced."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write_record(self, line: str) -> None:
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

    def close(self) -> None:
        pass


class _RecordLogger:
    """The structlog logger: hands the rendered line to each output."""

    def __init__(self, outputs: Sequence[RecordOutput] = ()) -> None:
        self.outputs = tuple(outputs)

    def msg(self, message: str) -> None:
        for output in self.outputs:
            output.write_record(message)

    info = warning = error = debug = msg


def _logger_factory(*args: Any) -> _RecordLogger:
    outputs: Sequence[RecordOutput] = args[0] if args else ()
    return _RecordLogger(outputs)


def iso_timestamp(moment: datetime | None = None) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``: ``2026-11-22T02:37:28.123Z``."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _json_ready(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_json_ready(v) for v in items]
    return value


def _stamp(logger: Any, method: str, event_dict: MutableMapping[str, Any]) \
        -> MutableMapping[str, Any]:
    event_dict.setdefault("ts", iso_timestamp())
    return event_dict


def _audit_order(logger: Any, method: str, event_dict: MutableMapping[str, Any]) \
        -> MutableMapping[str, Any]:
    ordered = {key: event_dict.pop(key) for key in _LEADING_KEYS if key in event_dict}
    ordered.update((key, _json_ready(value)) for key, value in event_dict.items())
    return ordered


_configured = False
_configure_lock = threading.Lock()


def configure() -> None:
    """Set up structlog for flashrunner's records (idempotent)."""
    global _configured
    with _configure_lock:
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                _stamp,
                _audit_order,
                structlog.processors.JSONRenderer(sort_keys=False, ensure_ascii=False),
            ],
            logger_factory=_logger_factory,
            wrapper_class=structlog.BoundLogger,
            cache_logger_on_first_use=False,
        )
        _configured = True


class AuditLog:
    """An :class:`~runner.events.EventSink` writing numbered records for one run."""

    def __init__(self, run_id: str, outputs: Sequence[RecordOutput]) -> None:
        if not _configured:
            configure()
        self.run_id = run_id
        self.outputs = tuple(outputs)
        self._logger = structlog.get_logger(self.outputs).bind(run_id=run_id)
        self._seq = 0
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        # The lock spans numbering and writing: seq increases in file order.
        with self._lock:
            self._seq += 1
            fields.pop("run_id", None)
            self._logger.info(event, seq=self._seq, **fields)

    def close(self) -> None:
        for output in self.outputs:
            output.close()


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: ``20261122T023728Z-1a2b3c``."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def log_path(template: str, *, name: str, run_id: str, now: datetime) -> Path:
    """Expand a ``log.file`` template: ``{name}``, ``{run_id}``, ``{date}``, ``{time}``.

    ``{date}`` is ``YYYY-MM-DD`` and ``{time}`` ``HHMMSS`` (UTC, no colons, so
    the name is valid on every file system); ``~`` expands to the home directory.
    """
    moment = now.astimezone(timezone.utc) if now.tzinfo else now
    values = {"name": name, "run_id": run_id, "date": f"{moment:%Y-%m-%d}",
              "time": f"{moment:%H%M%S}"}
    try:
        expanded = template.format_map(values)
    except (KeyError, IndexError, ValueError) as error:
        raise EnvironmentProblem(
            f"log file template {template!r} cannot be expanded ({error})",
            hint="use only {name}, {run_id}, {date} and {time}") from error
    return Path(os.path.expanduser(expanded))
