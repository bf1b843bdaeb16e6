"""Signals at the edges of a run: exit 130 from the first instant, a finished run keeps its code.

Rather than guessing delays, the tests wait for the observable moment: the
child's SIGTERM disposition turning to "caught" (Linux ``/proc/PID/status``),
the first line of its log, or the ``run.finished`` record on its ``--json``
stream.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LINE = HERE / "line.yaml"

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="reads signal dispositions from /proc")


def _start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _catches_sigterm(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def _wait_for(condition: object, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if callable(condition) and condition():
            return
        time.sleep(0.001)


def _finish(process: subprocess.Popen[str]) -> str:
    try:
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return err


def test_sigterm_during_start_up_exits_130(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    process = _start("run", str(LINE), "--log-file", str(log), "--quiet")
    _wait_for(lambda: _catches_sigterm(process.pid), process)
    assert not log.exists()                 # still importing: nothing written yet
    process.send_signal(signal.SIGTERM)
    err = _finish(process)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    if log.exists():     # a log, if the run got that far, is complete
        events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
        assert events and events[-1] == "run.finished"


def test_sigterm_as_the_log_opens_leaves_a_complete_log_and_exits_130(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    process = _start("run", str(LINE), "--log-file", str(log), "--quiet")
    _wait_for(log.exists, process)
    process.send_signal(signal.SIGTERM)
    err = _finish(process)
    assert process.returncode == 130, err
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events[0] == "run.started" and events[-1] == "run.finished"
    assert "run.interrupted" in events


def test_sigterm_after_run_finished_keeps_the_runs_exit_code(tmp_path: Path) -> None:
    process = _start("run", str(LINE), "--log-file", str(tmp_path / "run.jsonl"), "--json",
                     "--quiet")
    assert process.stdout is not None
    for line in process.stdout:
        if json.loads(line)["event"] == "run.finished":
            process.send_signal(signal.SIGTERM)
            break
    err = _finish(process)
    assert process.returncode == 0, err


def test_sigterm_during_validate_exits_130() -> None:
    process = _start("validate", str(LINE))
    _wait_for(lambda: _catches_sigterm(process.pid), process)
    process.send_signal(signal.SIGTERM)
    err = _finish(process)
    assert process.returncode in (0, 130), err   # 0: validation had already finished
    assert process.returncode != -signal.SIGTERM
