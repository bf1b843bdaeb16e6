"""Which class serves which link kind, and whether a plugin's class may.

Built-in kinds are lazy ``"module:Class"`` strings, imported only when a
manifest uses them, so a missing optional dependency of one transport never
breaks the others. Third-party transports register through the entry-point
group ``flashrunner.transports`` (name = kind, value = ``module:Class``).
Kinds are manifest keys, never class names: renaming a class breaks no config.

A plugin is checked when it is loaded (:func:`check_transport_class`): one that
fails to import, or whose class lacks part of the contract, is a
:class:`PluginProblem` naming the kind, the distribution and what is wrong. It
is reported by ``flashrunner transports`` and, for a manifest that uses it, as
that link's error; every other kind keeps working. A plugin registering a
built-in kind's name is reported too, and the built-in is used.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from transports.base import Capability, TransportClass
from transports.endpoints import Endpoints
from transports.errors import EnvironmentProblem, PlanError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "BUILTIN",
    "ENDPOINT_NAMES",
    "ENTRY_POINT_GROUP",
    "PluginProblem",
    "available_kinds",
    "check_transport_class",
    "load_transport",
    "plugin_problems",
]

ENTRY_POINT_GROUP = "flashrunner.transports"

BUILTIN: dict[str, str] = {
    "sim": "transports.memory:MemoryTransport",
    "uart": "transports.uart:UsartTransport",
    "i2c": "transports.i2c:I2cTransport",
    "can": "transports.can:CanTransport",
    "dfu": "transports.dfu:DfuTransport",
    "stlink": "transports.stlink:StLinkTransport",
}

if TYPE_CHECKING:   # mypy checks every built-in against the contract; nothing is imported
    from transports.can import CanTransport
    from transports.dfu import DfuTransport
    from transports.i2c import I2cTransport
    from transports.memory import MemoryTransport
    from transports.stlink import StLinkTransport
    from transports.uart import UsartTransport

    _CONFORMING: tuple[TransportClass, ...] = (
        MemoryTransport, UsartTransport, I2cTransport, CanTransport, DfuTransport,
        StLinkTransport)

#: Python packages a kind needs beyond the core, to name in the error.
_EXTRA_PACKAGES: dict[str, str] = {"can": "python-can"}

#: What a class may name in ``simulation``: the endpoint provider's methods.
ENDPOINT_NAMES = frozenset(name for name in vars(Endpoints) if not name.startswith("_"))

#: Class methods every transport class must have (the base class provides them).
_REQUIRED_METHODS = ("open", "speed_model", "resource_key")


@dataclass(frozen=True, slots=True, kw_only=True)
class PluginProblem:
    """Why the plugin registered for ``kind`` is not used.

    ``shadowed``: another class serves the kind (a built-in, or a plugin found
    first), so this one is never loaded.
    """

    kind: str
    distribution: str
    target: str
    problem: str
    shadowed: bool = False

    def __str__(self) -> str:
        return f"plugin {self.kind!r} ({self.target}, from {self.distribution}): {self.problem}"


@cache
def _entry_points() -> tuple[EntryPoint, ...]:
    # Only when a kind is not built in: scanning every installed distribution's
    # metadata costs ~20 ms. Once per process: installing a plugin needs a restart.
    from importlib.metadata import entry_points

    return tuple(entry_points(group=ENTRY_POINT_GROUP))


def _plugins() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for entry in _entry_points():
        found.setdefault(entry.name, entry)
    return found


def _distribution(entry: EntryPoint) -> str:
    dist = entry.dist
    if dist is None:
        return "an unknown distribution"
    return f"{dist.name} {dist.version}"


def available_kinds() -> list[str]:
    """Every kind a manifest may name: built-ins and installed plugins."""
    return sorted(set(BUILTIN) | set(_plugins()))


def check_transport_class(klass: object, kind: str) -> list[str]:
    """What ``klass`` lacks to serve ``kind`` (empty: it conforms).

    Checks the parts of :class:`~transports.base.TransportClass` the runner relies
    on before any I/O: the kind's name, a valid closed options schema, the
    capability set, the declared simulation endpoints, and the class methods.
    """
    if not inspect.isclass(klass):
        return [f"{klass!r} is not a class"]
    problems: list[str] = []
    declared = getattr(klass, "kind", None)
    if not isinstance(declared, str):
        problems.append("has no `kind` class attribute (the manifest's kind, a string)")
    elif declared != kind:
        problems.append(f"declares kind {declared!r} but is registered as {kind!r}")
    problems += _schema_problems(getattr(klass, "options_schema", None))
    capabilities = getattr(klass, "capabilities", None)
    if not isinstance(capabilities, (set, frozenset)) \
            or not all(isinstance(c, Capability) for c in capabilities):
        problems.append("`capabilities` must be a frozenset of transports.base.Capability")
    simulation: object = getattr(klass, "simulation", frozenset())
    if not isinstance(simulation, (set, frozenset)) \
            or not all(isinstance(name, str) for name in simulation):
        problems.append("`simulation` must be a frozenset of endpoint names (empty: the "
                        "kind cannot be simulated)")
    else:
        unknown = sorted(str(name) for name in simulation if name not in ENDPOINT_NAMES)
        if unknown:
            problems.append(f"`simulation` names endpoints the provider does not have: "
                            f"{', '.join(unknown)} (it has {', '.join(sorted(ENDPOINT_NAMES))})")
    for method in _REQUIRED_METHODS:
        if not callable(getattr(klass, method, None)):
            problems.append(f"has no `{method}` class method")
    if inspect.isabstract(klass):
        missing = sorted(getattr(klass, "__abstractmethods__", ()))
        problems.append(f"does not implement {', '.join(missing)}")
    return problems


def _schema_problems(schema: Any) -> list[str]:
    if schema is None:
        return ["has no `options_schema` (a JSON Schema of its options)"]
    if not isinstance(schema, Mapping):
        return ["`options_schema` must be a mapping (a JSON Schema object)"]
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(dict(schema))
    except jsonschema.SchemaError as error:
        return [f"`options_schema` is not a valid JSON Schema: {error.message}"]
    if schema.get("type") != "object":
        return ['`options_schema` must describe an object ("type": "object")']
    return []


def _load_plugin(kind: str, entry: EntryPoint) -> TransportClass | PluginProblem:
    def problem(text: str) -> PluginProblem:
        return PluginProblem(kind=kind, distribution=_distribution(entry), target=entry.value,
                             problem=text)

    try:
        klass = entry.load()
    except ImportError as error:
        return problem(f"cannot be imported: {error}")
    except AttributeError as error:
        return problem(f"its entry point names nothing importable: {error}")
    except Exception as error:  # a third party's import-time code may raise anything
        return problem(f"raised {type(error).__name__} while importing: {error}")
    found = check_transport_class(klass, kind)
    if found:
        return problem("; ".join(found))
    return cast(TransportClass, klass)


def plugin_problems() -> list[PluginProblem]:
    """Load every installed plugin and say which cannot be used, and why.

    A plugin that registers a built-in kind is listed too (the built-in is used), and
    so is the second of two plugins registering one kind (the first is used).
    """
    problems: list[PluginProblem] = []
    used = _plugins()
    for entry in _entry_points():
        if used.get(entry.name) != entry:
            problems.append(PluginProblem(
                kind=entry.name, distribution=_distribution(entry), target=entry.value,
                problem=f"{_distribution(used[entry.name])} registers kind {entry.name!r} "
                        f"too, and is the one used", shadowed=True))
            continue
        if entry.name in BUILTIN:
            problems.append(PluginProblem(
                kind=entry.name, distribution=_distribution(entry), target=entry.value,
                problem=f"registers the built-in kind {entry.name!r}; the built-in is used "
                        f"(rename the plugin's kind)", shadowed=True))
            continue
        loaded = _load_plugin(entry.name, entry)
        if isinstance(loaded, PluginProblem):
            problems.append(loaded)
    return problems


def load_transport(kind: str) -> TransportClass:
    """Import and return the class for ``kind``; a built-in wins over a plugin.

    Raises:
        PlanError: no such kind, or its plugin is broken or does not conform.
        EnvironmentProblem: the kind exists but a package it needs is missing.
    """
    target = BUILTIN.get(kind)
    if target is None:
        entry = _plugins().get(kind)
        if entry is None:
            raise PlanError(f"unknown transport kind {kind!r}",
                            hint=f"use one of {', '.join(available_kinds())}")
        loaded = _load_plugin(kind, entry)
        if isinstance(loaded, PluginProblem):
            raise PlanError(f"transport kind {kind!r} cannot be used: {loaded}",
                            hint=f"fix or reinstall {loaded.distribution}, or report it to "
                                 f"its authors")
        return loaded
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or "?"
        if missing == module_name or module_name.startswith(f"{missing}."):
            raise PlanError(f"transport kind {kind!r} is not available in this installation",
                            hint="upgrade flashrunner or reinstall it") from error
        package = _EXTRA_PACKAGES.get(kind, missing)
        raise EnvironmentProblem(
            f"transport kind {kind!r} needs the Python package {package!r}, "
            f"which is not installed", hint=f"run: pip install {package}") from error
    return cast(TransportClass, getattr(module, class_name))
