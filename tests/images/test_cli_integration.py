"""Images, pins, unit data and dfu-pack through manifests and the `flashrunner` command."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runner.cli import main
from runner.dfufile import read_dfu
from runner.errors import ManifestError
from runner.manifest import load_manifest
from runner.serials import SerialCounter
from tests.images.helpers import DATA

ROOT = Path(__file__).resolve().parents[2]
SERIAL = ("    - unit-data: {address: 0x0800FC00, source: {counter: "
          "{state: serials.json, start: 1000, width: 4}}}")


DEFAULT_STEPS = f"""\
    - erase: {{scope: used}}
    - write: [app]
{SERIAL}
    - verify: {{method: readback}}"""


def _manifest(folder: Path, *, devices: int = 1, images: str = "", recipe: str = "",
              extra: str = "") -> Path:
    shutil.copy(DATA / "flat.hex", folder / "app.hex")
    listed = "\n".join(f"  unit-{i}: {{chip: stm32f103c8, transport: bus, recipe: std}}"
                       for i in range(1, devices + 1))
    text = f"""\
manifest: 1
name: line
simulate: false   # kind: sim links run anyway; counters are the real ones
simulation: {{time-scale: 0}}
images:
{images or '  app: {file: app.hex}'}
transports:
  bus: {{kind: sim}}
