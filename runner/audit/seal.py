"""What a run leaves beside its log so the log can be trusted later.

:class:`RunSeal` is called by the executor at four points of a run that writes
a log file: before the first record (the ledger's ``run.started`` entry, whose
hash the log's ``run.started`` names, and the signing keyid), for
``run.finished`` (where the attestation goes and whether it is signed), and
after the log is closed (the attestation, :mod:`runner.audit.attest`, then the
ledger's ``run.finished`` entry with the log's final hash). A run killed
midway leaves a log with a valid prefix, no attestation, and a ledger entry
that started but never finished: ``audit verify`` calls that truncated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.audit.attest import Signer, attestation_path, file_sha256, write_attestation
from runner.audit.ledger import Ledger
from runner.errors import EnvironmentProblem

__all__ = ["RunSeal", "Sealing"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sealing:
    """How runs are sealed: the host's ledger and the signing key (None: none)."""

    ledger: Ledger | None = None
    signer: Signer | None = None


class RunSeal:
    """The seal of one run's log."""

    def __init__(self, sealing: Sealing, *, run_id: str, log_file: Path) -> None:
        self.sealing = sealing
        self.run_id = run_id
        self.log_file = log_file.absolute()

    def started_fields(self, *, host: str) -> dict[str, Any]:
        """Enter the run in the ledger; the fields ``run.started`` carries about its seal."""
        signer = self.sealing.signer
        fields: dict[str, Any] = {"sign_key": signer.keyid if signer is not None else None}
        ledger = self.sealing.ledger
        if ledger is not None:
            line = ledger.append("run.started", run_id=self.run_id, log=str(self.log_file),
                                 host=host)
            fields["ledger"] = {"file": str(ledger.path.absolute()), "seq": line.number,
                                "entry": line.sha256}
        return fields

    def finished_fields(self) -> dict[str, Any]:
        """``run.finished``'s ``attestation``: where it goes, whether it is signed."""
        signer = self.sealing.signer
        attestation: dict[str, Any] = {"file": attestation_path(self.log_file).name,
                                       "signed": signer is not None}
        if signer is not None:
            attestation["keyid"] = signer.keyid
        else:
            attestation["reason"] = "no signing key (log.sign-key or --sign-key)"
        return {"attestation": attestation}

    def seal(self, *, head: str, lines: int, exit_code: int) -> None:
        """After the log is closed: the attestation, then the final hash in the ledger.

        Raises:
            EnvironmentProblem: the attestation cannot be written (the devices'
                outcomes stand in the log; ``audit verify`` will call it incomplete).
        """
        try:
            attestation = write_attestation(self.log_file, head=head, lines=lines,
                                            signer=self.sealing.signer)
        except OSError as error:
            raise EnvironmentProblem(
                f"the run ended (exit code {exit_code}, log {self.log_file}) but its "
                f"attestation could not be written: {error.strerror or error}",
                hint="free space or fix permissions beside the log; the log itself is "
                     "complete") from error
        ledger = self.sealing.ledger
        if ledger is not None:
            ledger.append("run.finished", run_id=self.run_id, log=str(self.log_file),
                          head=head, lines=lines, exit_code=exit_code,
                          attestation_sha256=file_sha256(attestation))
