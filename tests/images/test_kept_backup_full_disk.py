"""Bytes to keep that cannot be saved stop the run before anything is erased."""

from __future__ import annotations

import dataclasses
import errno
from pathlib import Path
from typing import Any

import pytest
from test_run_integration import CALIBRATION, FLASH, STEPS, _image, _manifest, _seed_chip

from runner import unitrun
from runner.compiler import compile_plan
from runner.launch import execute
from runner.model import LogSpec
from transports.sim import SimulationWorld


def test_a_kept_backup_on_a_full_disk_stops_the_run_with_exit_3_and_erases_nothing(
        tmp_path: Path, world: SimulationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: Path, kept: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(unitrun, "_save_hex", full)
    calibration = b"CAL:" + bytes(range(256))
    sim = _seed_chip(world, "unit-1", {CALIBRATION: calibration})
    manifest = _manifest(tmp_path, [_image(tmp_path, preserve=True)], STEPS,
                         devices=("unit-1", "unit-2"))
    plan = dataclasses.replace(compile_plan(manifest), execution=dataclasses.replace(
        manifest.execution, max_parallel=1), log=LogSpec(file=str(tmp_path / "run.jsonl")))
    result = execute(plan, world=world)
    assert result.exit_code == 3
    assert result.stopped_by is not None and "nothing was erased" in result.stopped_by
    outcomes = {d.device: d.outcome.value for d in result.devices}
    assert outcomes == {"unit-1": "failed", "unit-2": "skipped"}
    at = CALIBRATION - FLASH
    assert sim.flash[at:at + len(calibration)] == calibration
