"""Every example manifest validates, and the demo line runs end to end.

The demo is what a newcomer runs first (README quick start): it must exit 0,
identify every device, end every step ok, and leave each simulated chip's
flash holding exactly the images its recipe wrote.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from runner.compiler import compile_plan
from runner.launch import execute, resolve_log, simulation_world
from runner.manifest import load_manifest
from runner.model import WriteStep
from runner.plan import Outcome

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "manifests").glob("*.yaml"))
DEMO = ROOT / "manifests" / "demo.yaml"


def test_there_are_examples_for_every_link_kind() -> None:
    kinds = {link.kind for path in EXAMPLES for link in load_manifest(path).links.values()}
    assert {"stlink", "uart", "i2c", "can", "dfu"} <= kinds


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_manifest_validates_and_compiles(path: Path) -> None:
    manifest = load_manifest(path)
    plan = compile_plan(manifest)
    assert plan.devices, f"{path.name} flashes no device"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_no_shipped_example_carries_a_data_loss_warning(path: Path) -> None:
    plan = compile_plan(load_manifest(path))
    assert [w for w in plan.warnings if "lost" in w] == []


def test_demo_line_runs_and_every_chip_holds_its_images(tmp_path: Path) -> None:
    manifest = load_manifest(DEMO)
    assert len(manifest.devices) >= 8
    assert len({device.chip for device in manifest.devices.values()}) >= 3
    assert any(device.after for device in manifest.devices.values())
    plan = compile_plan(manifest)
    plan = dataclasses.replace(
        plan, simulation=dataclasses.replace(plan.simulation, time_scale=0.0),
        log=resolve_log(plan, tmp_path / "demo.jsonl"))

    with simulation_world(plan) as world:
        result = execute(plan, world=world)
        assert result.exit_code == 0, [d for d in result.devices if d.outcome is not Outcome.OK]
        for name, device in manifest.devices.items():
            expected = plan.device(name).memory
            sim = world.chips[name]
            for segment in expected:
                assert sim.read_flash(segment.address, len(segment), debug=False) == \
                    segment.data, f"{name}: flash differs from its images at {segment}"
            written = {image for step in manifest.recipes[device.recipe].steps
                       if isinstance(step, WriteStep) for image in step.images}
            assert {use.name for use in plan.device(name).images} == written

    records = [json.loads(line) for line in (tmp_path / "demo.jsonl").read_text().splitlines()]
    identified = {r["device"] for r in records if r["event"] == "device.identified"}
    assert identified == set(manifest.devices)
    finished = [r for r in records if r["event"] == "step.finished"]
    assert finished and all(r["outcome"] == "ok" for r in finished)
    assert {r["device"] for r in finished} == set(manifest.devices)
    retried = [r for r in records if r["event"] == "step.retried"]
    assert [r["device"] for r in retried] == ["sensor-3"], "the demo's planned fault shows"
    summary = records[-1]
    assert summary["event"] == "run.finished"
    assert summary["counts"] == {"ok": len(manifest.devices)}
