"""``audit verify`` on a real demo log: untouched, crash-truncated, and the tamper matrix."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from audit_runs import ROOT, cli, demo_copy, make_key

from runner.audit.attest import Signer, attestation_path, write_attestation
from runner.audit.chain import line_hash
from runner.audit.ledger import Ledger
from runner.audit.verify import LogVerdict, verify_ledger, verify_log
from runner.plan import RunResult


def check(log: Path, key: Path) -> LogVerdict:
    from runner.audit.attest import load_public_key

    return verify_log(log, key=load_public_key(Path(f"{key}.pub")))


def messages(verdict: LogVerdict) -> str:
    return "\n".join(f"{f.line}: {f.message}" for f in verdict.findings)


def lines_of(log: Path) -> list[bytes]:
    return log.read_bytes().split(b"\n")[:-1]


def rewrite(log: Path, lines: list[bytes]) -> None:
    log.write_bytes(b"".join(line + b"\n" for line in lines))


def index_of(lines: list[bytes], event: str, device: str = "sensor-2") -> int:
    return next(i for i, line in enumerate(lines)
                if json.loads(line)["event"] == event and json.loads(line).get("device") ==
                device)


def test_an_untouched_log_is_valid(demo_log: Path, signing_key: Path) -> None:
    verdict = check(demo_log, signing_key)
    assert (verdict.status, verdict.findings) == ("valid", [])
    assert "signature verified" in verdict.attestation


def test_a_crash_truncated_log_is_told_from_a_tampered_one(
        demo_log: Path, signing_key: Path) -> None:
    lines = lines_of(demo_log)
    rewrite(demo_log, lines[:120])
    attestation_path(demo_log).unlink()  # a killed run never wrote one
    verdict = check(demo_log, signing_key)
    assert verdict.status == "truncated", messages(verdict)
    assert "no run.finished" in messages(verdict)
    assert not [f for f in verdict.findings if f.severity == "tampered"]


def test_one_byte_changed_in_a_field_names_the_line_and_the_field(
        demo_log: Path, signing_key: Path) -> None:
    lines = lines_of(demo_log)
    at = index_of(lines, "device.identified")
    original = json.loads(lines[at])["uid"]
    changed = ("1" if original[0] != "1" else "2") + original[1:]
    lines[at] = lines[at].replace(original.encode(), changed.encode())
    rewrite(demo_log, lines)
    verdict = check(demo_log, signing_key)
    assert verdict.status == "tampered"
    text = messages(verdict)
    assert f"{at + 2}: prev does not match the line before: line {at + 1} " \
           f"(seq {at + 1}, device.identified, sensor-2) was altered" in text
    assert f"units[sensor-2].uid: attested '{original}', the log says '{changed}'" in text


def test_a_deleted_line_is_named(demo_log: Path, signing_key: Path) -> None:
    lines = lines_of(demo_log)
    del lines[40]
    rewrite(demo_log, lines)
    verdict = check(demo_log, signing_key)
    assert verdict.status == "tampered"
    assert "41: seq jumps from 40 to 42: 1 record(s) deleted before this line" in \
        messages(verdict)


def test_two_swapped_lines_are_named(demo_log: Path, signing_key: Path) -> None:
    lines = lines_of(demo_log)
    lines[50], lines[51] = lines[51], lines[50]
    rewrite(demo_log, lines)
    verdict = check(demo_log, signing_key)
    assert verdict.status == "tampered"
    assert "51: lines 51 and 52 are swapped (seq 52 before 51)" in messages(verdict)


def test_a_forged_line_appended_with_a_correct_chain_is_caught(
        demo_log: Path, signing_key: Path) -> None:
    lines = lines_of(demo_log)
    last = json.loads(lines[-1])
    forged = {"ts": last["ts"], "seq": last["seq"] + 1, "run_id": last["run_id"],
              "event": "plan.warning", "message": "all good", "prev": line_hash(lines[-1])}
    rewrite(demo_log, [*lines, json.dumps(forged).encode()])
    verdict = check(demo_log, signing_key)
    assert verdict.status == "tampered"
    text = messages(verdict)
    assert f"{len(lines) + 1}: follows run.finished (line {len(lines)})" in text
    assert "the file changed after it was attested" in text


def test_a_log_truncated_mid_line_is_named(demo_log: Path, signing_key: Path) -> None:
    data = demo_log.read_bytes()
    demo_log.write_bytes(data[:len(data) - 50])
    verdict = check(demo_log, signing_key)
    assert verdict.status == "tampered"  # its attestation shows the run had finished
    text = messages(verdict)
    assert re.search(rf"{len(lines_of(demo_log)) + 1}: is cut short: \d+ bytes and no newline",
                     text)
    assert "the log was cut after it was attested" in text


def test_a_replaced_attestation_is_caught_without_the_key(
        demo_log: Path, signing_key: Path) -> None:
    records = [json.loads(line) for line in lines_of(demo_log)]
    write_attestation(demo_log, head=line_hash(lines_of(demo_log)[-1]),
                      lines=len(records), signer=None)
    verdict = verify_log(demo_log)
    assert verdict.status == "tampered"
    assert "but the attestation is unsigned: it was replaced" in messages(verdict)


def test_an_attestation_signed_with_another_key_is_caught(
        demo_log: Path, signing_key: Path, tmp_path: Path) -> None:
    other = Signer.from_file(make_key(tmp_path / "other.pem"))
    write_attestation(demo_log, head=line_hash(lines_of(demo_log)[-1]),
                      lines=len(lines_of(demo_log)), signer=other)
    verdict = check(demo_log, signing_key)
    assert verdict.status == "tampered"
    text = messages(verdict)
    assert f"attestation is signed by {other.keyid[:12]}…: it was replaced" in text
    assert "not signed by the --key" in text


def test_the_ledger_vouches_for_the_log_and_notices_a_deleted_one(
        demo_run: RunResult, tmp_path: Path) -> None:
    assert demo_run.log_file is not None
    ledger = Ledger(demo_run.log_file.parent / "ledger")
    verdict = verify_log(demo_run.log_file, ledger=ledger)
    assert verdict.status == "valid" and "final hash matches" in verdict.ledger
    assert verify_ledger(ledger, [verdict]) == []
    # A ledger that knows a run whose log is gone.
    copy = Ledger(tmp_path)
    copy.path.write_text(ledger.path.read_text())
    entry = json.loads(copy.path.read_text().splitlines()[-1])
    copy.append("run.started", run_id="r-gone", log=str(tmp_path / "gone.jsonl"), host="h")
    copy.append("run.finished", run_id="r-gone", log=str(tmp_path / "gone.jsonl"),
                head=entry["head"], lines=1, exit_code=0)
    (finding,) = verify_ledger(copy, [verdict])
    assert finding.line == 4 and "log of run r-gone" in finding.message and "gone" in \
        finding.message
    # An edited ledger line breaks its chain.
    text = copy.path.read_text().replace('"exit_code": 0', '"exit_code": 1', 1)
    copy.path.write_text(text)
    assert any("ledger chain broken" in f.message for f in verify_ledger(copy, [verdict]))


def test_verify_exit_codes_and_json(demo_log: Path, signing_key: Path,
                                    tmp_path: Path) -> None:
    good = cli("verify", str(demo_log), "--key", f"{signing_key}.pub")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "VALID" in good.stdout
    lines = lines_of(demo_log)
    del lines[10]
    rewrite(demo_log, lines)
    bad = cli("verify", str(demo_log), "--json")
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert report["valid"] is False and report["logs"][0]["status"] == "tampered"
    assert cli("verify", str(tmp_path / "missing.jsonl")).returncode == 2
    (tmp_path / "not-a-key.pem").write_text("x")
    assert cli("verify", str(demo_log), "--key", str(tmp_path / "not-a-key.pem")).returncode \
        == 2


def test_a_run_killed_mid_way_leaves_a_log_verify_calls_truncated(tmp_path: Path) -> None:
    manifest = demo_copy(tmp_path / "m")
    log, ledger = tmp_path / "killed.jsonl", tmp_path / "ledger"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(manifest), "--quiet", "--time-scale", "1",
         "--log-file", str(log), "--ledger", str(ledger)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log.exists() and log.read_bytes().count(b"\n") >= 40:
                break
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not attestation_path(log).exists()
    done = cli("verify", str(log), "--ledger", str(ledger))
    assert done.returncode == 1
    assert "TRUNCATED" in done.stdout and "tampered" not in done.stdout, done.stdout
    assert "started (ledger line 1), never finished" in done.stdout


@pytest.mark.parametrize("args", [["verify"], ["report"]])
def test_audit_commands_need_logs(args: list[str]) -> None:
    assert cli(*args).returncode == 2
