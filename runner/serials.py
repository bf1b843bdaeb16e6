"""A counter shared by every run on a station: each value handed out once, ever.

State lives beside the file the manifest names (``serials.json``):

* ``serials.json`` — ``{"next": 1043}``, replaced atomically (write to a
  temporary file, fsync, ``os.replace``, fsync the folder);
* ``serials.json.journal`` — one JSON line per allocation (value, device,
  run_id, time), appended and fsynced *before* the value is returned;
* ``serials.json.lock`` — held with ``fcntl.flock`` for the whole allocation,
  so concurrent runs (two ``flashrunner run`` on one station, or threads of
  one run) are serialised.

Because the journal is written first, a crash anywhere leaves at most one
value allocated and unused (the crashed unit's), and the journal names it.
If the crash falls between the journal line and the state file, the next
allocation sees the journal ahead of the state and continues after it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import EnvironmentProblem, StorageFailed, UnitDataError

__all__ = ["Allocation", "SerialCounter"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    """One journal line."""

    value: int
    device: str
    run_id: str
    time: str


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SerialCounter:
    """Values ``start, start+step, …`` (up to ``limit`` inclusive), allocated atomically.

    Raising ``start`` in the manifest moves the counter forward; lowering it
    never moves it back.
    """

    state: Path
    start: int = 0
    step: int = 1
    limit: int | None = None

    @property
    def journal_path(self) -> Path:
        return self.state.with_name(self.state.name + ".journal")

    @property
    def lock_path(self) -> Path:
        return self.state.with_name(self.state.name + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.state.parent.mkdir(parents=True, exist_ok=True)
            handle = self.lock_path.open("a+")
        except OSError as error:
            raise EnvironmentProblem(f"cannot open the counter lock {self.lock_path}: "
                                     f"{error.strerror}",
                                     hint="check the folder exists and is writable") from error
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _read_state(self) -> int | None:
        try:
            document: Any = json.loads(self.state.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise UnitDataError(f"counter state {self.state} is unreadable: {error}",
                                source=str(self.state),
                                hint=f"restore it; the last value handed out is the last "
                                     f"line of {self.journal_path.name}") from error
        value = document.get("next") if isinstance(document, dict) else None
        if not _is_count(value):
            raise UnitDataError(f"counter state {self.state} has no integer 'next'",
                                source=str(self.state),
                                hint=f"restore it from the last line of "
                                     f"{self.journal_path.name}")
        return value

    def _last_journaled(self) -> int | None:
        """The value of the journal's last complete line (a torn last line is ignored)."""
        try:
            with self.journal_path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                chunk = 4096
                while True:
                    handle.seek(max(0, size - chunk))
                    lines = handle.read().split(b"\n")
                    for line in reversed(lines[1:] if size > chunk else lines):
                        with contextlib.suppress(ValueError):
                            record = json.loads(line)
                            if isinstance(record, dict) and _is_count(record.get("value")):
                                return int(record["value"])
                    if chunk >= size:
                        return None
                    chunk *= 4
        except FileNotFoundError:
            return None

    def _append_journal(self, allocation: Allocation) -> None:
        line = json.dumps({"value": allocation.value, "device": allocation.device,
                           "run_id": allocation.run_id, "time": allocation.time},
                          sort_keys=True)
        with self.journal_path.open("ab") as handle:
            if handle.tell() > 0:
                with self.journal_path.open("rb") as reader:
                    reader.seek(-1, os.SEEK_END)
                    if reader.read(1) != b"\n":
                        handle.write(b"\n")   # a crash tore the previous line
            handle.write(line.encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _write_state(self, next_value: int) -> None:
        if not _is_count(next_value):   # the state file only ever holds a valid integer
            raise UnitDataError(f"counter {self.state}: {next_value!r} is not a count",
                                source=str(self.state))
        descriptor, temporary = tempfile.mkstemp(dir=self.state.parent,
                                                 prefix=f".{self.state.name}.")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump({"next": next_value}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.state)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_folder(self.state.parent)

    def peek(self) -> int:
        """The value the next allocation would return (for plans and reports)."""
        with self._locked():
            return self._next()

    def stored_next(self) -> int:
        """The next value as the files say now, without locking or creating anything.

        For validation: a state file that no longer suits the manifest is found
        before a run. Raises :class:`UnitDataError` for a state file that is not
        a counter's.
        """
        return self._next()

    def _next(self) -> int:
        candidates = [self.start]
        stored = self._read_state()
        if stored is not None:
            candidates.append(stored)
        last = self._last_journaled()
        if last is not None:
            candidates.append(last + self.step)
        return max(candidates)

    def allocate(self, *, device: str, run_id: str,
                 usable: Callable[[int], object] | None = None) -> Allocation:
        """Hand out the next value, journaled before it is returned.

        ``usable`` is called with the value before anything is written; when it
        raises (the value does not fit the field), nothing is consumed.
        """
        try:
            with self._locked():
                value = self._next()
                if self.limit is not None and value > self.limit:
                    raise UnitDataError(
                        f"counter {self.state} is exhausted: the next value {value} is past "
                        f"its limit {self.limit}", source=str(self.state),
                        hint="raise the limit, or start a new range with a new state file")
                if usable is not None:
                    usable(value)
                allocation = Allocation(value=value, device=device, run_id=run_id,
                                        time=dt.datetime.now(dt.timezone.utc).isoformat())
                self._append_journal(allocation)
                self._write_state(value + self.step)
                return allocation
        except OSError as error:
            # The journal is written first: a value journaled but not returned is never
            # handed out again, and the next allocation continues after it.
            raise StorageFailed(f"cannot write counter {self.state}: "
                                f"{error.strerror or error}; no value was handed out",
                                hint="check the folder is writable and the disk not full"
                                ) from error

    def journal(self) -> list[Allocation]:
        """Every complete journal line, oldest first."""
        allocations: list[Allocation] = []
        try:
            lines = self.journal_path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return allocations
        for line in lines:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                record = json.loads(line)
                allocations.append(Allocation(value=int(record["value"]),
                                              device=str(record["device"]),
                                              run_id=str(record["run_id"]),
                                              time=str(record["time"])))
        return allocations
