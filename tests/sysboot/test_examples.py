"""The example manifests of the bootloader links run end to end and end verified."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from runner.compiler import compile_plan
from runner.executor import execute, simulation_world
from runner.manifest import load_manifest
from runner.model import LogSpec

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"

#: manifest → (device, image file)
EXAMPLES = {"uart-f103.yaml": ("blue-pill", "uart-f103-app.bin"),
            "i2c-g071.yaml": ("sensor", "i2c-g071-app.bin"),
            "can-l476.yaml": ("motor", "can-l476-app.bin")}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_manifest_flashes_and_verifies(name: str, tmp_path: Path) -> None:
    manifest = load_manifest(MANIFESTS / name)
    plan = compile_plan(manifest)
    log = tmp_path / "run.jsonl"
    plan = dataclasses.replace(plan, log=LogSpec(file=str(log)),
                               simulation=dataclasses.replace(plan.simulation, time_scale=0.0))
    with simulation_world(plan) as world:
        result = execute(plan, world=world)
        assert result.exit_code == 0, [d.error for d in result.devices]
        device, image = EXAMPLES[name]
        data = (MANIFESTS / "images" / image).read_bytes()
        assert world.chips[device].flash[:len(data)] == data
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[-1]["event"] == "run.finished"
