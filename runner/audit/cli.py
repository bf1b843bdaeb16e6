"""``flashrunner audit …`` and the audit options of ``flashrunner run``.

Kept apart from :mod:`runner.cli`: :func:`register` adds the ``audit`` command
group, :func:`add_run_options` the audit options of ``run``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_run_options", "after_run", "register", "run_options"]


def add_run_options(run: argparse.ArgumentParser) -> None:
    """The audit options of ``flashrunner run``."""
    run.add_argument("--ledger", type=Path, metavar="DIR",
                     help="the host's ledger of runs (default: "
                          "$XDG_STATE_HOME/flashrunner, ~/.local/state/flashrunner)")
    run.add_argument("--sign-key", type=Path, metavar="KEY.pem",
                     help="sign the run's attestation with this Ed25519 key "
                          "(overrides log.sign-key)")
    run.add_argument("--junit", type=Path, metavar="FILE",
                     help="also write a JUnit XML report (one testcase per device)")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """``run_manifest`` keyword arguments from the audit options."""
    return {"ledger": args.ledger, "sign_key": args.sign_key}


def after_run(args: argparse.Namespace, log_file: Path | None) -> None:
    """What the audit options ask for once the run has ended (``--junit``)."""
    if args.junit is not None and log_file is not None:
        from runner.audit.junit import write_junit

        write_junit([log_file], args.junit)


def register(commands: Any) -> None:
    """Add ``flashrunner audit`` (``keygen``, …) to the CLI's sub-commands."""
    audit = commands.add_parser("audit", help="check and report audit logs; signing keys")
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION",
                                   parser_class=type(audit))
    actions.required = True

    keygen = actions.add_parser("keygen", help="create an Ed25519 key pair for attestations")
    keygen.add_argument("key", type=Path, metavar="KEY.pem",
                        help="the private key to create (mode 0600); KEY.pem.pub gets the "
                             "public key")
    keygen.set_defaults(handler=_cmd_keygen)

    verify = actions.add_parser(
        "verify", help="check logs: chain, sequence, time, attestation, ledger",
        description="Exit 0: every log is valid; 1: a log is truncated or tampered; "
                    "2: bad arguments.")
    verify.add_argument("logs", type=Path, nargs="+", metavar="LOG")
    verify.add_argument("--key", type=Path, metavar="PUB.pem",
                        help="the station's public key: the attestation must be signed by it")
    verify.add_argument("--ledger", type=Path, metavar="DIR",
                        help="check the logs against the host's ledger in DIR")
    verify.add_argument("--json", action="store_true", help="the verdicts as JSON on stdout")
    verify.set_defaults(handler=_cmd_verify)

    report = actions.add_parser(
        "report", help="one row per unit over many logs (which UID got which image)")
    report.add_argument("logs", type=Path, nargs="+", metavar="LOG|DIR",
                        help="log files, or folders searched for *.jsonl")
    report.add_argument("--by", choices=("unit", "device", "image"), default="unit",
                        help="unit: by UID; device: by device; image: a row per image written")
    report.add_argument("--image", metavar="SHA256|NAME",
                        help="only units that received this image")
    report.add_argument("--uid", help="only this chip")
    report.add_argument("--device", help="only this device (manifest name)")
    report.add_argument("--station", help="only this station")
    report.add_argument("--since", metavar="WHEN",
                        help="only units flashed at or after WHEN (2026-12-01 or "
                             "2026-12-01T08:00)")
    report.add_argument("--format", choices=("table", "csv", "json", "md", "html"),
                        default="table")
    report.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="write the report here instead of stdout")
    report.add_argument("--junit", type=Path, metavar="FILE",
                        help="also write the logs as JUnit XML (one testcase per device)")
    report.set_defaults(handler=_cmd_report)


