"""Warnings about a valid manifest: things that run, but probably not as meant.

* a recipe that writes flash (``write`` or ``unit-data``) with no ``verify``
  after it: the run would report ok over flash nobody compared with the image;
* a recovery policy that nothing uses: only a policy named exactly ``default``
  applies without being named, so ``DEFAULT`` or ``defualt`` silently never
  applies (README "Recovery policies").
"""

from __future__ import annotations

from runner.errors import ManifestIssue
from runner.manifest.checks import Checker, entries, steps
from runner.manifest.yamlmarks import format_path

__all__ = ["manifest_warnings"]

#: The policy that applies to every device and step that names none.
DEFAULT_POLICY = "default"


def manifest_warnings(checker: Checker) -> list[ManifestIssue]:
    """The warnings about the (valid) document ``checker`` holds."""
    warnings: list[ManifestIssue] = []

    def warn(path: tuple[str | int, ...], message: str) -> None:
        mark = checker.marks.key(path)
        warnings.append(ManifestIssue(file=mark.file, line=mark.line, column=mark.column,
                                      where=format_path(path), message=message))

    recipes = checker.data.get("recipes")
    used: set[str] = set()
    for name, recipe in recipes.items() if isinstance(recipes, dict) else ():
        unverified: tuple[int, str] | None = None
        for index, kind, _, step in steps(recipe):
            if isinstance(step.get("recovery"), str):
                used.add(step["recovery"])
            if kind in ("write", "unit-data"):
                unverified = unverified or (index, kind)
            elif kind == "verify":
                unverified = None
        if unverified is not None:
            index, kind = unverified
            warn(("recipes", name, index, kind),
                 f"recipe {name} writes flash (step {index + 1}) and does not verify it "
                 f"afterwards: a run reports ok without comparing the flash with the image; "
                 f"add `- verify: {{}}` after the last write")
    for device in entries(checker.data, "devices").values():
        if isinstance(device.get("recovery"), str):
            used.add(device["recovery"])
    for name in entries(checker.data, "recovery"):
        if name == DEFAULT_POLICY or name in used:
            continue
        hint = (f"; only a policy named exactly `{DEFAULT_POLICY}` applies without being "
                f"named: rename it `{DEFAULT_POLICY}`" if name.lower() == DEFAULT_POLICY
                else f"; name it in a device's or step's `recovery:`, or rename it "
                     f"`{DEFAULT_POLICY}` to apply it everywhere")
        warn(("recovery", name), f"recovery policy {name} is not used by any device or "
                                 f"step{hint}")
    return warnings
