"""The example manifests, wherever flashrunner is installed: ``flashrunner examples``.

The repository keeps them in ``manifests/``; ``runner/examples`` links there,
and the wheel carries them as package data, so an installed flashrunner can
list them and copy them out (with their images) to rehearse and edit.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from runner.errors import EnvironmentProblem

__all__ = ["Example", "copy_examples", "examples_root", "list_examples"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Example:
    """One example manifest: its file name and what it shows."""

    name: str
    path: Path
    description: str
    devices: int


def examples_root() -> Path:
    """The folder holding the example manifests (in the wheel, or the repository's)."""
    root = Path(str(resources.files("runner") / "examples"))
    if not root.is_dir():
        raise EnvironmentProblem("this installation has no example manifests",
                                 hint="reinstall flashrunner from its wheel or repository")
    return root


def list_examples() -> list[Example]:
    """Every top-level example manifest, by name."""
    found = []
    for path in sorted(examples_root().glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            data = {}
        devices = data.get("devices") if isinstance(data, dict) else None
        found.append(Example(name=path.name, path=path,
                             description=str(data.get("description", "")).strip(),
                             devices=len(devices) if isinstance(devices, dict) else 0))
    return found


def copy_examples(target: Path) -> list[Path]:
    """Copy every example, with the images and includes it uses, into ``target``.

    Raises:
        EnvironmentProblem: a file would be overwritten, or ``target`` cannot be written.
    """
    root = examples_root()
    files = [path for path in sorted(root.rglob("*"))
             if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts]
    clashes = [target / path.relative_to(root) for path in files
               if (target / path.relative_to(root)).exists()]
    if clashes:
        raise EnvironmentProblem(f"{clashes[0]} already exists; examples never overwrite a file",
                                 hint="copy them into an empty or new folder")
    copied = []
    try:
        for path in files:
            destination = target / path.relative_to(root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            copied.append(destination)
    except OSError as error:
        raise EnvironmentProblem(f"cannot copy the examples to {target}: {error.strerror}",
                                 hint="choose a folder you can write to") from error
    return copied