recipes:
  std:
{recipe or DEFAULT_STEPS}
devices:
{listed}
execution: {{max-parallel: 4}}
log: {{file: "logs/{{run_id}}.jsonl"}}
{extra}"""
    path = folder / "line.yaml"
    path.write_text(text)
    return path


def _records(folder: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for log in sorted((folder / "logs").glob("*.jsonl")):
        records.extend(json.loads(line) for line in log.read_text().splitlines())
    return records


def _units(records: list[dict[str, Any]]) -> list[int]:
    return [int(r["unit_value"]) for r in records
            if r["event"] == "step.finished" and r.get("action") == "unit-data"]


# ----------------------------------------------------------------------------- manifest


def test_unit_data_step_loads_into_the_model(tmp_path: Path) -> None:
    manifest = load_manifest(_manifest(tmp_path))
    step = manifest.recipes["std"].steps[2]
    assert step.kind == "unit-data" and step.address == 0x0800FC00 and step.size == 4
    assert step.source.state == tmp_path / "serials.json"  # type: ignore[attr-defined]


def test_text_field_without_width_is_a_located_issue(tmp_path: Path) -> None:
    recipe = "    - unit-data: {address: 0x0800FC00, source: {uid: {template: 'ID-{uid}'}}}"
    with pytest.raises(ManifestError) as caught:
        load_manifest(_manifest(tmp_path, recipe=recipe))
    issue = caught.value.first
    assert (issue.line, issue.where) == (11, "recipes.std[0].unit-data.source")
    assert "needs `width`" in issue.message


def test_field_outside_flash_is_a_located_issue(tmp_path: Path) -> None:
    recipe = "    - unit-data: {address: 0x08010000, source: {uid: {derive: crc32}}}"
    with pytest.raises(ManifestError) as caught:
        load_manifest(_manifest(tmp_path, recipe=recipe))
    assert "unit-data at 0x08010000 (4 bytes) does not fit the flash of stm32f103c8" \
        in caught.value.first.message


def test_field_over_an_image_is_a_located_issue(tmp_path: Path) -> None:
    recipe = ("    - write: [app]\n"
              "    - unit-data: {address: 0x08000010, source: {uid: {derive: crc32}}}")
    with pytest.raises(ManifestError) as caught:
        load_manifest(_manifest(tmp_path, recipe=recipe))
    assert "overlaps image 'app'" in caught.value.first.message
    assert caught.value.first.line == 12


def test_unknown_source_is_refused_by_the_schema(tmp_path: Path) -> None:
    recipe = "    - unit-data: {address: 0x0800FC00, source: {dice: {}}}"
    with pytest.raises(ManifestError):
        load_manifest(_manifest(tmp_path, recipe=recipe))


# ----------------------------------------------------------------------------- pin


def test_pin_command_pins_every_image_and_exits_0(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = _manifest(tmp_path)
    assert main(["pin", str(path)]) == 0
    digest = hashlib.sha256((tmp_path / "app.hex").read_bytes()).hexdigest()
    assert f'app: {{file: app.hex, sha256: "{digest}"}}' in path.read_text()
    assert "1 pin changed" in capsys.readouterr().out
    assert load_manifest(path).images["app"].sha256 == digest


def test_pin_command_with_a_missing_image_exits_2(tmp_path: Path) -> None:
    path = _manifest(tmp_path)
    (tmp_path / "app.hex").unlink()
    before = path.read_text()
    assert main(["pin", str(path)]) == 2
    assert path.read_text() == before


def test_pin_mismatch_refuses_before_any_device_is_touched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _manifest(tmp_path, images=f'  app: {{file: app.hex, sha256: "{"ab" * 32}"}}')
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    actual = hashlib.sha256((tmp_path / "app.hex").read_bytes()).hexdigest()
    assert f"has sha256 {actual}, but the manifest pins {'ab' * 32}" in err
    assert not [r for r in _records(tmp_path) if r["event"] == "device.started"]
    assert not (tmp_path / "serials.json").exists()


# ----------------------------------------------------------------------------- run


def test_run_logs_image_digests_and_unit_values(tmp_path: Path) -> None:
    path = _manifest(tmp_path, devices=3)
    assert main(["run", str(path), "--quiet"]) == 0
    records = _records(tmp_path)
    digest = hashlib.sha256((tmp_path / "app.hex").read_bytes()).hexdigest()
    started = [r for r in records if r["event"] == "run.started"][0]
    assert started["images"] == {"app": digest}
    writes = [r for r in records if r["event"] == "step.finished" and r["action"] == "write"]
    assert all(w["images"][0]["name"] == "app" and w["images"][0]["sha256"] == digest
               for w in writes)
    assert sorted(_units(records)) == [1000, 1001, 1002]
    units = [r for r in records if r["event"] == "step.finished" and r["action"] == "unit-data"]
    assert all(r["unit_source"] == f"counter {tmp_path / 'serials.json'}" for r in units)


def _run_in_process(path: Path, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "runner", "run", str(path), "--quiet",
                             *options],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_two_concurrent_runs_share_the_counter_without_duplicates_or_gaps(
        tmp_path: Path) -> None:
    lines = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        path = _manifest(folder, devices=8)
        # Both stations' manifests name one shared counter.
        path.write_text(path.read_text().replace("state: serials.json",
                                                 f"state: {tmp_path / 'serials.json'}"))
        lines.append(_run_in_process(path, "--allow-path", str(tmp_path)))
    for run in lines:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    values = _units(_records(tmp_path / "a")) + _units(_records(tmp_path / "b"))
    assert sorted(values) == list(range(1000, 1016))


def test_a_killed_run_loses_only_its_units_value_and_the_journal_names_it(
        tmp_path: Path) -> None:
    slow = "  bus: {kind: sim, rate: 1}"      # 1 byte/s: the 4-byte field takes 4 s
    path = _manifest(tmp_path, recipe=f"""\
    - erase: {{scope: used}}
{SERIAL}
    - verify: {{method: readback}}""")
    text = path.read_text().replace("  bus: {kind: sim}", slow) \
        .replace("simulation: {time-scale: 0}", "simulation: {time-scale: 1}")
    path.write_text(text)
    journal = SerialCounter(state=tmp_path / "serials.json").journal_path
    victim = _run_in_process(path)
    try:
        deadline = time.monotonic() + 60
        while not (journal.exists() and journal.read_text().endswith("\n")):
            assert time.monotonic() < deadline, "the run never allocated a serial"
            time.sleep(0.02)
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        victim.wait(timeout=30)
    crashed = SerialCounter(state=tmp_path / "serials.json").journal()
    assert [(a.value, a.device) for a in crashed] == [(1000, "unit-1")]
    path.write_text(text.replace(slow, "  bus: {kind: sim}"))
    assert main(["run", str(path), "--quiet"]) == 0
    assert _units(_records(tmp_path)) == [1001]
    assert [a.value for a in SerialCounter(state=tmp_path / "serials.json").journal()] == \
        [1000, 1001]


# ----------------------------------------------------------------------------- dfu-pack


def test_dfu_pack_command_writes_a_dfu_of_the_images(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fw.dfu"
    assert main(["dfu-pack", str(out), str(DATA / "sparse.elf"),
                 f"{DATA / 'flat.bin'}@0x08010000", "--vid", "0x0483", "--pid", "0xDF11"]) == 0
    dfu = read_dfu(out.read_bytes(), str(out))
    assert (dfu.vendor, dfu.product) == (0x0483, 0xDF11)
    assert len(dfu.targets[0].elements) == 3
    assert "3 elements" in capsys.readouterr().out


def test_dfu_pack_command_refuses_a_raw_binary_without_address(tmp_path: Path) -> None:
    assert main(["dfu-pack", str(tmp_path / "fw.dfu"), str(DATA / "flat.bin")]) == 2
    assert not (tmp_path / "fw.dfu").exists()


def test_csv_source_is_checked_at_validation(tmp_path: Path) -> None:
    (tmp_path / "units.csv").write_text("uid,cal\n")
    recipe = ("    - unit-data: {address: 0x0800FC00, source: {csv: {file: units.csv, "
              "column: gain, key: uid, width: 4}}}")
    with pytest.raises(ManifestError) as caught:
        load_manifest(_manifest(tmp_path, recipe=recipe))
    message = caught.value.first.message
    assert "has no column 'gain' in its first line (2 columns)" in message
    assert "uid" not in message.replace("key: uid", "")   # the header is never shown
    (tmp_path / "units.csv").unlink()
    with pytest.raises(ManifestError, match="cannot read .*units.csv"):
        load_manifest(_manifest(tmp_path, recipe=recipe))


def test_field_sharing_a_write_unit_with_an_image_is_a_located_issue(tmp_path: Path) -> None:
    # Moved to 0x08000001, the 76-byte image ends at 0x0800004D, inside the half-word
    # (the F103's write unit) that the field starting there needs too.
    recipe = ("    - write: [app]\n"
              "    - unit-data: {address: 0x0800004D, source: {uid: {derive: crc32}}}")
    with pytest.raises(ManifestError) as caught:
        load_manifest(_manifest(tmp_path, recipe=recipe,
                                images="  app: {file: app.hex, address: 0x08000001}"))
    assert "shares a 2-byte write unit of stm32f103c8 with image 'app'" \
        in caught.value.first.message
