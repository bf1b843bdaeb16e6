"""The audit log: one numbered, hash-chained stream of records, delivered to every sink.

:class:`AuditLog` is the :class:`~runner.events.EventSink` a run reports to.
For each event it checks the event's definition (:mod:`runner.events`), stamps
``ts`` (UTC, milliseconds, ``Z``, never earlier than the record before),
numbers it (``seq``, strictly increasing in file order across worker threads),
binds the ``run_id``, makes values JSON-ready (bytes as hex,
paths as text, enums as their value), adds ``prev`` (the SHA-256 of the
previous line: :mod:`runner.audit.chain`) and renders one JSON line. That
same line goes to every :class:`RecordOutput` (the JSONL file, ``--json`` on
stdout) and the same record to every listening sink (the console): one stream,
one ``seq`` and ``ts`` everywhere. Records are written by group commit: the
numbering lock holds no system call, and one writer at a time writes every
record waiting, in one write per output (see :class:`AuditLog`).

Rendering is structlog's ``JSONRenderer``, called on the record already in
audit order (envelope first, ``prev`` last) as a processor of our own: the
global structlog configuration is never read or changed, so an application
that uses flashrunner as a library keeps its own logging.

A station's records join the host's log through :meth:`AuditLog.append_foreign`:
they get the host's ``seq``, ``ts`` and ``prev`` and keep their own in ``origin``.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TextIO

import structlog

from runner.audit.chain import genesis, line_hash
from runner.errors import EnvironmentProblem, StorageFailed
from runner.events import (
    ENVELOPE,
    EventContractError,
    EventSink,
    contract_problems,
    strict_events,
)

__all__ = [
    "AuditLog",
    "AuditWriteFailed",
    "JsonlFileSink",
    "RecordOutput",
    "StdoutJsonSink",
    "iso_timestamp",
    "log_path",
    "new_run_id",
    "render_record",
]


class RecordOutput(Protocol):
    """Where rendered records go: a batch of lines (without newlines) in file order.

    An output takes the batch whole or raises: :class:`AuditWriteFailed` says in
    ``kept`` how many of the batch's first lines it did take whole; any other
    exception means none of them.
    """

    def write_records(self, lines: Sequence[str]) -> None: ...

    def close(self) -> None: ...


class AuditWriteFailed(StorageFailed):
    """A record could not be written to the audit log (a full disk, an I/O error).

    The file is cut back to its last complete record, so it stays a valid prefix
    of the run; nothing more is written to it. ``kept``: how many lines of the
    batch being written are in the file whole (0 for any later batch).
    """

    def __init__(self, message: str, *, hint: str | None = None, kept: int = 0) -> None:
        super().__init__(message, hint=hint)
        self.kept = kept


class JsonlFileSink:
    """A JSON-lines file written a batch of records at a time.

    Each batch is one write (unbuffered, retried until every byte is out), so a
    killed run leaves a file whose every complete line is valid JSON. A write
    that fails (``ENOSPC``) cuts the file back to the end of the last complete
    record and raises :class:`AuditWriteFailed`; later records are refused. An
    existing file is never truncated: opening one is refused.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: BinaryIO | None = open(self.path, "xb", buffering=0)  # noqa: SIM115
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
        self._complete = 0          # bytes of the file that are whole records
        self._failure: str | None = None

    def write_records(self, lines: Sequence[str]) -> None:
        with self._lock:
            if self._failure is not None:
                raise AuditWriteFailed(self._failure, hint=_FULL_DISK_HINT)
            if self._file is None:
                return
            encoded = ("\n".join(lines) + "\n").encode("utf-8")
            data = memoryview(encoded)
            try:
                while data:
                    written = self._file.write(data)
                    data = data[written or 0:]
            except OSError as error:
                # A rendered record holds no raw newline: each one ends a whole line.
                done = encoded[:len(encoded) - len(data)]
                kept = done.count(b"\n")
                self._complete += done.rfind(b"\n") + 1
                self._failure = \
                    f"cannot write the audit log {self.path}: {error.strerror or error}"
                with contextlib.suppress(OSError):
                    os.ftruncate(self._file.fileno(), self._complete)
                raise AuditWriteFailed(self._failure, hint=_FULL_DISK_HINT,
                                       kept=kept) from error
            except BaseException:   # interrupted (Ctrl-C): the batch is not counted, so cut it
                self._failure = f"writing the audit log {self.path} was interrupted"
                with contextlib.suppress(OSError):
                    os.ftruncate(self._file.fileno(), self._complete)
                raise
            self._complete += len(encoded)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    os.fsync(self._file.fileno())  # the final hash goes into the ledger
                except OSError:
                    pass
                self._file.close()
                self._file = None


