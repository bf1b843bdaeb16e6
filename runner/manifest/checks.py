"""Shared helpers of the semantic checks: a tolerant view of the merged data.

The semantic checks run even when the schema found problems, so one
validation reports a typo'd key, a dangling reference and an image outside
flash together. Every accessor here therefore skips what does not have the
expected shape instead of failing: the schema has already reported it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from runner.errors import ManifestIssue
from runner.manifest.structure import did_you_mean
from runner.manifest.yamlmarks import Marks, Path, format_path

__all__ = ["LINK_KEYS", "STEP_KINDS", "Checker", "device_link", "device_wiring", "entries",
           "steps", "write_images", "write_images_path"]

STEP_KINDS = ("erase", "write", "verify", "option-bytes", "reset", "unit-data", "read")


def entries(data: Any, section: str) -> dict[str, dict[str, Any]]:
    """The well-formed named entries of a top-level section (read-only)."""
    table = data.get(section) if isinstance(data, dict) else None
    if not isinstance(table, dict):
        return {}
    if all(isinstance(value, dict) for value in table.values()):
        return table   # the usual case; a copy would cost as much as the section's index
    return {name: value for name, value in table.items() if isinstance(value, dict)}


def steps(recipe: Any) -> Iterator[tuple[int, str, Any, dict[str, Any]]]:
    """(index, kind, settings, step mapping) of each well-formed step of a recipe."""
    if not isinstance(recipe, list):
        return
    for index, step in enumerate(recipe):
        if not isinstance(step, dict):
            continue
        kinds = [k for k in STEP_KINDS if k in step]
        if len(kinds) == 1:
            yield index, kinds[0], step[kinds[0]], step


#: The keys of a ``transports:`` entry that are not options of its transport.
LINK_KEYS = frozenset({"kind", "wiring"})


def device_wiring(name: str, device: dict[str, Any],
                  links: dict[str, dict[str, Any]]) -> tuple[Any, Path]:
    """Device ``name``'s ``wiring`` (its own, else its link's) and where it is written.

    The path is ``devices.<name>.wiring`` or ``transports.<link>.wiring``;
    ``(None, ("devices", name, "wiring"))`` for no wiring at all.
    """
    if "wiring" in device:
        return device["wiring"], ("devices", name, "wiring")
    link, _, _ = device_link(device)
    spec = links.get(link) if isinstance(link, str) else None
    if isinstance(link, str) and isinstance(spec, dict) and "wiring" in spec:
        return spec["wiring"], ("transports", link, "wiring")
    return None, ("devices", name, "wiring")


def device_link(device: dict[str, Any]) -> tuple[str | None, dict[str, Any], Path]:
    """(link name, device-level options, path of the name) of a device's ``transport``."""
    value = device.get("transport")
    if isinstance(value, str):
        return value, {}, ("transport",)
    if isinstance(value, dict) and isinstance(value.get("use"), str):
        options = {k: v for k, v in value.items() if k != "use"}
        return value["use"], options, ("transport", "use")
    return None, {}, ("transport",)


def write_images(step_value: Any) -> list[tuple[int, str]]:
    """(index, image name) of a write step, in either of its two forms."""
    names = step_value.get("images") if isinstance(step_value, dict) else step_value
    if not isinstance(names, list):
        return []
    return [(i, n) for i, n in enumerate(names) if isinstance(n, str)]


def write_images_path(step_value: Any) -> Path:
    """Where a write step's list of image names sits below its ``write`` key."""
    return ("images",) if isinstance(step_value, dict) else ()


@dataclass(slots=True)
class Checker:
    """Collects located issues about the merged document."""

    data: dict[str, Any]
    marks: Marks
    issues: list[ManifestIssue] = field(default_factory=list)

    def at(self, path: Path, message: str, *, key: bool = False) -> None:
        mark = self.marks.key(path) if key else self.marks.value(path)
        self.issues.append(ManifestIssue(file=mark.file, line=mark.line, column=mark.column,
                                         where=format_path(path), message=message))

    def reference(self, path: Path, name: Any, section: str, what: str, *,
                  owner: str) -> bool:
        """Check that ``name`` (written at ``path`` by ``owner``) names an entry of ``section``."""
        if not isinstance(name, str):
            return False
        table = self.data.get(section) if isinstance(self.data, dict) else None
        if isinstance(table, dict) and name in table:
            return True
        known = list(table) if isinstance(table, dict) else []
        if known:
            listing = did_you_mean(name, known) or f"; defined: {', '.join(known)}"
        else:
            listing = f"; the manifest has no `{section}:` section"
        self.at(path, f"{owner} uses {what} '{name}', which is not defined in "
                      f"{section}{listing}")
        return False
