"""The README's exit-code table, row by row, against what the command line does."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import serial
import usb.core

from runner.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent
LINE = ROOT / "tests" / "cli" / "line.yaml"
APP = f"{ROOT / 'manifests' / 'images' / 'uart-f103-app.bin'}@0x08000000"


def readme_exit_codes() -> dict[int, str]:
    """``code → meaning`` from the README's "Exit codes" table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    return {int(code): meaning.strip()
            for code, meaning in re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.M)}


def _records(folder: Path) -> list[dict[str, object]]:
    (log,) = folder.glob("*.jsonl")
    return [json.loads(line) for line in log.read_text().splitlines()]


def _no_libusb(*args: object, **kwargs: object) -> object:
    raise usb.core.NoBackendError("No backend available")


def _port_denied(url: str, *args: object, **kwargs: object) -> object:
    raise serial.SerialException(errno.EACCES, f"could not open port {url}: Permission denied")


def succeeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    return main(["flash", APP, "--chip", "stm32f103c8", "--link", "stlink", "--simulate",
                 "--time-scale", "0", "-q", "--log-file", str(tmp_path / "{run_id}.jsonl")])


def a_device_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    # A fresh simulated chip is erased: comparing it with an image fails.
    return main(["verify", APP, "--chip", "stm32f103c8", "--link", "stlink", "--simulate",
                 "--time-scale", "0", "-q", "--log-file", str(tmp_path / "{run_id}.jsonl")])


def invalid_manifest_with_debug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    return main(["validate", str(ROOT / "tests" / "cli" / "three-mistakes.yaml"), "--debug"])


def no_libusb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(usb.core, "find", _no_libusb)
    return main(["flash", APP, "--chip", "stm32f103c8", "--link", "stlink", "-q",
                 "--log-file", str(tmp_path / "{run_id}.jsonl")])


def interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    log = tmp_path / "interrupted.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(LINE), "--time-scale", "1", "--debug",
         "--log-file", str(log)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (log.exists()
                                                   and "step.started" in log.read_text()):
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode


SCENARIOS: dict[int, Callable[[Path, pytest.MonkeyPatch], int]] = {
    0: succeeded, 1: a_device_failed, 2: invalid_manifest_with_debug, 3: no_libusb,
    130: interrupted,
}


def test_every_documented_code_has_a_scenario() -> None:
    assert set(readme_exit_codes()) == set(SCENARIOS)


@pytest.mark.parametrize("code", sorted(readme_exit_codes()))
def test_exit_code_is_what_the_readme_says(code: int, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert SCENARIOS[code](tmp_path, monkeypatch) == code


def test_no_permission_on_the_port_exits_3_and_says_what_to_do(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(serial, "serial_for_url", _port_denied)
    code = main(["erase", "--chip", "stm32f103cb", "--link", "uart,/dev/ttyUSB7",
                 "--log-file", str(tmp_path / "{run_id}.jsonl")])
    err = capsys.readouterr().err
    assert code == 3
    assert "no permission to open /dev/ttyUSB7" in err and "dialout" in err
    assert "could not start (this machine lacks something" in err
    finished = _records(tmp_path)[-1]
    assert finished["event"] == "run.finished" and finished["exit_code"] == 3
    assert finished["devices"][0]["error_category"] == "environment"


def test_environment_and_flash_failures_together_exit_1_naming_each(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(usb.core, "find", _no_libusb)
    manifest = tmp_path / "mixed.yaml"
    manifest.write_text(
        "manifest: 1\nname: mixed\n"
        "transports:\n  probe: {kind: stlink}\n  port: {kind: uart, port: /dev/nonexistent-9}\n"
        "recipes:\n  wipe: [{erase: {scope: mass}}]\n"
        "devices:\n  left: {chip: stm32f103c8, transport: probe, recipe: wipe}\n"
        "  right: {chip: stm32f103cb, transport: port, recipe: wipe}\n")
    code = main(["run", str(manifest), "--log-file", str(tmp_path / "run.jsonl")])
    err = capsys.readouterr().err
    assert code == 1
    assert "could not start (this machine lacks something: a library, a permission, a " \
           "package): left" in err
    assert "failed while flashing: right" in err


def test_debug_after_the_command_shows_the_traceback_and_keeps_the_code(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chips", "stm32f999zz", "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err
    assert main(["chips", "stm32f999zz"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_run_json_into_head_exits_promptly_with_a_complete_audit_log(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    pipeline = subprocess.run(
        f"{sys.executable} -m runner run {LINE} --time-scale 0.2 --json "
        f"--log-file {log} | head -1", shell=True, cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60, check=False)
    assert pipeline.returncode == 0
    assert json.loads(pipeline.stdout)["event"] == "run.started"
    assert "Traceback" not in pipeline.stderr and "Exception" not in pipeline.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[-1]["event"] == "run.finished" and records[-1]["exit_code"] == 0
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))


def test_no_permission_on_the_usb_probe_exits_3_pointing_at_the_udev_rules(
        tmp_path: Path) -> None:
    from runner.launch import execute
    from runner.oneline import OneLine, parse_link, prepare
    from transports.sim import SimulationWorld
    from transports.sim.stlink import attach_probe

    request = OneLine(command="erase", part="stm32f103c8", link=parse_link("stlink"),
                      steps=({"erase": {"scope": "mass"}},), simulate=True)
    plan = prepare(request, log_file=tmp_path / "erase.jsonl")
    (device,) = plan.devices
    with SimulationWorld(time_scale=0) as world:
        attach_probe(world, device.device, device.chip, key=device.resource).accessible = False
        result = execute(plan, world=world)
    assert result.exit_code == 3
    (failed,) = result.devices
    assert failed.error_category == "environment" and "udev" in (failed.error or "")