_FULL_DISK_HINT = ("free space on its disk (or fix the disk) and run again; the log holds "
                   "every record up to the failure")


class StdoutJsonSink:
    """JSON records on stdout (``--json``); stdout itself is never replaced.

    A reader that goes away (``flashrunner run --json | head -1``) ends the
    stream, not the run: the remaining records still reach the audit log, and
    the closed pipe is pointed at ``/dev/null`` so that the interpreter's last
    flush does not fail either.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self.closed = False

    def write_records(self, lines: Sequence[str]) -> None:
        stream = self._stream or sys.stdout
        with self._lock:
            if self.closed:
                return
            try:
                stream.write("\n".join(lines) + "\n")
                stream.flush()   # once per batch: the stream stays live
            except (BrokenPipeError, ValueError):   # ValueError: the stream was closed
                self.closed = True
                _silence(stream)

    def close(self) -> None:
        pass


def _silence(stream: TextIO) -> None:
    """Point a stream whose reader has gone at ``/dev/null`` (its buffer is dropped)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass   # not a file descriptor (a test's StringIO): nothing more is written to it


def iso_timestamp(moment: datetime | None = None) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``: ``2026-11-22T02:37:28.123Z``."""
    if moment is None:
        return _now_timestamp()
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


#: The current second and its formatted ``YYYY-MM-DDTHH:MM:SS.`` (records come many a second).
_second: tuple[int, str] = (-1, "")


def _now_timestamp() -> str:
    global _second
    now = time.time()
    second = int(now)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
    return f"{cached[1]}{int((now - second) * 1000):03d}Z"


#: Values JSON takes as they are (exact types: an enum deriving from str is converted).
_PLAIN = frozenset({str, int, float, bool, type(None)})


def _json_ready(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
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


class _Serializer:
    """``json.dumps`` for the renderer, its encoder built once from the renderer's options.

    ``json.dumps`` builds a new encoder for every call that passes options; the
    options never change here, and the encoder's output is ``json.dumps``'s.
    """

    def __init__(self) -> None:
        self._encode: Callable[[Any], str] | None = None

    def __call__(self, obj: Any, **options: Any) -> str:
        if self._encode is None:
            self._encode = json.JSONEncoder(**options).encode
        return self._encode(obj)


#: No bound logger, no context copy: the record is final when it reaches the renderer.
#: What JSON cannot take is written as its ``repr``.
_RENDERER = structlog.processors.JSONRenderer(_Serializer(), sort_keys=False,
                                              ensure_ascii=False)


def render_record(record: dict[str, Any]) -> str:
    """A record (a dict in audit order: envelope first, ``prev`` last) as its JSON line."""
    return str(_RENDERER(None, "info", record))


@dataclass(slots=True, eq=False)
class _Numbered:
    """A record numbered and rendered, waiting for the writer."""

    seq: int
    line: str
    sha256: str          # of ``line``: the chain's head once it is written
    event: str
    record: dict[str, Any]
    #: Held while the emitting thread waits: released once the record is written (or
    #: the log failed), or when that thread is to write the next batch (``leads``).
    wake: threading.Lock | None = None
    leads: bool = False
    #: The emitting thread stopped waiting (an interrupt): it is not asked to write.
    gone: bool = False


class AuditLog:
    """An :class:`~runner.events.EventSink` writing one run's numbered, chained records.

    Records are written by group commit. Numbering (``seq``, ``ts``, rendering,
    ``prev``) takes a short lock and makes no system call; the record then joins
    the batch waiting. One thread at a time writes: all the records waiting, in
    one write per output, then to the listeners record by record, in file order.
    The threads whose records it wrote are woken together (not one after the
    other, as a lock would wake them), and the first record that arrived
    meanwhile is woken to write the next batch. :meth:`emit` returns once its
    record is written (or the log has failed).

    Args:
        run_id: the run's id, bound to every record (and the chain's start).
        outputs: where each rendered line goes (file, stdout).
        listeners: sinks that receive each record as written (the console).
        strict: raise :class:`~runner.events.EventContractError` for an event its
            definition does not allow (default: :func:`runner.events.strict_events`).
        on_failure: called once, with the error, when an output cannot take a record.
    """

    def __init__(self, run_id: str, outputs: Sequence[RecordOutput] = (), *,
                 listeners: Sequence[EventSink] = (), strict: bool | None = None,
                 on_failure: Callable[[BaseException], None] | None = None) -> None:
        self.run_id = run_id
        self.on_failure = on_failure
        self._failure: BaseException | None = None
        self.outputs = tuple(outputs)
        self.listeners = tuple(listeners)
        self.strict = strict_events() if strict is None else strict
        # Under _numbering: the last record numbered, the records waiting, whether a
        # thread is writing.
        self._numbering = threading.Lock()
        self._seq = 0
        self._ts = ""
        self._prev = genesis(run_id)
        self._waiting: list[_Numbered] = []
        self._writing = False
        # The last record written (changed only by the thread writing).
        self._written_seq = 0
        self._head = self._prev

    @property
    def failure(self) -> BaseException | None:
        """Why an output could not take a record; from then on nothing more is written."""
        return self._failure

    @property
    def seq(self) -> int:
        """The number of records written so far."""
        return self._written_seq

    @property
    def head(self) -> str:
        """SHA-256 of the last line written (the chain's head; the next record's ``prev``)."""
        return self._head

    def emit(self, event: str, **fields: Any) -> None:
        self.emit_all(((event, fields),))

    def emit_all(self, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Emit ``events`` in order as one batch: numbered together, written in one
        write per output (a run's records arriving from its worker processes)."""
        checked: list[tuple[str, dict[str, Any]]] = []
        for event, fields in events:
            fields.pop("run_id", None)
            problems = contract_problems(event, fields)
            if problems and self.strict:
                raise EventContractError("; ".join(problems))
            if problems:
                fields["contract_error"] = "; ".join(problems)
            checked.append((event, fields))
        if not checked:
            return
        with self._numbering:   # seq and prev follow file order: batches are written in turn
            if self._failure is not None:
                return   # the log is a valid prefix: nothing after the failure joins it
            for event, fields in checked:
                mine = self._number(event, fields)
                mine.gone = True   # nobody waits for it but the batch's last
            mine.gone = False
            if self._writing:
                mine.wake = threading.Lock()
                mine.wake.acquire()
            else:
                self._writing = True
        if mine.wake is not None:
            try:
                mine.wake.acquire()   # written, or the log failed, or this thread writes next
            except BaseException:     # interrupted (Ctrl-C in the main thread)
                with self._numbering:
                    mine.gone = not mine.leads
                if mine.gone:
                    raise
                self._write_waiting()   # asked to write meanwhile: the others wait on it
                raise
            if not mine.leads:
                return
        self._write_waiting()

    def _number(self, event: str, fields: dict[str, Any]) -> _Numbered:
        """Number, render and chain one record; it joins the batch waiting (lock held)."""
        self._seq += 1
        now = iso_timestamp()
        self._ts = max(now, self._ts)
        record: dict[str, Any] = {"ts": self._ts, "seq": self._seq, "run_id": self.run_id,
                                  "event": event}
        for key, value in fields.items():
            record[key] = value if type(value) in _PLAIN else _json_ready(value)
        record.pop("prev", None)
        record["prev"] = self._prev
        line = render_record(record)
        self._prev = line_hash(line)
        numbered = _Numbered(self._seq, line, self._prev, event, record)
        self._waiting.append(numbered)
        return numbered

    def _write_waiting(self) -> None:
        """Write every record waiting, batch after batch until another thread is to write."""
        while True:
            with self._numbering:
                batch, self._waiting = self._waiting, []
            try:
                self._write(batch)
            except BaseException:
                self._hand_on(batch, write_on=False)
                raise
            if not self._hand_on(batch, write_on=True):
                return

    def _hand_on(self, batch: list[_Numbered], *, write_on: bool) -> bool:
        """Wake the threads of ``batch`` and the writer of the next one.

        Returns whether this thread writes the next batch too (its records' threads
        are gone, so none of them can).
        """
        with self._numbering:
            if self._failure is not None:
                batch += self._waiting   # never to be written: their threads return
                self._waiting = []
            following = next((entry for entry in self._waiting if not entry.gone), None)
            if following is not None:
                following.leads = True
            write_on = write_on and following is None and bool(self._waiting)
            self._writing = following is not None or write_on
        for entry in batch:
            if entry.wake is not None:
                entry.wake.release()
        if following is not None and following.wake is not None:
            following.wake.release()
        return write_on

    def _write(self, batch: list[_Numbered]) -> None:
        """Write ``batch`` to every output, then show it to the listeners, in file order."""
        lines = [entry.line for entry in batch]
        kept, error = len(batch), None
        for output in self.outputs:
            if kept == 0:
                break
            try:
                output.write_records(lines if kept == len(lines) else lines[:kept])
            except Exception as failure:   # any output's failure ends the log
                kept = min(kept, failure.kept if isinstance(failure, AuditWriteFailed) else 0)
                error = error or failure
            except BaseException as interrupt:   # Ctrl-C: what the outputs took is unknown
                with self._numbering:
                    self._failure = interrupt
                raise
        written = batch[:kept]
        if written:
            self._written_seq, self._head = written[-1].seq, written[-1].sha256
        if error is not None:
            # What the log could not record is not shown as having happened either.
            with self._numbering:
                self._failure = error
                self._seq, self._prev = self._written_seq, self._head
        try:
            if self.listeners:
                for entry in written:
                    del entry.record["event"]
                    for listener in self.listeners:
                        listener.emit(entry.event, **entry.record)
        finally:
            if error is not None and self.on_failure is not None:
                self.on_failure(error)

    def append_foreign(self, record: Mapping[str, Any] | str, *, station: str) -> None:
        """Merge a record of ``station``'s own log into this one.

        ``record`` is the station's line (preferred: its hash is kept, so the
        station's log can be checked against the host's) or its parsed object.
        The merged record gets this log's ``seq``, ``ts`` and ``prev``, and
        ``station`` plus ``origin: {station, run_id, seq, ts[, line_sha256]}``
        with the station's own numbering and time.
        """
        line_sha: str | None = None
        if isinstance(record, str):
            line_sha = line_hash(record)
            record = json.loads(record)
        assert isinstance(record, Mapping)
        origin: dict[str, Any] = {"station": station, "run_id": str(record.get("run_id", "")),
                                  "seq": record.get("seq", 0), "ts": str(record.get("ts", ""))}
        if line_sha is not None:
            origin["line_sha256"] = line_sha
        fields = {k: v for k, v in record.items() if k not in ENVELOPE}
        self.emit(str(record.get("event", "")), **fields, station=station, origin=origin)

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
