"""What a run leaves beside its log so the log can be trusted later.

:class:`RunSeal` is called by the executor at three points of a run that
writes a log file: before the first record (the ledger's ``run.started``
entry, whose hash the log's ``run.started`` names), for ``run.finished``'s
fields (where the attestation goes, and whether it is signed), and after the
log is closed (the attestation, then the ledger's ``run.finished`` entry with
the log's final hash). A run killed midway leaves a log with a valid prefix
and a ledger with a start but no finish: ``audit verify`` calls that truncated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.audit.ledger import Ledger

__all__ = ["RunSeal", "Sealing"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sealing:
    """How runs are sealed: the host's ledger (None: no ledger)."""

    ledger: Ledger | None = None


class RunSeal:
    """The seal of one run's log."""

    def __init__(self, sealing: Sealing, *, run_id: str, log_file: Path) -> None:
        self.sealing = sealing
        self.run_id = run_id
        self.log_file = log_file.absolute()

    def started_fields(self, *, host: str) -> dict[str, Any]:
        """Enter the run in the ledger; the fields ``run.started`` carries about it."""
        ledger = self.sealing.ledger
        if ledger is None:
            return {}
        line = ledger.append("run.started", run_id=self.run_id, log=str(self.log_file),
                             host=host)
        return {"ledger": {"file": str(ledger.path.absolute()), "seq": line.number,
                           "entry": line.sha256}}

    def seal(self, *, head: str, lines: int, exit_code: int) -> None:
        """After the log is closed: its final hash goes into the ledger."""
        ledger = self.sealing.ledger
        if ledger is not None:
            ledger.append("run.finished", run_id=self.run_id, log=str(self.log_file),
                          head=head, lines=lines, exit_code=exit_code)
