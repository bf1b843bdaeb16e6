"""The signed in-toto attestation beside each log."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from audit_runs import ROOT, records, run_demo
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from runner.audit.attest import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    attestation_path,
    envelope_statement,
    file_sha256,
    keyid_of,
    pae,
)
from runner.audit.chain import line_hash
from runner.plan import RunResult


def test_the_attestation_is_a_signed_in_toto_statement_over_the_log_and_images(
        demo_run: RunResult, signing_key: Path) -> None:
    assert demo_run.log_file is not None
    envelope = json.loads(attestation_path(demo_run.log_file).read_text())
    statement = envelope_statement(envelope)
    assert statement["predicateType"] == PREDICATE_TYPE
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert subjects.pop(demo_run.log_file.name) == file_sha256(demo_run.log_file)
    assert subjects == dict(demo_run.plan.image_digests)
    public = load_pem_public_key(Path(f"{signing_key}.pub").read_bytes())
    (signature,) = envelope["signatures"]
    assert signature["keyid"] == keyid_of(public)
    body = base64.b64decode(envelope["payload"])
    public.verify(base64.b64decode(signature["sig"]), pae(PAYLOAD_TYPE, body))  # type: ignore[union-attr]


def test_the_predicate_lists_every_unit_as_the_log_tells_it(demo_run: RunResult) -> None:
    assert demo_run.log_file is not None
    statement = envelope_statement(json.loads(attestation_path(demo_run.log_file).read_text()))
    predicate = statement["predicate"]
    log = records(demo_run.log_file)
    assert (predicate["run_id"], predicate["manifest_sha256"], predicate["operator"]) == \
        (demo_run.run_id, demo_run.plan.manifest_sha256, log[0]["operator"])
    lines = demo_run.log_file.read_text().splitlines()
    assert predicate["log"]["head"] == line_hash(lines[-1])
    assert predicate["log"]["lines"] == len(lines)
    units = {u["device"]: u for u in predicate["units"]}
    assert set(units) == {d.device for d in demo_run.devices}
    identified = {r["device"]: r["uid"] for r in log if r["event"] == "device.identified"}
    assert {name: u["uid"] for name, u in units.items()} == identified
    gateway = units["gateway"]
    assert [i["name"] for i in gateway["images"]] == ["gw-boot", "gw-app"]
    assert gateway["verify"] == {"method": "readback", "result": "ok"}
    assert (gateway["chip"], gateway["outcome"], gateway["rdp_level"]) == \
        ("stm32f411re", "ok", 0)


def test_the_log_says_whether_its_run_is_signed(demo_run: RunResult, tmp_path: Path) -> None:
    assert demo_run.log_file is not None
    signed = records(demo_run.log_file)
    assert signed[0]["sign_key"] and signed[-1]["attestation"]["signed"] is True
    unsigned_run = run_demo(tmp_path)
    assert unsigned_run.log_file is not None
    unsigned = records(unsigned_run.log_file)
    assert unsigned[0]["sign_key"] is None
    assert unsigned[-1]["attestation"] == {
        "file": unsigned_run.log_file.name + ".intoto.json", "signed": False,
        "reason": "no signing key (log.sign-key or --sign-key)"}
    envelope = json.loads(attestation_path(unsigned_run.log_file).read_text())
    assert envelope["signatures"] == []


def test_the_manifest_names_the_key(tmp_path: Path, signing_key: Path) -> None:
    from audit_runs import demo_copy

    from runner.launch import run_manifest

    manifest = demo_copy(tmp_path / "m", log={"sign-key": str(signing_key)})
    run = run_manifest(manifest, log_file=tmp_path / "r.jsonl")
    assert run.log_file is not None
    assert records(run.log_file)[-1]["attestation"]["signed"] is True


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "runner", "audit", "keygen",
                           str(tmp_path / "k.pem")], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert "keyid" in done.stdout and (tmp_path / "k.pem.pub").exists()
    again = subprocess.run([sys.executable, "-m", "runner", "audit", "keygen",
                            str(tmp_path / "k.pem")], env=env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert again.returncode == 2 and "never overwritten" in again.stderr


def test_a_key_that_is_not_ed25519_is_refused_before_the_run(tmp_path: Path) -> None:
    import pytest

    from runner.errors import PlanError

    (tmp_path / "bad.pem").write_text("not a key\n")
    with pytest.raises(PlanError, match="not an unencrypted PEM private key"):
        run_demo(tmp_path, sign_key=tmp_path / "bad.pem")
    assert not (tmp_path / "run.jsonl").exists()
