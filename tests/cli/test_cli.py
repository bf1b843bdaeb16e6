"""The command line, end to end: exit codes, messages, the audit log."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.cli import main

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LINE = HERE / "line.yaml"


def read_log(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_version_names_the_tool(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("flashrunner 0.")


def test_the_process_leaves_with_all_its_output_and_its_exit_code(
        capsys: pytest.CaptureFixture[str]) -> None:
    # The process skips the interpreter's teardown (runner.cli.entry): nothing may be lost.
    assert main(["chips"]) == 0
    listed = capsys.readouterr().out
    result = run_cli("chips")
    assert result.returncode == 0 and result.stdout == listed and len(listed) > 8000
    invalid = run_cli("validate", "tests/cli/three-mistakes.yaml")
    assert invalid.returncode == 2 and invalid.stderr.rstrip().endswith("fix them")


def test_bad_command_line_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run"])
    assert exit_info.value.code == 2
    assert "manifest" in capsys.readouterr().err


def test_validate_reports_all_three_mistakes_with_locations() -> None:
    result = run_cli("validate", "tests/cli/three-mistakes.yaml")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("tests/cli/")]
    assert len(lines) == 3
    assert lines[0].startswith("tests/cli/three-mistakes.yaml:15:52: ")
    assert "did you mean 'recipe'" in lines[0]
    assert any(":16:44: " in line and "'link-9'" in line for line in lines)
    assert any(":16:20: " in line and "does not fit the flash" in line for line in lines)


def test_validate_json_lists_issues(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", "--json", str(HERE / "three-mistakes.yaml"), str(LINE)])
    report = json.loads(capsys.readouterr().out)
    assert code == 2
    assert [entry["valid"] for entry in report] == [False, True]
    assert len(report[0]["issues"]) == 3


def test_missing_manifest_is_a_clear_error_exit_2(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(tmp_path / "nope.yaml")])
    assert code == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_plan_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(LINE), "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["plan"] == 1
    assert [d["name"] for d in plan["devices"]] == ["sensor-1", "sensor-2", "gateway"]
    assert plan["stages"] == [["sensor-1", "sensor-2"], ["gateway"]]


def test_plan_table_shows_parallel_stages(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(LINE)]) == 0
    out = capsys.readouterr().out
    assert "stage 1" in out and "stage 2" in out
    assert out.index("sensor-2") < out.index("stage 2") < out.index("gateway")


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz `dot` is not installed")
def test_plan_dot_renders_with_graphviz(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(LINE), "--format", "dot"]) == 0
    dot = subprocess.run(["dot", "-Tsvg"], input=capsys.readouterr().out, text=True,
                         capture_output=True, check=False)
    assert dot.returncode == 0, dot.stderr
    assert "<svg" in dot.stdout


def test_run_flashes_every_device_and_logs_the_proof(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    result = run_cli("run", str(LINE), "--log-file", str(log))
    assert result.returncode == 0, result.stderr
    assert "gateway" in result.stderr and "ok" in result.stderr
    records = read_log(log)
    assert records[0]["event"] == "run.started"
    assert records[-1]["event"] == "run.finished"
    assert [r["seq"] for r in records] == sorted(r["seq"] for r in records)
    for device in ("sensor-1", "sensor-2", "gateway"):
        identified = [r for r in records if r["event"] == "device.identified"
                      and r["device"] == device]
        assert len(identified) == 1 and identified[0]["uid"]
        finished = [r for r in records if r["event"] == "step.finished"
                    and r["device"] == device]
        assert finished and all(r["outcome"] == "ok" for r in finished)
    summary = records[-1]
    assert summary["counts"] == {"ok": 3}
    assert summary["exit_code"] == 0


def test_run_json_streams_events_on_stdout(tmp_path: Path) -> None:
    result = run_cli("run", str(LINE), "--json", "--quiet", "--log-file",
                     str(tmp_path / "a.jsonl"))
    assert result.returncode == 0, result.stderr
    events = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    assert events[0] == "run.started" and events[-1] == "run.finished"
    # --quiet keeps the final line and the log path, nothing else.
    final, log = result.stderr.splitlines()
    assert final.startswith("3 ok in ") and final.endswith("; exit code 0")
    assert log == f"audit log: {tmp_path / 'a.jsonl'}"


def test_run_with_a_failing_device_exits_1_and_skips_its_dependents(tmp_path: Path) -> None:
    manifest = tmp_path / "line.yaml"
    text = LINE.read_text().replace("../../manifests", str(ROOT / "manifests"))
    text = text.replace("  time-scale: 0\n", "  time-scale: 0\n  devices:\n"
                        "    sensor-2: {faults: [{kind: link-lost, op: write, at-byte: 2048,"
                        " permanent: true}]}\n")
    manifest.write_text(text)
    result = run_cli("run", str(manifest), "--log-file", str(tmp_path / "run.jsonl"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    outcomes = {r["device"]: r["outcome"] for r in read_log(tmp_path / "run.jsonl")[-1]["devices"]}
    assert outcomes == {"sensor-1": "ok", "sensor-2": "failed", "gateway": "upstream-failed"}


def test_only_runs_just_the_named_devices(tmp_path: Path) -> None:
    log = tmp_path / "only.jsonl"
    assert main(["run", str(LINE), "--only", "sensor-2", "--quiet", "--log-file", str(log)]) == 0
    started = [r["device"] for r in read_log(log) if r["event"] == "device.started"]
    assert started == ["sensor-2"]


def test_existing_log_file_is_never_overwritten_exit_3(tmp_path: Path) -> None:
    log = tmp_path / "kept.jsonl"
    log.write_text("precious\n")
    assert main(["run", str(LINE), "--quiet", "--log-file", str(log)]) == 3
    assert log.read_text() == "precious\n"


def test_ctrl_c_closes_cleanly_and_exits_130(tmp_path: Path) -> None:
    log = tmp_path / "interrupted.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(LINE), "--time-scale", "1",
         "--log-file", str(log)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if log.exists() and "step.started" in log.read_text():
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    events = [r["event"] for r in read_log(log)]
    assert "run.interrupted" in events
    assert events[-1] == "run.finished"


def test_chips_lists_the_database(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chips", "--family", "f1"]) == 0
    out = capsys.readouterr().out
    assert "stm32f103c8" in out and "0x410" in out


def test_chips_detail_and_unknown_part(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chips", "stm32f411re"]) == 0
    assert "0x08000000..0x08080000" in capsys.readouterr().out
    assert main(["chips", "stm32f411zz"]) == 2
    assert "unknown chip" in capsys.readouterr().err


def test_transports_lists_kinds_and_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transports"]) == 0
    kinds = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert {"stlink", "uart", "i2c", "can", "dfu", "sim"} <= kinds
    assert main(["transports", "uart"]) == 0
    out = capsys.readouterr().out
    assert "port: string (required)" in out and "parity: even | none | odd" in out
    assert main(["transports", "usb3"]) == 2
