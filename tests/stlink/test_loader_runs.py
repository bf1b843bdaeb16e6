"""The loader through the runner: a manifest's write, verify and skip-unchanged over ST-Link."""

from __future__ import annotations

import os
from pathlib import Path

from runner.compiler import compile_plan
from runner.events import CapturingSink
from runner.launch import execute
from runner.manifest import load_manifest
from transports.sim import SimulationWorld
from transports.sim.world import DeviceProfile

MANIFEST = """\
manifest: 1
name: loader-line
simulate: true
images:
  app: {{file: app.bin, address: 0x08000000, format: bin}}
transports:
  probe: {{kind: stlink, {options}}}
recipes:
  flash:
    - erase: {{scope: used}}
    - write: {{images: [app], skip-unchanged: true}}
    - verify: {{method: auto}}
devices:
  board: {{chip: {part}, transport: probe, recipe: flash}}
"""


def run(folder: Path, world: SimulationWorld, data: bytes, *, part: str = "stm32f411re",
        options: str = "write-mode: loader") -> tuple[int, CapturingSink]:
    (folder / "app.bin").write_bytes(data)
    path = folder / "line.yaml"
    path.write_text(MANIFEST.format(part=part, options=options))
    sink = CapturingSink()
    result = execute(compile_plan(load_manifest(path)), world=world, events=sink)
    return result.exit_code, sink


def finished(sink: CapturingSink, action: str) -> dict:
    return next(e for e in sink.named("step.finished") if e["action"] == action)


def test_a_reflash_of_an_unchanged_image_is_decided_by_on_target_crc(tmp_path: Path) -> None:
    world = SimulationWorld()
    data = os.urandom(48 * 1024)
    status, _sink = run(tmp_path, world, data)
    assert status == 0
    status, sink = run(tmp_path, world, data)
    assert status == 0
    write = finished(sink, "write")
    assert write["compare_method"] == "checksum" and write["units_rewritten"] == 0
    assert world.chips["board"].flash[:len(data)] == data


def test_an_f1_behind_a_v1_runs_through_the_loader_and_verifies(tmp_path: Path) -> None:
    world = SimulationWorld(profiles={"board": DeviceProfile(quirks={"probe": "v1"})})
    data = os.urandom(16 * 1024)
    status, sink = run(tmp_path, world, data, part="stm32f103c8", options="connect: normal")
    assert status == 0, [e for e in sink.records if e.get("outcome") == "failed"]
    identified = sink.named("device.identified")[0]
    assert identified["write_mode"] == "loader"
    assert finished(sink, "verify")["outcome"] == "ok"
    assert world.chips["board"].flash[:len(data)] == data
