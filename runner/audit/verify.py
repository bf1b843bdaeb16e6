"""``flashrunner audit verify``: is this log whole, unaltered, signed, and in the ledger?

Checks, per log: every line parses; ``seq`` goes 1, 2, 3, …; ``ts`` never goes
back; the hash chain holds (each ``prev`` is the SHA-256 of the line before,
the first derived from the run id); nothing follows ``run.finished``; the
attestation beside it (``<log>.intoto.json``) covers this very file and the
run's images, names the key the log names, and, with ``--key``, its Ed25519
signature verifies; what it attests per unit is what the log says. With
``--ledger DIR``: the ledger's own chain holds, the log's entries are there
with its final hash, and no run of the ledger has lost its log.

A log is *valid*, *truncated* (a crash: every line whole and chained, no
``run.finished``, no attestation; the run did not finish) or *tampered* (the
first problem is named: which line, and what does not match).
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runner.audit.attest import (
    PAYLOAD_TYPE,
    attestation_path,
    build_statement,
    envelope_statement,
    file_sha256,
    keyid_of,
    pae,
)
from runner.audit.chain import genesis, line_hash
from runner.audit.ledger import LEDGER_FORMAT, Ledger
from runner.audit.records import read_run

__all__ = ["Finding", "LogVerdict", "verify_ledger", "verify_log"]

VALID, TRUNCATED, TAMPERED = "valid", "truncated", "tampered"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or note): ``severity`` is tampered, truncated or note."""

    severity: str
    message: str
    line: int | None = None


@dataclass(slots=True, kw_only=True)
class LogVerdict:
    """What ``audit verify`` found about one log."""

    path: str
    status: str = VALID
    run_id: str = ""
    lines: int = 0
    head: str = ""
    complete: bool = False
    attestation: str = ""
    ledger: str = ""
    findings: list[Finding] = field(default_factory=list)

    def add(self, severity: str, message: str, line: int | None = None) -> None:
        self.findings.append(Finding(severity, message, line))

    def settle(self) -> None:
        severities = {f.severity for f in self.findings}
        self.status = TAMPERED if TAMPERED in severities else \
            TRUNCATED if TRUNCATED in severities or not self.complete else VALID

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _short(digest: str) -> str:
    return digest[:12] + "…" if len(digest) > 12 else digest


def _describe(record: dict[str, Any] | None) -> str:
    if record is None:
        return "an unparseable line"
    what = [f"seq {record.get('seq')}", str(record.get("event"))]
    if record.get("device"):
        what.append(str(record["device"]))
    return ", ".join(what)


class _Lines:
    """A log's lines: raw bytes and parsed records (None where a line does not parse)."""

    def __init__(self, data: bytes) -> None:
        pieces = data.split(b"\n")
        self.cut = pieces[-1] if pieces[-1] else b""
        self.raw = pieces[:-1]
        self.records: list[dict[str, Any] | None] = []
        for raw in self.raw:
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
            self.records.append(record if isinstance(record, dict) else None)


def _check_swap(lines: _Lines, index: int, expected_seq: int) -> bool:
    here, after = lines.records[index], lines.records[index + 1] \
        if index + 1 < len(lines.records) else None
    return bool(here and after and here.get("seq") == expected_seq + 1
                and after.get("seq") == expected_seq)


def _chain(verdict: LogVerdict, lines: _Lines) -> None:
    """seq, ts, run id, prev and the place of run.finished, line by line."""
    first = lines.records[0] if lines.records else None
    verdict.run_id = str(first.get("run_id", "")) if first else ""
    expected_prev = genesis(verdict.run_id)
    last_seq, last_ts, finished_at = 0, "", 0
    broken = False
    for index, (raw, record) in enumerate(zip(lines.raw, lines.records, strict=True)):
        number = index + 1
        if record is None:
            verdict.add(TAMPERED, "does not parse as a JSON object", number)
            expected_prev, broken = line_hash(raw), True
            continue
        seq = record.get("seq")
        if not broken and isinstance(seq, int) and seq != last_seq + 1:
            if _check_swap(lines, index, last_seq + 1):
                verdict.add(TAMPERED, f"lines {number} and {number + 1} are swapped "
                                      f"(seq {seq} before {last_seq + 1})", number)
            elif seq > last_seq + 1:
                missing = seq - last_seq - 1
                verdict.add(TAMPERED, f"seq jumps from {last_seq} to {seq}: {missing} "
                                      f"record(s) deleted before this line", number)
            else:
                verdict.add(TAMPERED, f"seq {seq} after {last_seq}: a line was moved or "
                                      f"inserted here", number)
            broken = True
        elif not isinstance(seq, int):
            verdict.add(TAMPERED, "has no seq", number)
        if record.get("prev") != expected_prev and not broken:
            before = lines.records[index - 1] if index else None
            if index == 0:
                verdict.add(TAMPERED, "prev is not the run id's genesis hash: the first "
                                      "line was altered or replaced", number)
            else:
                verdict.add(TAMPERED, f"prev does not match the line before: line {index} "
                                      f"({_describe(before)}) was altered", number)
            broken = True
        if str(record.get("run_id", "")) != verdict.run_id and not broken:
            verdict.add(TAMPERED, f"run_id {record.get('run_id')!r} differs from the "
                                  f"first line's", number)
            broken = True
        ts = str(record.get("ts", ""))
        if ts < last_ts:
            verdict.add(TAMPERED, f"ts {ts} is earlier than the line before ({last_ts})",
                        number)
        if finished_at:
            verdict.add(TAMPERED, f"follows run.finished (line {finished_at}): appended "
                                  f"after the run ended", number)
        if record.get("event") == "run.finished" and "origin" not in record:
            finished_at = finished_at or number   # (a station's own end is merged, not ours)
        last_seq = seq if isinstance(seq, int) else last_seq
        last_ts = max(last_ts, ts)
        expected_prev = line_hash(raw)
    verdict.lines = len(lines.raw)
    verdict.head = expected_prev if lines.raw else ""
    verdict.complete = bool(finished_at)
    if lines.cut:
        verdict.add(TRUNCATED, f"is cut short: {len(lines.cut)} bytes and no newline",
                    len(lines.raw) + 1)
    if not verdict.complete:
        verdict.add(TRUNCATED, "no run.finished: the run did not finish (a crash or a kill "
                               "leaves a valid prefix)")


