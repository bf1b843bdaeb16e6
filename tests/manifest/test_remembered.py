"""A schema check that passed is remembered; anything changed is checked again."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from runner.errors import ManifestError
from runner.manifest import load_manifest, structure
from runner.manifest.remembered import check_digest, passed

ROOT = Path(__file__).resolve().parents[2]

MANIFEST = """\
manifest: 1
name: remembered
images:
  app: {file: app.bin, address: 0x08000000}
transports:
  port: {kind: uart, port: /dev/ttyUSB0, baud: BAUD}
recipes:
  std: [{erase: {scope: used}}, {write: [app]}, {verify: {}}]
devices:
  dut: {chip: stm32f103cb, transport: port, recipe: std}
"""


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache / "flashrunner" / "checked"


def _manifest(folder: Path, baud: str = "115200") -> Path:
    (folder / "app.bin").write_bytes(bytes(range(256)) * 4)
    path = folder / "line.yaml"
    path.write_text(MANIFEST.replace("BAUD", baud))
    return path


def _no_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    def checked(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the schema check ran again")

    monkeypatch.setattr(structure, "_validator", checked)
    monkeypatch.setattr(structure, "strict_validator", checked)


def test_a_passed_check_is_not_run_again(tmp_path: Path, own_cache: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = _manifest(tmp_path)
    load_manifest(path)
    assert len(list(own_cache.iterdir())) == 2   # the file, and the link's options
    _no_checks(monkeypatch)
    assert load_manifest(path).devices["dut"].chip == "stm32f103cb"


def test_a_changed_value_is_checked_again_and_its_problem_located(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_manifest(_manifest(tmp_path))
    with pytest.raises(ManifestError) as raised:
        load_manifest(_manifest(tmp_path, baud="'fast'"))
    assert "line.yaml:6:" in str(raised.value) and "baud" in str(raised.value)


def test_a_check_that_found_a_problem_is_never_remembered(tmp_path: Path,
                                                          own_cache: Path) -> None:
    path = _manifest(tmp_path, baud="9")
    for _ in range(2):
        with pytest.raises(ManifestError, match="baud"):
            load_manifest(path)
    assert len(list(own_cache.iterdir())) == 1   # the file's check passed, the options' not


@pytest.mark.parametrize("data", [{1: "x"}, {"when": date(2026, 12, 3)}, {"n": math.nan},
                                  {"n": [math.inf]}, {"s": {1, 2}}, {"b": b"\x00"}])
def test_data_json_would_blur_is_never_remembered(data: Any) -> None:
    assert check_digest("manifest-file", {"type": "object"}, data) is None


def test_digests_tell_types_and_values_apart() -> None:
    schema = {"type": "object"}
    digests = {check_digest("k", schema, data) for data in (
        {"a": 1}, {"a": 1.0}, {"a": True}, {"a": "1"}, {"a": None}, {"a": [1]}, {"a": 2})}
    assert len(digests) == 7 and None not in digests
    assert check_digest("k", schema, {"a": 1}) != check_digest("k", {"type": "array"},
                                                               {"a": 1})
    assert check_digest("k", schema, {"a": 1}) != check_digest("j", schema, {"a": 1})


def test_long_sections_hashed_in_pieces_still_tell_every_value_apart() -> None:
    schema = {"type": "object"}

    def line(**changed: Any) -> dict[str, Any]:
        devices = {f"dev-{i}": {"chip": "stm32f103c8", "after": [f"dev-{i - 1}"]}
                   for i in range(1, 600)}
        devices.update(changed)
        return {"devices": devices, "list": list(range(300))}

    same = check_digest("k", schema, line())
    assert same is not None and same == check_digest("k", schema, line())
    assert same != check_digest("k", schema, line(**{"dev-300": {"chip": "stm32f103cb",
                                                                  "after": ["dev-299"]}}))
    assert same != check_digest("k", schema, {**line(), "list": [*range(299), 300]})
    assert same != check_digest("k", schema, line(**{"dev-600": {"chip": "stm32f103c8"}}))


def test_an_unusable_cache_folder_only_costs_the_check(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    path = _manifest(tmp_path)
    load_manifest(path)
    load_manifest(path)
    assert not passed(check_digest("k", {}, {}))


def test_a_second_run_of_a_manifest_does_not_import_jsonschema(tmp_path: Path) -> None:
    path = _manifest(tmp_path)
    probe = (f"import sys; from runner.manifest import load_manifest; "
             f"load_manifest({str(path)!r}); print('jsonschema' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    seen = [subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                           text=True, check=True).stdout.strip() for _ in range(2)]
    assert seen == ["True", "False"]
