"""Warnings about valid manifests: unverified writes, recovery policies that never apply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner.compiler import compile_plan
from runner.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[2]

TEXT = """\
manifest: 1
name: advice
simulate: true
images:
  app: {{file: app.bin, address: 0x08000000}}
transports:
  link: {{kind: sim}}
recipes:
  std:
    - erase: {{}}
    - write: [app]
{verify}recovery:
  {policy}: {{retries: 2, "on": [timeout]}}
devices:
  dev: {{chip: stm32f103c8, transport: link, recipe: std}}
"""


def _write(tmp_path: Path, *, verify: bool = True, policy: str = "default") -> Path:
    (tmp_path / "app.bin").write_bytes(b"\x01" * 64)
    path = tmp_path / "m.yaml"
    path.write_text(TEXT.format(verify="    - verify: {}\n" if verify else "", policy=policy))
    return path


def test_a_verified_recipe_with_a_default_policy_has_no_warning(tmp_path: Path) -> None:
    assert load_manifest(_write(tmp_path)).warnings == ()


def test_a_write_without_verify_is_a_located_warning_in_the_plan_too(tmp_path: Path) -> None:
    path = _write(tmp_path, verify=False)
    (warning,) = load_manifest(path).warnings
    assert warning.startswith(f"{path}:11:7: ")
    assert "does not verify it" in warning
    assert warning in compile_plan(load_manifest(path)).warnings


def test_a_policy_named_default_in_another_case_is_a_warning(tmp_path: Path) -> None:
    (warning,) = load_manifest(_write(tmp_path, policy="DEFAULT")).warnings
    assert "recovery policy DEFAULT is not used" in warning
    assert "rename it `default`" in warning


def test_an_unused_policy_is_a_warning(tmp_path: Path) -> None:
    (warning,) = load_manifest(_write(tmp_path, policy="patient")).warnings
    assert "recovery policy patient is not used by any device or step" in warning


def test_validate_prints_the_warnings_and_still_succeeds(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "runner", "validate",
                           str(_write(tmp_path, verify=False))], capture_output=True,
                          text=True, cwd=ROOT, check=False)
    assert done.returncode == 0
    assert "warning: " in done.stderr and "does not verify it" in done.stderr


def test_the_run_summary_repeats_that_a_write_was_not_verified(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runner.cli import main

    path = _write(tmp_path, verify=False)
    assert main(["run", str(path), "--log-file", str(tmp_path / "run.jsonl")]) == 0
    err = capsys.readouterr().err
    summary = err[err.index("exit code 0"):]
    assert "warning: not verified:" in summary and "recipe std writes flash" in summary
