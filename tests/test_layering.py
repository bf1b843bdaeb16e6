"""Imports point down the layers of docs/architecture.md, never up.

Every module's imports are read with :mod:`ast` (including imports inside
functions, which is where a driver would hide a simulator), so a layering break
fails here rather than in a reader's head.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports, absolute, with the line it does so on."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in paths:
        for line, module in _imports(path):
            if any(_within(module, banned) for banned in forbidden):
                found.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return sorted(set(found))


def test_the_module_walk_sees_the_transports() -> None:
    names = {_module_name(path) for path in _modules("transports")}
    assert {"transports.errors", "transports.uart", "transports.sim.chip"} <= names


#: The drivers the simulator stands in for; it speaks their wire protocols from the
#: chip's side and shares only data with them (chips, checksums, errors, faults).
DRIVERS = ("transports.uart", "transports.i2c", "transports.can", "transports.dfu",
           "transports.stlink", "transports.sysboot", "transports.memory")
#: The one runner module that composes a run with the simulated endpoints.
COMPOSITION = "runner/launch.py"


def _outside_sim(package: str) -> list[Path]:
    sim = ROOT / "transports" / "sim"
    return [path for path in _modules(package) if sim not in path.parents]


def test_no_transport_imports_the_runner() -> None:
    assert _violations(_modules("transports"), ("runner",)) == []


def test_the_simulator_never_imports_the_drivers_it_stands_in_for() -> None:
    assert _violations(_modules("transports/sim"), DRIVERS) == []


def test_drivers_never_import_the_simulator() -> None:
    assert _violations(_outside_sim("transports"), ("transports.sim",)) == []


def test_only_the_composition_module_of_the_runner_imports_the_simulator() -> None:
    found = _violations([*_modules("runner"), *_modules("schemas")], ("transports.sim",))
    assert {line.partition(":")[0] for line in found} == {COMPOSITION}


def test_the_checker_sees_relative_and_function_level_imports(tmp_path: Path) -> None:
    probe = tmp_path / "transports" / "probe.py"
    probe.parent.mkdir()
    probe.write_text("def f():\n    from runner import errors\n    from . import sim\n",
                     encoding="utf-8")
    modules = {module for _, module in _imports(probe, tmp_path)}
    assert "runner.errors" in modules
    assert "transports.sim" in modules


@pytest.mark.parametrize("name", ["RunnerError", "TransportError", "VerifyError", "PlanError"])
def test_the_runner_re_exports_the_one_tree(name: str) -> None:
    import runner.errors
    import transports.errors

    assert getattr(runner.errors, name) is getattr(transports.errors, name)
