"""Which class serves which link kind.

Built-in kinds are lazy ``"module:Class"`` strings, imported only when a
manifest uses them, so a missing optional dependency of one transport never
breaks the others. Third-party transports register through the entry-point
group ``flashrunner.transports`` (name = kind, value = ``module:Class``).
Kinds are manifest keys, never class names: renaming a class breaks no config.
"""

from __future__ import annotations

import importlib
from typing import cast

from transports.base import TransportClass
from transports.errors import EnvironmentProblem, PlanError

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "available_kinds", "load_transport"]

ENTRY_POINT_GROUP = "flashrunner.transports"

BUILTIN: dict[str, str] = {
    "sim": "transports.memory:MemoryTransport",
    "uart": "transports.uart:UsartTransport",
    "i2c": "transports.i2c:I2cTransport",
    "can": "transports.can:CanTransport",
    "dfu": "transports.dfu:DfuTransport",
    "stlink": "transports.stlink:StLinkTransport",
}

#: Python packages a kind needs beyond the core, to name in the error.
_EXTRA_PACKAGES: dict[str, str] = {"can": "python-can"}


def _plugins() -> dict[str, str]:
    # importlib.metadata only when a kind is not built in: it costs ~20 ms to import.
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_kinds() -> list[str]:
    """Every kind a manifest may name: built-ins and installed plugins."""
    return sorted(set(BUILTIN) | set(_plugins()))


def load_transport(kind: str) -> TransportClass:
    """Import and return the class for ``kind``.

    Raises:
        PlanError: no such kind.
        EnvironmentProblem: the kind exists but a package it needs is missing.
    """
    target = BUILTIN.get(kind) or _plugins().get(kind)
    if target is None:
        raise PlanError(f"unknown transport kind {kind!r}",
                        hint=f"use one of {', '.join(available_kinds())}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or "?"
        if missing == module_name or module_name.startswith(f"{missing}."):
            raise PlanError(f"transport kind {kind!r} is not available in this installation",
                            hint="upgrade flashrunner or install the plugin that provides it")\
                from error
        package = _EXTRA_PACKAGES.get(kind, missing)
        raise EnvironmentProblem(
            f"transport kind {kind!r} needs the Python package {package!r}, "
            f"which is not installed", hint=f"run: pip install {package}") from error
    try:
        return cast(TransportClass, getattr(module, class_name))
    except AttributeError as error:
        raise PlanError(f"transport kind {kind!r}: {target} does not exist",
                        hint="the plugin's entry point is wrong; report it to its authors")\
            from error
