"""Semantic checks of hardware control: ``power:`` supplies and each device's ``wiring``.

* a ``wiring.power`` / ``probe-power`` entry names a defined supply; ``auto``
  needs a link with a ``port-path`` (the port the probe or ROM DFU board hangs
  off) and cannot be the target's supply of an ST-Link (its target is fed from
  elsewhere);
* a command supply's argv templates use only the documented fields;
* a recovery action a device's policies use must be possible on its wiring
  (``a|b``: at least one of them), so a ladder never reaches an action it cannot
  take;
* one GPIO line is not both BOOT0 and NRST.
"""

from __future__ import annotations

from typing import Any

from runner.manifest.checks import Checker, device_link, device_wiring, entries, steps
from runner.manifest.yamlmarks import Path as DataPath
from transports.power.command import check_template

__all__ = ["check_wiring"]

_NEEDS = {"nrst-pulse": "wiring.nrst", "boot-entry": "wiring.nrst and wiring.boot0",
          "power-cycle": "wiring.power", "probe-power-cycle": "wiring.probe-power"}
_OFFERED = {"nrst-pulse": ("nrst",), "boot-entry": ("nrst", "boot0"),
            "power-cycle": ("power",), "probe-power-cycle": ("probe-power",)}


def check_wiring(checker: Checker) -> None:
    for name, supply in entries(checker.data, "power").items():
        if supply.get("kind") == "command":
            for key in ("off", "on", "state"):
                argv = supply.get(key)
                if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
                    try:
                        check_template(argv)
                    except ValueError as error:
                        checker.at(("power", name, key), str(error))
    transports = entries(checker.data, "transports")
    policies = entries(checker.data, "recovery")
    for name, device in entries(checker.data, "devices").items():
        wiring, at = device_wiring(name, device, transports)
        wiring = wiring if isinstance(wiring, dict) else {}
        link, options, _ = device_link(device)
        link_spec = transports.get(link, {}) if isinstance(link, str) else {}
        for key in ("power", "probe-power"):
            _power(checker, name, (*at, key), wiring.get(key), {**link_spec, **options})
        nrst, boot0 = wiring.get("nrst"), wiring.get("boot0")
        if isinstance(nrst, dict) and isinstance(boot0, dict) and \
                (nrst.get("chip"), nrst.get("line")) == (boot0.get("chip"), boot0.get("line")):
            checker.at((*at, "boot0"), "BOOT0 and NRST are on the same GPIO line")
        _ladders(checker, name, device, wiring, policies)


def _power(checker: Checker, device: str, at: DataPath, ref: Any, link: dict[str, Any]) -> None:
    key = str(at[-1])
    if ref == "auto":
        if not link.get("port-path"):
            checker.at(at, f"{key}: auto takes the hub port from the link's port-path, and "
                           f"device {device}'s link has none; name the port ({{use: <supply>, "
                           f"port: N}}) or set port-path on the link")
        elif key == "power" and link.get("kind") == "stlink":
            checker.at(at, "power: auto would cut the ST-Link's own port, not the target's "
                           "supply; use probe-power: auto for that, and name the target's "
                           "supply as {use: <supply>, port: N}")
        return
    if isinstance(ref, dict):
        checker.reference((*at, "use"), ref.get("use"), "power", "power supply",
                          owner=f"device {device}")


def _policies_of(checker: Checker, spec: dict[str, Any], policies: dict[str, Any]) -> list[str]:
    """The policies that can govern a device's steps: its own (or ``default``), its steps'."""
    own = spec.get("recovery")
    names = [own] if isinstance(own, str) else (["default"] if "default" in policies else [])
    recipes = checker.data.get("recipes") if isinstance(checker.data, dict) else None
    recipe_name = spec.get("recipe")
    # Any shape may stand here in a manifest being validated: the schema reports it.
    recipe = recipes.get(recipe_name) if isinstance(recipes, dict) \
        and isinstance(recipe_name, str) else None
    for _, _, _, step in steps(recipe):
        if isinstance(step.get("recovery"), str):
            names.append(step["recovery"])
    return list(dict.fromkeys(names))


def _ladders(checker: Checker, device: str, spec: dict[str, Any], wiring: dict[str, Any],
             policies: dict[str, Any]) -> None:
    for policy_name in _policies_of(checker, spec, policies):
        policy = policies.get(policy_name)
        if not isinstance(policy, dict):
            continue
        for index, entry in enumerate(policy.get("actions") or ()):
            if not isinstance(entry, str):
                continue
            choices = entry.split("|")
            if any(all(key in wiring for key in _OFFERED.get(choice, ())) for choice in choices):
                continue
            needs = " or ".join(_NEEDS.get(choice, choice) for choice in choices)
            checker.at(("recovery", policy_name, "actions", index),
                       f"device {device} uses recovery policy {policy_name}, whose action "
                       f"{entry!r} needs {needs}, and the device is not wired for it")
