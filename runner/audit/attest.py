"""The run attestation: an in-toto Statement (v1) in a DSSE envelope, beside the log.

``<log>.intoto.json`` holds one DSSE envelope (``payloadType``
``application/vnd.in-toto+json``, the Statement base64-encoded in ``payload``,
and ``signatures``). The Statement's subjects are the log file and every image
of the run, by SHA-256; its predicate (type :data:`PREDICATE_TYPE`) lists the
run (id, station, operator, tool version, manifest and its SHA-256, the log's
head) and per unit the device, chip, UID, images, verify method and result,
option bytes, unit-data values and outcome, all read back from the log.

The signature is Ed25519 (the ``cryptography`` package) over DSSE's
pre-authentication encoding, ``PAE = "DSSEv1" SP len(type) SP type SP len(body)
SP body``, so no JSON canonicalisation is involved; ``keyid`` is the SHA-256 of
the raw 32-byte public key. Without a key the envelope has no signature, and the
log's ``run.started`` (``sign_key: null``) and ``run.finished``
(``attestation.signed: false``) say so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.audit.records import RunRecord, read_run
from runner.errors import PlanError
from runner.images import file_sha256

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "Signer",
    "attestation_path",
    "build_statement",
    "envelope_statement",
    "file_sha256",
    "keyid_of",
    "load_public_key",
    "pae",
    "write_attestation",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://flashrunner.dev/attestation/flash-run/v1"


def attestation_path(log: Path) -> Path:
    """``<log>.intoto.json``."""
    return log.with_name(log.name + ".intoto.json")


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE's pre-authentication encoding of ``body``: what is signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def keyid_of(public_key: Any) -> str:
    """SHA-256 (hex) of an Ed25519 public key's raw 32 bytes."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return path.expanduser().read_bytes()
    except OSError as error:
        raise PlanError(f"cannot read the {what} {path}: {error.strerror}",
                        hint="give the path of a PEM file") from error


def load_public_key(path: Path) -> Any:
    """An Ed25519 public key from a PEM file (a private key's PEM gives its public half)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.serialization import (
        load_pem_private_key,
        load_pem_public_key,
    )

    data = _read_key_file(path, "public key")
    try:
        key: Any = load_pem_public_key(data)
    except ValueError:
        try:
            key = load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as error:
            raise PlanError(f"{path} is not a PEM Ed25519 key",
                            hint="export it with `openssl pkey -pubout`") from error
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise PlanError(f"{path} is not an Ed25519 key ({type(key).__name__})",
                        hint="attestations are signed with Ed25519 keys")
    return key


@dataclass(frozen=True, slots=True)
class Signer:
    """An Ed25519 private key and its keyid."""

    key: Any
    keyid: str

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        """Load an unencrypted PEM (PKCS#8) Ed25519 private key."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        data = _read_key_file(path, "signing key")
        try:
            key = load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as error:
            raise PlanError(f"{path} is not an unencrypted PEM private key ({error})",
                            hint="create one with `flashrunner audit keygen KEY.pem`") \
                from error
        if not isinstance(key, Ed25519PrivateKey):
            raise PlanError(f"{path} is not an Ed25519 key ({type(key).__name__})",
                            hint="create one with `flashrunner audit keygen KEY.pem`")
        return cls(key=key, keyid=keyid_of(key.public_key()))

    def sign(self, message: bytes) -> bytes:
        signature: bytes = self.key.sign(message)
        return signature


def _unit_predicate(unit: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "device": unit.device, "chip": unit.chip, "uid": unit.uid, "dev_id": unit.dev_id,
        "station": unit.station, "images": unit.images,
        "verify": {"method": unit.verify_method, "result": unit.verify_result},
        "option_bytes": unit.option_bytes, "rdp_level": unit.rdp_level,
        "unit_data": unit.unit_data, "outcome": unit.outcome,
    }
    if unit.error_category:
        entry["error_category"] = unit.error_category
    return entry


def build_statement(run: RunRecord, *, log_sha256: str, head: str, lines: int) -> dict[str, Any]:
    """The in-toto Statement of ``run`` (read from its log)."""
    subjects = [{"name": run.path.name, "digest": {"sha256": log_sha256}}]
    subjects += [{"name": name, "digest": {"sha256": digest}}
                 for name, digest in sorted(run.images.items())]
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "run_id": run.run_id, "station": run.station, "host": run.host,
            "operator": run.operator, "tool_version": run.tool_version,
            "manifest": run.manifest, "manifest_sha256": run.manifest_sha256,
            "simulate": run.simulate, "started": run.started, "finished": run.finished,
            "exit_code": run.exit_code,
            "log": {"name": run.path.name, "sha256": log_sha256, "head": head,
                    "lines": lines},
            "units": [_unit_predicate(unit) for unit in run.units],
        },
    }


def envelope_statement(envelope: dict[str, Any]) -> dict[str, Any]:
    """The Statement inside a DSSE envelope (raises ValueError when it is not one)."""
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise ValueError(f"payloadType is {envelope.get('payloadType')!r}, "
                         f"not {PAYLOAD_TYPE!r}")
    statement = json.loads(base64.b64decode(str(envelope.get("payload", "")), validate=True))
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise ValueError("the payload is not an in-toto Statement v1")
    return statement


def write_attestation(log: Path, *, head: str, lines: int, signer: Signer | None) -> Path:
    """Write ``<log>.intoto.json`` for the closed log ``log`` (atomically, synced)."""
    run = read_run(log)
    statement = build_statement(run, log_sha256=file_sha256(log), head=head, lines=lines)
    body = json.dumps(statement, ensure_ascii=False, separators=(",", ":")).encode()
    signatures = []
    if signer is not None:
        signature = signer.sign(pae(PAYLOAD_TYPE, body))
        signatures.append({"keyid": signer.keyid,
                           "sig": base64.b64encode(signature).decode()})
    envelope = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(body).decode(),
                "signatures": signatures}
    path = attestation_path(log)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        json.dump(envelope, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return path
