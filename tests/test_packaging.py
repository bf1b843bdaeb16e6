"""The distribution: its licence, and the examples an installed wheel can reach."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from runner.cli import main
from runner.example_files import copy_examples, examples_root, list_examples

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_licence_file_matches_the_metadata() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:3] == ["Apache", "License", "Version"]
    assert "http://www.apache.org/licenses/LICENSE-2.0" in text


def test_the_version_the_runs_record_is_the_packages() -> None:
    # Runs record runner.__version__ (no metadata lookup at start): it must be the release's.
    from runner import __version__

    assert PYPROJECT["project"]["version"] == __version__


def test_every_example_file_is_package_data() -> None:
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["runner"]
    shipped = [path for path in (ROOT / "manifests").rglob("*")
               if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts]
    assert shipped
    for path in shipped:
        relative = f"examples/{path.relative_to(ROOT / 'manifests').as_posix()}"
        assert any(fnmatch.fnmatch(relative, pattern.replace("**/", "*"))
                   for pattern in patterns), relative


def test_the_examples_folder_is_the_repositorys_manifests() -> None:
    assert examples_root().resolve() == (ROOT / "manifests").resolve()
    names = [example.name for example in list_examples()]
    assert names == sorted(path.name for path in (ROOT / "manifests").glob("*.yaml"))
    demo = next(example for example in list_examples() if example.name == "demo.yaml")
    assert demo.devices == 11 and demo.description


def test_examples_copy_runs_and_never_overwrites(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "mine"
    assert main(["examples", "--copy", str(target)]) == 0
    assert f"flashrunner run {target / 'demo.yaml'}" in capsys.readouterr().out
    assert (target / "demo" / "images" / "sensor-f103.hex").is_file()
    assert not list(target.rglob("*.py"))
    assert main(["run", str(target / "uart-f103.yaml"), "--time-scale", "0", "-q"]) == 0
    assert main(["examples", "--copy", str(target)]) == 3
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(Exception, match="already exists"):
        copy_examples(target)


def test_examples_lists_each_with_its_devices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["examples"]) == 0
    out = capsys.readouterr().out
    assert "demo.yaml" in out and "11 devices" in out and " 1 device " in out


@pytest.mark.slow
def test_an_installed_wheel_lists_copies_and_runs_the_examples(tmp_path: Path) -> None:
    """Build the wheel, install it in a fresh venv, run an example from the copy."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, env=env, timeout=600)
    (wheel,) = (tmp_path / "dist").glob("flashrunner-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--no-deps", str(wheel)], check=True, env=env, timeout=300)
    tool = str(venv / "bin" / "flashrunner")
    work = tmp_path / "work"
    work.mkdir()
    listed = subprocess.run([tool, "examples"], cwd=work, capture_output=True, text=True,
                            check=True, timeout=60)
    assert "demo.yaml" in listed.stdout and str(venv) in listed.stdout
    subprocess.run([tool, "examples", "--copy", "ex"], cwd=work, check=True, timeout=60)
    ran = subprocess.run([tool, "run", "ex/demo.yaml", "--time-scale", "0", "-q"], cwd=work,
                         capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
