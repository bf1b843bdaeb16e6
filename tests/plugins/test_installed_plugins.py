"""Third-party transports through a real installed distribution and its entry points.

Two distributions are built and installed offline once for the module
(``pip install --target``, no index, no build isolation): ``flashrunner-filechip``
with two conforming kinds, and ``flashrunner-broken`` with plugins that cannot
be imported, do not conform, or register the built-in kind ``uart``. Each test
runs ``python -m runner`` with both on the path, so every command also shows that
the broken plugins break nothing they are not asked for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = Path(__file__).resolve().parent
IMAGE = bytes(range(256)) * 8   # 2 KiB


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("plugins")
    sources = []
    for name in ("filechip", "broken"):   # built out of tree: the repository stays clean
        shutil.copytree(PROJECTS / name, work / name)
        sources.append(str(work / name))
    target = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target), *sources],
                   check=True, capture_output=True, text=True,
                   env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return target


def flashrunner(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT), str(site))),
           "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "runner", *args], check=False, cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=60)


def manifest(folder: Path, link: str, *, simulate: bool = False, name: str = "m.yaml") -> Path:
    (folder / "app.bin").write_bytes(IMAGE)
    path = folder / name
    path.write_text(
        "manifest: 1\n"
        "name: plugin-line\n"
        f"simulate: {'true' if simulate else 'false'}\n"
        "simulation: {time-scale: 0}\n"
        "images:\n"
        "  app: {file: app.bin, address: 0x08000000, format: bin}\n"
        "transports:\n"
        f"  fixture: {link}\n"
        "recipes:\n"
        "  flash:\n"
        "    - erase: {scope: used}\n"
        "    - write: [app]\n"
        "    - verify: {method: readback}\n"
        "devices:\n"
        "  board: {chip: stm32f103c8, transport: fixture, recipe: flash}\n")
    return path


def test_transports_lists_the_plugins_and_reports_the_broken_ones(site: Path,
                                                                  tmp_path: Path) -> None:
    result = flashrunner(site, "transports", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "write" in lines["filechip"] and "(cannot be simulated)" in lines["filechip"]
    assert "(cannot be simulated)" not in lines["memchip"]
    assert {"stlink", "uart", "i2c", "can", "dfu", "sim"} <= lines.keys()
    broken = "(flashrunner_broken.missing:Transport, from flashrunner-broken 0.3)"
    assert "unavailable" in lines["needs-missing"] and broken in lines["needs-missing"]
    assert "cannot be imported" in lines["needs-missing"]
    assert "RuntimeError while importing: no licence server reachable" in lines["raises"]
    assert "has no `options_schema`" in lines["halfdone"]
    assert "has no `open` class method" in lines["halfdone"]
    assert "declares kind 'half-done' but is registered as 'halfdone'" in lines["halfdone"]
    assert "not a valid JSON Schema" in lines["badschema"]
    assert "registers the built-in kind 'uart'; the built-in is used" in result.stderr
    assert "flashrunner-broken 0.3" in result.stderr


def test_a_plugin_kind_validates_plans_and_runs(site: Path, tmp_path: Path) -> None:
    flash = tmp_path / "flash.img"
    path = manifest(tmp_path, f"{{kind: filechip, path: {flash}}}")
    assert flashrunner(site, "validate", str(path), cwd=tmp_path).returncode == 0
    plan = flashrunner(site, "plan", str(path), cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "filechip" in plan.stdout
    run = flashrunner(site, "run", str(path), "--log-file", str(tmp_path / "log.jsonl"),
                      cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert flash.read_bytes()[:len(IMAGE)] == IMAGE


def test_a_plugin_kind_is_rehearsed_through_the_endpoints_it_declares(site: Path,
                                                                     tmp_path: Path) -> None:
    path = manifest(tmp_path, "{kind: memchip}", simulate=True)
    assert flashrunner(site, "validate", str(path), cwd=tmp_path).returncode == 0
    run = flashrunner(site, "run", str(path), "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert '"outcome": "ok"' in run.stdout
    on_hardware = manifest(tmp_path, "{kind: memchip}", name="real.yaml")
    run = flashrunner(site, "run", str(on_hardware), cwd=tmp_path)
    assert run.returncode == 1   # no memory port exists outside a rehearsal
    assert "link fixture is of kind memchip, which only exists in simulation" in run.stderr


def test_a_typo_in_a_plugin_option_is_located(site: Path, tmp_path: Path) -> None:
    path = manifest(tmp_path, f"{{kind: filechip, pth: {tmp_path / 'flash.img'}}}")
    result = flashrunner(site, "validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:8:" in result.stderr and "pth" in result.stderr


def test_a_rehearsal_of_a_kind_without_simulation_is_refused(site: Path,
                                                             tmp_path: Path) -> None:
    flash = tmp_path / "flash.img"
    path = manifest(tmp_path, f"{{kind: filechip, path: {flash}}}")
    result = flashrunner(site, "run", str(path), "--simulate", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:8:" in result.stderr   # the link's line
    assert "kind filechip, which cannot be simulated" in result.stderr
    assert not flash.exists()   # nothing was touched


def test_simulate_true_on_a_kind_without_simulation_fails_validation(site: Path,
                                                                     tmp_path: Path) -> None:
    path = manifest(tmp_path, f"{{kind: filechip, path: {tmp_path / 'flash.img'}}}",
                    simulate=True)
    result = flashrunner(site, "validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:8:" in result.stderr and "transports.fixture.kind" in result.stderr
    assert "kind filechip cannot be simulated" in result.stderr


def test_a_manifest_using_a_broken_plugin_gets_a_located_error(site: Path,
                                                              tmp_path: Path) -> None:
    path = manifest(tmp_path, "{kind: needs-missing}")
    result = flashrunner(site, "validate", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}:8:" in result.stderr
    assert "transport kind 'needs-missing' cannot be used" in result.stderr
    assert "flashrunner-broken 0.3" in result.stderr
    assert "internal error" not in result.stderr


def test_the_built_in_wins_over_a_plugin_of_the_same_kind(site: Path, tmp_path: Path) -> None:
    path = manifest(tmp_path, "{kind: uart, port: /dev/ttyUSB0}")
    # The plugin's class would fail its assertions if it were planned or opened.
    result = flashrunner(site, "run", str(path), "--simulate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
