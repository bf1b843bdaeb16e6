"""The example manifests of the bootloader links run end to end and end verified."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from runner.compiler import compile_plan
from runner.launch import execute, simulation_world
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


def test_transient_write_nack_is_recovered_by_the_retry_policy(tmp_path: Path) -> None:
    image = MANIFESTS / "images" / "uart-f103-app.bin"
    manifest_file = tmp_path / "retry.yaml"
    manifest_file.write_text(f"""
manifest: 1
name: retry
simulate: true
simulation:
  time-scale: 0
  devices:
    board: {{faults: [{{kind: nack, op: write, at-byte: 3000}}]}}
images:
  app: {{file: {image}, address: 0x08000000}}
transports:
  uart-a: {{kind: uart, port: /dev/ttyUSB0, boot0: rts, reset: dtr}}
recipes:
  flash: [{{erase: {{scope: used}}}}, {{write: [app]}}, {{verify: {{}}}}, {{reset: {{}}}}]
recovery:
  default: {{retries: 2, backoff: 0, on: [nack, write, timeout], actions: [reconnect]}}
devices:
  board: {{chip: stm32f103cb, transport: uart-a, recipe: flash}}
""")
    plan = compile_plan(load_manifest(manifest_file))
    plan = dataclasses.replace(plan, log=LogSpec(file=str(tmp_path / "run.jsonl")))
    with simulation_world(plan) as world:
        result = execute(plan, world=world)
        assert result.exit_code == 0, [d.error for d in result.devices]
        assert world.chips["board"].flash[:image.stat().st_size] == image.read_bytes()
        assert len(world.chips["board"].faults.fired) == 1
    events = [json.loads(line)["event"] for line in (tmp_path / "run.jsonl").read_text()
              .splitlines()]
    assert "step.retried" in events
