"""The host's ledger: one small append-only file recording every run's start and final hash.

A hash-chained log proves that what it holds was not altered, but a log that
was deleted (or replaced by a whole forged one) leaves nothing behind. The
ledger does: each run appends a ``run.started`` entry before its first record
and a ``run.finished`` entry with the log's final hash (its ``head``: the
SHA-256 of its last line) and number of lines after its last. The ledger is
itself a chain (each entry's ``prev`` is the SHA-256 of the entry line
before it; the first entry's is ``SHA-256("flashrunner-ledger/1")``), and each
log's ``run.started`` names the ledger entry before it (``prev_run``), so
logs and ledger vouch for each other.

Default location: ``$XDG_STATE_HOME/flashrunner/ledger.jsonl``
(``~/.local/state/flashrunner/ledger.jsonl``); ``--ledger DIR`` puts it in DIR.
Appends take an exclusive lock (runs on one host may overlap) and are synced.
An append reads only the ledger's tail: the last entry's ``seq`` numbers the
next (a host's ledger grows by two lines a run, and every run appends twice).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runner.audit.chain import line_hash
from runner.errors import EnvironmentProblem

__all__ = ["LEDGER_FORMAT", "Ledger", "LedgerLine", "default_ledger_dir"]

LEDGER_FORMAT = "flashrunner-ledger/1"
_NAME = "ledger.jsonl"
#: How much of the ledger's end an append reads to find the last entry (entries are
#: a few hundred bytes; a longer last line sends the append to a whole read).
_TAIL = 16 * 1024


def default_ledger_dir() -> Path:
    """``$XDG_STATE_HOME/flashrunner``, else ``~/.local/state/flashrunner``."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")
    return Path(state) / "flashrunner"


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerLine:
    """One line of the ledger: its number (1-based), its text and its parsed entry."""

    number: int
    text: str
    entry: dict[str, Any] | None

    @property
    def sha256(self) -> str:
        return line_hash(self.text)


class Ledger:
    """The ledger in ``directory`` (created on first append)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / _NAME

    def lines(self) -> list[LedgerLine]:
        """Every line, parsed where it parses (an unreadable ledger has none)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as error:
            raise EnvironmentProblem(f"cannot read the ledger {self.path}: {error.strerror}",
                                     hint="check the file's permissions") from error
        out = []
        for number, line in enumerate(text.splitlines(), 1):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            out.append(LedgerLine(number=number, text=line,
                                  entry=entry if isinstance(entry, dict) else None))
        return out

    def last(self) -> LedgerLine | None:
        lines = self.lines()
        return lines[-1] if lines else None

    @contextmanager
    def _locked(self) -> Iterator[IO[bytes]]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+b")  # noqa: SIM115
        except OSError as error:
            raise EnvironmentProblem(
                f"cannot write the ledger {self.path}: {error.strerror}",
                hint="pass --ledger DIR with a writable directory") from error
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _last(handle: IO[bytes]) -> tuple[bytes | None, int]:
        """The last entry's line and how many entries there are (the lock held).

        From the tail alone where the last entry numbers itself (``seq``), as every
        entry an append wrote does; otherwise every line is read and counted.
        """
        size = handle.seek(0, os.SEEK_END)
        start = max(0, size - _TAIL)
        handle.seek(start)
        tail = handle.read().rstrip(b"\n")
        cut = tail.rfind(b"\n")
        if tail and (cut >= 0 or start == 0):
            last = tail[cut + 1:]
            try:
                entry = json.loads(last)
            except ValueError:
                entry = None
            seq = entry.get("seq") if isinstance(entry, dict) else None
            if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0:
                return last, seq
        handle.seek(0)
        previous = [line for line in handle.read().split(b"\n") if line]
        return (previous[-1] if previous else None), len(previous)

    def append(self, event: str, **fields: Any) -> LedgerLine:
        """Append an entry (``run.started`` / ``run.finished``) chained to the last one."""
        with self._locked() as handle:
            last, count = self._last(handle)
            prev = line_hash(last) if last is not None else line_hash(LEDGER_FORMAT)
            entry = {"seq": count + 1, "event": event, **fields, "prev": prev}
            text = json.dumps(entry, ensure_ascii=False)
            handle.seek(0, os.SEEK_END)
            handle.write(text.encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        return LedgerLine(number=count + 1, text=text, entry=entry)