def _differences(attested: Any, actual: Any, where: str = "") -> list[str]:
    """Where two predicates differ, as ``path: attested X, the log says Y``."""
    if isinstance(attested, dict) and isinstance(actual, dict):
        out: list[str] = []
        for key in sorted(set(attested) | set(actual)):
            out += _differences(attested.get(key), actual.get(key), f"{where}.{key}")
        return out
    if isinstance(attested, list) and isinstance(actual, list) \
            and len(attested) == len(actual):
        out = []
        for index, (a, b) in enumerate(zip(attested, actual, strict=True)):
            label = a.get("device") if isinstance(a, dict) and "device" in a else index
            out += _differences(a, b, f"{where}[{label}]")
        return out
    if attested != actual:
        return [f"{where.lstrip('.')}: attested {attested!r}, the log says {actual!r}"]
    return []


def _attestation(verdict: LogVerdict, log: Path, lines: _Lines, key: Any) -> None:
    path = attestation_path(log)
    first = lines.records[0] if lines.records else None
    last = lines.records[-1] if lines.records else None
    named_key = first.get("sign_key") if first else None
    if not path.exists():
        if verdict.complete:
            verdict.add(TAMPERED, f"the attestation {path.name} is missing (run.finished "
                                  f"names it)")
        verdict.attestation = "none"
        return
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
        statement = envelope_statement(envelope)
    except (OSError, ValueError) as error:
        verdict.add(TAMPERED, f"the attestation {path.name} is not a DSSE in-toto envelope "
                              f"({error})")
        verdict.attestation = "unreadable"
        return
    if not verdict.complete:
        verdict.add(TAMPERED, "an attestation exists, so the run finished: the log was cut "
                              "after it was attested")
    subjects = {str(s.get("name")): str(dict(s.get("digest") or {}).get("sha256", ""))
                for s in statement.get("subject", ()) if isinstance(s, dict)}
    digest = file_sha256(log)
    predicate = statement.get("predicate") or {}
    attested_name = str(dict(predicate.get("log") or {}).get("name", log.name))
    attested_log = subjects.pop(attested_name, None)
    if attested_name != log.name:
        verdict.add("note", f"the log was attested as {attested_name}")
    if attested_log is None:
        verdict.add(TAMPERED, f"the attestation does not name the log (it attests "
                              f"{', '.join(subjects) or 'nothing'})")
    elif attested_log != digest:
        verdict.add(TAMPERED, f"the log's sha256 is {_short(digest)}, the attestation's "
                              f"{_short(attested_log)}: the file changed after it was attested")
    images = dict(first.get("images") or {}) if first else {}
    for name in sorted(set(subjects) | set(images)):
        if subjects.get(name) != images.get(name):
            verdict.add(TAMPERED, f"image {name}: attested {subjects.get(name)}, the log says "
                                  f"{images.get(name)}")
    if predicate.get("run_id") != verdict.run_id:
        verdict.add(TAMPERED, f"the attestation is for run {predicate.get('run_id')}, the "
                              f"log for {verdict.run_id}")
    else:
        rebuilt = build_statement(read_run(log), log_sha256=str(attested_log or digest),
                                  head=verdict.head, lines=verdict.lines)["predicate"]
        rebuilt["log"]["name"] = attested_name  # name and digest: checked above
        for difference in _differences(predicate, rebuilt)[:10]:
            verdict.add(TAMPERED, f"what changed: {difference}")
    signatures = [s for s in envelope.get("signatures", ()) if isinstance(s, dict)]
    keyids = [str(s.get("keyid", "")) for s in signatures]
    if named_key and named_key not in keyids:
        verdict.add(TAMPERED, f"the run named signing key {_short(str(named_key))} but the "
                              f"attestation is " + (f"signed by {', '.join(map(_short, keyids))}"
                                                    if keyids else "unsigned")
                    + ": it was replaced")
    if not named_key and keyids and last and last.get("event") == "run.finished" \
            and last.get("attestation", {}).get("signed") is False:
        verdict.add(TAMPERED, "the run was not signed but the attestation is: it was replaced")
    if key is None:
        verdict.attestation = "signed, signature not checked (no --key)" if keyids \
            else "unsigned"
        return
    wanted = keyid_of(key)
    body = base64.b64decode(str(envelope.get("payload", "")))
    mine = [s for s in signatures if s.get("keyid") == wanted]
    if not mine:
        verdict.add(TAMPERED, f"not signed by the --key (keyid {_short(wanted)}); signed by "
                              f"{', '.join(map(_short, keyids)) or 'nobody'}")
        verdict.attestation = "not signed by --key"
        return
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(base64.b64decode(str(mine[0].get("sig", ""))), pae(PAYLOAD_TYPE, body))
    except (InvalidSignature, ValueError):
        verdict.add(TAMPERED, "the attestation's signature does not verify with --key")
        verdict.attestation = "bad signature"
        return
    verdict.attestation = f"signed by {_short(wanted)}, signature verified"