def _cmd_keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    from runner.audit.attest import keyid_of
    from runner.errors import PlanError

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    pub_path = args.key.with_name(args.key.name + ".pub")
    try:
        descriptor = os.open(args.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise PlanError(f"{args.key} already exists; a key is never overwritten",
                        hint="choose another name") from None
    except OSError as error:
        raise PlanError(f"cannot create {args.key}: {error.strerror}") from error
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private)
    pub_path.write_bytes(public)
    print(f"{args.key}: Ed25519 private key (keep it on the station, mode 0600)")
    print(f"{pub_path}: public key for `flashrunner audit verify --key`")
    print(f"keyid {keyid_of(key.public_key())}", file=sys.stdout)
    return 0


def _existing(paths: list[Path], what: str) -> None:
    from runner.errors import PlanError

    for path in paths:
        if not path.exists():
            raise PlanError(f"{path}: no such {what}")


def _cmd_verify(args: argparse.Namespace) -> int:
    import json

    from runner.audit.attest import load_public_key
    from runner.audit.ledger import Ledger
    from runner.audit.verify import verify_ledger, verify_log
    from runner.errors import PlanError

    _existing(args.logs, "log")
    if any(path.is_dir() for path in args.logs):
        raise PlanError("audit verify takes log files, not folders",
                        hint="e.g. flashrunner audit verify logs/*.jsonl")
    key = load_public_key(args.key) if args.key is not None else None
    if args.ledger is not None and not args.ledger.is_dir():
        raise PlanError(f"{args.ledger}: no such ledger folder")
    ledger = Ledger(args.ledger) if args.ledger is not None else None
    verdicts = [verify_log(path, key=key, ledger=ledger) for path in args.logs]
    ledger_findings = verify_ledger(ledger, verdicts) if ledger is not None else []
    valid = all(v.status == "valid" for v in verdicts) and not ledger_findings
    if args.json:
        json.dump({"valid": valid, "logs": [v.as_json() for v in verdicts],
                   "ledger": None if ledger is None else {
                       "file": str(ledger.path),
                       "findings": [f.__dict__ if hasattr(f, "__dict__") else
                                    {"severity": f.severity, "message": f.message,
                                     "line": f.line} for f in ledger_findings]}},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0 if valid else 1
    for verdict in verdicts:
        print(f"{verdict.path}: {verdict.status.upper()} — {verdict.lines} records, "
              f"head {verdict.head[:12]}…, run {verdict.run_id}")
        for finding in verdict.findings:
            where = f"line {finding.line}: " if finding.line else ""
            print(f"  {finding.severity}: {where}{finding.message}")
        if verdict.attestation:
            print(f"  attestation: {verdict.attestation}")
        if verdict.ledger:
            print(f"  ledger: {verdict.ledger}")
    if ledger is not None:
        state = "continuous" if not ledger_findings else "BROKEN"
        print(f"ledger {ledger.path}: {state}")
        for finding in ledger_findings:
            where = f"line {finding.line}: " if finding.line else ""
            print(f"  {finding.severity}: {where}{finding.message}")
    return 0 if valid else 1


def _since(text: str | None) -> str | None:
    """``--since`` as the start of a log ``ts`` (UTC), checked."""
    import re

    from runner.errors import PlanError

    if text is None:
        return None
    if not re.fullmatch(r"\d{4}-\d\d-\d\d([T ]\d\d(:\d\d(:\d\d)?)?)?Z?", text):
        raise PlanError(f"--since {text!r} is not a date or time",
                        hint="use 2026-12-01 or 2026-12-01T08:00 (UTC)")
    return text.rstrip("Z").replace(" ", "T")


def _cmd_report(args: argparse.Namespace) -> int:
    from runner.audit.report import collect_logs, filter_rows, render, report_rows, sort_rows

    logs = collect_logs(args.logs)
    rows = filter_rows(report_rows(logs), image=args.image, uid=args.uid, device=args.device,
                       since=_since(args.since), station=args.station)
    rows = sort_rows(rows, args.by)
    if args.format == "html":
        from runner.audit.html import render_html

        text = render_html(logs, rows)
    else:
        text = render(rows, args.format)
    if args.junit is not None:
        from runner.audit.junit import write_junit

        write_junit(logs, args.junit)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
