"""Semantic checks that need only the manifest itself.

Every reference resolves (device → link, recipe, recovery; step → image and
recovery; ``after`` → device; ``simulation.devices`` → device), ``after`` has
no cycle, and each recipe is in an order that makes sense:

* a write step names each image once;
* ``verify`` before any ``write`` is an error — there is nothing to compare
  against yet, and such a recipe is almost always steps in the wrong order;
* ``option-bytes: {rdp: 2}`` needs ``confirm: irreversible`` (level 2
  disables the debug port and the bootloader for good).
"""

from __future__ import annotations

import string
from typing import Any

from runner.manifest.checks import (
    Checker,
    device_link,
    entries,
    steps,
    write_images,
    write_images_path,
)
from runner.manifest.yamlmarks import Path

__all__ = ["check_references"]

LOG_FIELDS = ("name", "run_id", "date", "time")


def check_references(checker: Checker) -> None:
    data = checker.data
    for name, device in entries(data, "devices").items():
        _device(checker, name, device)
    recipes = data.get("recipes")
    for name, recipe in recipes.items() if isinstance(recipes, dict) else ():
        _recipe(checker, name, recipe)
    _after_cycles(checker)
    simulation = data.get("simulation")
    simulated = simulation.get("devices") if isinstance(simulation, dict) else None
    if isinstance(simulated, dict):
        for name in simulated:
            checker.reference(("simulation", "devices", name), name, "devices", "device",
                              owner="simulation.devices")
    _log(checker, data.get("log"))


def _device(checker: Checker, name: str, device: dict[str, Any]) -> None:
    base: Path = ("devices", name)
    owner = f"device {name}"
    link, _, link_path = device_link(device)
    checker.reference((*base, *link_path), link, "transports", "transport", owner=owner)
    checker.reference((*base, "recipe"), device.get("recipe"), "recipes", "recipe", owner=owner)
    if "recovery" in device:
        checker.reference((*base, "recovery"), device["recovery"], "recovery",
                          "recovery policy", owner=owner)
    after = device.get("after")
    if isinstance(after, list):
        for index, other in enumerate(after):
            if other == name:
                checker.at((*base, "after", index),
                           f"device {name} cannot come after itself; remove it from `after`")
            else:
                checker.reference((*base, "after", index), other, "devices", "device",
                                  owner=f"device {name}'s `after`")


def _recipe(checker: Checker, name: str, recipe: Any) -> None:
    written = False
    for index, kind, value, step in steps(recipe):
        base: Path = ("recipes", name, index)
        owner = f"step {index + 1} of recipe {name}"
        if "recovery" in step:
            checker.reference((*base, "recovery"), step["recovery"], "recovery",
                              "recovery policy", owner=owner)
        if kind == "write":
            seen: set[str] = set()
            images_at = (*base, "write", *write_images_path(value))
            for item, image in write_images(value):
                if image in seen:
                    checker.at((*images_at, item), f"image '{image}' is written twice by "
                                                   f"this step; list it once")
                    continue
                seen.add(image)
                checker.reference((*images_at, item), image, "images", "image", owner=owner)
            written = True
        elif kind == "unit-data":
            written = True
        elif kind == "verify" and isinstance(value, dict) and "images" in value:
            for item, image in write_images(value):
                checker.reference((*base, "verify", "images", item), image, "images", "image",
                                  owner=owner)
        elif kind == "verify" and not written:
            checker.at((*base, "verify"), f"recipe {name} verifies before it writes anything; "
                                          f"move `verify` after a `write` step, or name the "
                                          f"images to compare (`verify: {{images: [...]}}`)",
                       key=True)
        elif kind == "option-bytes" and isinstance(value, dict) and value.get("rdp") == 2 \
                and value.get("confirm") != "irreversible":
            checker.at((*base, "option-bytes", "rdp"),
                       "rdp: 2 locks the chip for good (no debug, no bootloader, no way back); "
                       "add `confirm: irreversible` to this step if that is really meant")


def _after_cycles(checker: Checker) -> None:
    """Name each cycle of ``after`` once (depth first, iterative: chains may be long)."""
    devices = entries(checker.data, "devices")

    def waits_for(name: str) -> list[str]:   # read as the walk goes: no copy of the graph
        after = devices[name].get("after")
        if not isinstance(after, list):
            return []
        return [o for o in after if isinstance(o, str) and o in devices and o != name]

    reported: set[frozenset[str]] = set()
    state: dict[str, int] = {}   # 1: on the current path, 2: done
    for root in devices:
        if root in state:
            continue
        path: list[str] = [root]
        pending: list[list[str]] = [list(reversed(waits_for(root)))]
        state[root] = 1
        while path:
            if not pending[-1]:
                state[path.pop()] = 2
                pending.pop()
                continue
            other = pending[-1].pop()
            if state.get(other) == 1:
                ring = path[path.index(other):]
                if frozenset(ring) not in reported:
                    reported.add(frozenset(ring))
                    _report_cycle(checker, devices, ring)
            elif other not in state:
                state[other] = 1
                path.append(other)
                pending.append(list(reversed(waits_for(other))))


def _report_cycle(checker: Checker, devices: dict[str, dict[str, Any]], ring: list[str]) -> None:
    start = ring[0]
    index = devices[start]["after"].index(ring[1])
    shown = " → ".join([*ring, start])
    checker.at(("devices", start, "after", index),
               f"devices wait for each other in a cycle: {shown} (each comes after the "
               f"next); remove one of these `after` entries")


def _log(checker: Checker, log: Any) -> None:
    """Log file placeholders: the documented ones, plain (`{name}`, not `{name:>9}`)."""
    if not isinstance(log, dict) or not isinstance(log.get("file"), str):
        return
    try:
        parts = list(string.Formatter().parse(log["file"]))
    except ValueError as error:
        checker.at(("log", "file"), f"log file template is malformed ({error}); "
                                    f"write placeholders as {{name}}")
        return
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in LOG_FIELDS:
            checker.at(("log", "file"), f"unknown placeholder {{{field}}} in the log file "
                                        f"template; use {', '.join(LOG_FIELDS)}")
        elif spec or conversion:
            checker.at(("log", "file"), f"placeholder {{{field}}} of the log file template "
                                        f"takes no format or conversion; write {{{field}}}")