def _ledger_entries(verdict: LogVerdict, lines: _Lines, ledger: Ledger) -> None:
    first = lines.records[0] if lines.records else None
    entries = [line for line in ledger.lines()
               if line.entry and line.entry.get("run_id") == verdict.run_id]
    started = [line for line in entries if (line.entry or {}).get("event") == "run.started"]
    finished = [line for line in entries if (line.entry or {}).get("event") == "run.finished"]
    named = dict(first.get("ledger") or {}) if first else {}
    if not started:
        verdict.add(TAMPERED, f"run {verdict.run_id} is not in the ledger {ledger.path}")
        verdict.ledger = "absent"
        return
    if named.get("entry") and named["entry"] != started[0].sha256:
        verdict.add(TAMPERED, f"run.started names ledger entry {_short(named['entry'])}, the "
                              f"ledger's is {_short(started[0].sha256)}")
    if not finished:
        if verdict.complete:
            verdict.add(TAMPERED, "the ledger never saw this run finish, yet the log has "
                                  "run.finished")
        verdict.ledger = f"started (ledger line {started[0].number}), never finished"
        return
    entry = finished[0].entry or {}
    where = f"ledger lines {started[0].number} and {finished[0].number}"
    if entry.get("head") != verdict.head or entry.get("lines") != verdict.lines:
        verdict.add(TAMPERED, f"the ledger recorded {entry.get('lines')} lines ending in "
                              f"{_short(str(entry.get('head')))}; the log has {verdict.lines} "
                              f"ending in {_short(verdict.head)}")
        verdict.ledger = f"{where}: the final hash differs"
        return
    verdict.ledger = f"{where}: the final hash matches"


def verify_log(path: Path, *, key: Any = None, ledger: Ledger | None = None) -> LogVerdict:
    """Verify one log (and its attestation, and its place in ``ledger``)."""
    verdict = LogVerdict(path=str(path))
    lines = _Lines(path.read_bytes())
    if not lines.raw and not lines.cut:
        verdict.add(TRUNCATED, "the log is empty")
        verdict.settle()
        return verdict
    _chain(verdict, lines)
    _attestation(verdict, path, lines, key)
    if ledger is not None:
        _ledger_entries(verdict, lines, ledger)
    verdict.settle()
    return verdict


def verify_ledger(ledger: Ledger, verdicts: list[LogVerdict]) -> list[Finding]:
    """The ledger's own chain, and runs whose logs are gone."""
    findings: list[Finding] = []
    lines = ledger.lines()
    if not lines:
        return [Finding(TAMPERED, f"the ledger {ledger.path} is empty or missing")]
    expected = line_hash(LEDGER_FORMAT)
    for line in lines:
        entry = line.entry
        if entry is None:
            findings.append(Finding(TAMPERED, "ledger line does not parse", line.number))
        elif entry.get("prev") != expected:
            findings.append(Finding(TAMPERED, "ledger chain broken: prev does not match the "
                                              "line before (a line was altered, removed or "
                                              "inserted)", line.number))
        elif entry.get("seq") != line.number:
            findings.append(Finding(TAMPERED, f"ledger seq {entry.get('seq')} on line "
                                              f"{line.number}", line.number))
        expected = line.sha256
    given = {v.run_id for v in verdicts}
    for line in lines:
        entry = line.entry or {}
        if entry.get("event") != "run.finished" or entry.get("run_id") in given:
            continue
        log = Path(str(entry.get("log", "")))
        if not log.exists():
            findings.append(Finding(TAMPERED, f"the log of run {entry.get('run_id')} ({log}) "
                                              f"is gone: deleted or moved", line.number))
    return findings
