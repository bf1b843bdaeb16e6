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

__all__ = ["add_run_options", "register", "run_options"]


def add_run_options(run: argparse.ArgumentParser) -> None:
    """The audit options of ``flashrunner run``."""
    run.add_argument("--ledger", type=Path, metavar="DIR",
                     help="the host's ledger of runs (default: "
                          "$XDG_STATE_HOME/flashrunner, ~/.local/state/flashrunner)")
    run.add_argument("--sign-key", type=Path, metavar="KEY.pem",
                     help="sign the run's attestation with this Ed25519 key "
                          "(overrides log.sign-key)")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """``run_manifest`` keyword arguments from the audit options."""
    return {"ledger": args.ledger, "sign_key": args.sign_key}


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
