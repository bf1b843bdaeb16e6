"""The stlink example manifests run end to end through the runner and end verified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli import main
from runner.compiler import compile_plan
from runner.launch import execute
from runner.manifest import load_manifest
from runner.plan import RunResult
from transports.sim import SimulationWorld
from transports.sim.world import DeviceProfile

MANIFESTS = sorted((Path(__file__).resolve().parents[2] / "manifests").glob("stlink-*.yaml"))


def test_there_is_an_example_per_family() -> None:
    names = {path.stem for path in MANIFESTS}
    assert {"stlink-f103", "stlink-f411", "stlink-g071", "stlink-l476", "stlink-h743"} <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.stem)
def test_example_runs_to_a_verified_flash(path: Path, tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    assert main(["run", str(path), "--log-file", str(log), "--quiet"]) == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    steps = {r["step"].split("-", 1)[1]: r["outcome"] for r in records
             if r["event"] == "step.finished"}
    assert steps["verify"] == "ok" and steps["write"] == "ok"
    identified = next(r for r in records if r["event"] == "device.identified")
    assert identified["write_mode"] == "fast"


def test_the_f103_example_on_a_clone_takes_the_safe_path_and_verifies() -> None:
    manifest = load_manifest(MANIFESTS[0].parent / "stlink-f103.yaml")
    plan = compile_plan(manifest)
    world = SimulationWorld(profiles={"board": DeviceProfile(quirks={"clone": "apm32"})})
    with world:
        result = execute(plan, world=world)
    assert result.exit_code == 0
    assert result.devices[0].identity["write_mode"] == "safe"


def test_the_f103_example_forced_fast_on_a_clone_fails_verification(tmp_path: Path) -> None:
    source = (MANIFESTS[0].parent / "stlink-f103.yaml").read_text()
    forced = source.replace("clock-khz: 4000}", "clock-khz: 4000, write-mode: fast}")
    forced = forced.replace("images/", str(MANIFESTS[0].parent / "images") + "/")
    path = tmp_path / "forced.yaml"
    path.write_text(forced)
    plan = compile_plan(load_manifest(path))
    world = SimulationWorld(profiles={"board": DeviceProfile(quirks={"clone": "apm32"})})
    with world:
        result = execute(plan, world=world)
    assert result.exit_code == 1
    assert result.devices[0].error_type == "VerifyError"


def _run_with_fault_and_policy(tmp_path: Path, kind: str, on: str) -> tuple[RunResult, int]:
    """The F103 example with a recovery policy retrying ``on`` and one fault mid-write;
    the run's result and how many attempts the write took."""
    from transports.sim import Fault

    source = (MANIFESTS[0].parent / "stlink-f103.yaml").read_text()
    source = source.replace("images/", str(MANIFESTS[0].parent / "images") + "/")
    source += ('recovery:\n  default: {retries: 2, backoff: 0, '
               f'"on": [{on}], actions: [reconnect]}}\n')
    path = tmp_path / "recovering.yaml"
    path.write_text(source)
    plan = compile_plan(load_manifest(path))
    fault = Fault(kind=kind, op="write", at_byte=4096)
    with SimulationWorld(profiles={"board": DeviceProfile(faults=(fault,))}) as world:
        result = execute(plan, world=world)
    write = next(s for s in result.devices[0].steps if s.kind.value == "write")
    return result, write.attempts


# On an ST-Link an injected "nack" is an AP fault on the write (category fault).
@pytest.mark.parametrize("kind", ["timeout", "link-lost", "nack"])
def test_a_fault_mid_write_is_recovered_by_reconnecting(tmp_path: Path, kind: str) -> None:
    result, attempts = _run_with_fault_and_policy(tmp_path, kind, "timeout, link-lost, fault")
    assert (result.exit_code, attempts) == (0, 2)


def test_a_policy_that_retries_nacks_does_not_retry_a_bus_fault(tmp_path: Path) -> None:
    result, attempts = _run_with_fault_and_policy(tmp_path, "nack",
                                                  "timeout, link-lost, nack, protocol")
    assert (result.exit_code, attempts) == (1, 1)
    assert result.devices[0].error_category == "fault"
