"""``verify: {images: [...]}`` on its own compares, per erase unit, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.compiler import compile_plan
from runner.errors import ManifestError
from runner.events import CapturingSink
from runner.launch import execute
from runner.manifest import load_manifest
from runner.model import VerifyStep, WriteStep
from transports.chips import chip_database
from transports.sim import SimChip, SimulationWorld

F4 = "stm32f411re"
APP = bytes((i * 13 + 5) & 0xFF for i in range(0x6000))    # sectors 0 and 1 (16 KiB each)

MANIFEST = """\
manifest: 1
name: line
images:
  app: {{file: app.bin, address: 0x08000000}}
transports:
  bus: {{kind: sim}}
recipes:
  std:
{steps}
devices:
  unit-1: {{chip: stm32f411re, transport: bus, recipe: std}}
"""


def _load(folder: Path, steps: str) -> object:
    (folder / "app.bin").write_bytes(APP)
    path = folder / "line.yaml"
    path.write_text(MANIFEST.format(steps=steps), "utf-8")
    return load_manifest(path)


def _seed(world: SimulationWorld, content: bytes) -> SimChip:
    chip = chip_database().part(F4)
    flash = bytearray(b"\xff" * chip.flash.size)
    flash[:len(content)] = content
    sim = SimChip(chip, initial_flash=bytes(flash))
    world.substitute("unit-1", sim)
    return sim


def _run(folder: Path, world: SimulationWorld, steps: str) -> tuple[int, CapturingSink]:
    manifest = _load(folder, steps)
    sink = CapturingSink()
    run = execute(compile_plan(manifest), world=world, events=sink)  # type: ignore[arg-type]
    return run.exit_code, sink


def test_the_manifest_forms_of_skip_unchanged_and_a_verify_of_images(tmp_path: Path) -> None:
    manifest = _load(tmp_path, "    - write: {images: [app], skip-unchanged: true}\n"
                               "    - verify: {images: [app], method: readback}")
    steps = manifest.recipes["std"].steps  # type: ignore[attr-defined]
    assert steps[0] == WriteStep(images=("app",), skip_unchanged=True,
                                 location=steps[0].location)
    assert isinstance(steps[1], VerifyStep) and steps[1].images == ("app",)


def test_a_verify_of_an_unknown_image_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="line.yaml:9:.*nope"):
        _load(tmp_path, "    - verify: {images: [app, nope]}")


def test_verify_on_its_own_passes_on_a_flashed_chip_and_writes_nothing(
        tmp_path: Path, world: SimulationWorld) -> None:
    sim = _seed(world, APP)
    before = bytes(sim.flash)
    code, sink = _run(tmp_path, world, "    - verify: {images: [app]}")
    assert code == 0
    assert bytes(sim.flash) == before
    actions = [e["action"] for e in sink.named("step.finished")]
    assert actions == ["connect", "verify"]
    verify = sink.named("step.finished")[-1]
    assert verify["method"] == "checksum" and verify["units"] == 2
    assert [image["name"] for image in verify["images"]] == ["app"]


def test_verify_on_its_own_fails_at_the_first_differing_byte(
        tmp_path: Path, world: SimulationWorld) -> None:
    changed = bytearray(APP)
    changed[0x4321] ^= 0x01
    _seed(world, bytes(changed))
    code, sink = _run(tmp_path, world, "    - verify: {images: [app]}")
    assert code == 1
    failed = [e for e in sink.named("step.finished") if e.get("outcome") == "failed"]
    assert failed and failed[0]["address"] == "0x08004321"
    assert failed[0]["error_type"] == "VerifyError"


def test_a_verify_without_images_before_any_write_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="verifies before it writes anything"):
        _load(tmp_path, "    - verify: {}")
