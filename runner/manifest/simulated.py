"""Checks of ``simulation.devices``: quirks that fit the device's link, faults that agree.

The schema closes ``quirks`` to the keys some simulated far end knows
(``$defs/quirks``, the union) and types each one; which keys apply depends on the
far end, so here each device's quirks are checked against the quirks of its
link's kind (``$defs/quirks-<kind>``). A plugin kind reaches a simulated far end
through the endpoints it declares, and takes the quirks of the built-in kinds
that use the same endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from runner.manifest.checks import Checker, device_link, entries
from runner.manifest.structure import did_you_mean
from schemas import load_schema
from transports.base import TransportClass, simulated_endpoints

__all__ = ["check_simulated_devices", "quirks_of_kind"]

#: The built-in kinds whose simulated far end sits behind each endpoint.
_KINDS_BEHIND: Mapping[str, tuple[str, ...]] = {
    "serial_port": ("uart",), "i2c_adapter": ("i2c",), "can_bus": ("can",),
    "usb_backend": ("dfu", "stlink"), "memory_port": ("sim",),
}


@cache
def _quirk_tables() -> dict[str, frozenset[str]]:
    definitions: Mapping[str, Any] = load_schema("manifest")["$defs"]
    prefix = "quirks-"
    return {name[len(prefix):]: frozenset(spec.get("properties", {}))
            for name, spec in definitions.items()
            if name.startswith(prefix) and name != "quirks-rom"}


def quirks_of_kind(kind: str, klass: TransportClass | None = None) -> frozenset[str]:
    """The quirk keys that apply to a device on a ``kind`` link."""
    tables = _quirk_tables()
    if kind in tables:
        return tables[kind]
    if klass is None:
        return frozenset()
    return frozenset().union(*(tables.get(built_in, frozenset())
                               for endpoint in simulated_endpoints(klass)
                               for built_in in _KINDS_BEHIND.get(endpoint, ())))


def check_simulated_devices(checker: Checker, links: Mapping[str, TransportClass]) -> None:
    """Quirks against the device's link kind; ``times`` against ``permanent``."""
    simulation = checker.data.get("simulation")
    simulated = simulation.get("devices") if isinstance(simulation, dict) else None
    if not isinstance(simulated, dict):
        return
    devices = entries(checker.data, "devices")
    link_kinds = {name: link.get("kind") for name, link in entries(checker.data,
                                                                    "transports").items()}
    for name, settings in simulated.items():
        if not isinstance(settings, dict):
            continue
        _faults(checker, name, settings.get("faults"))
        link, _, _ = device_link(devices.get(name, {}))
        kind = link_kinds.get(link or "")
        quirks = settings.get("quirks")
        if isinstance(kind, str) and isinstance(quirks, dict):
            _quirks(checker, name, kind, links.get(link or ""), quirks)


def _quirks(checker: Checker, device: str, kind: str, klass: TransportClass | None,
            quirks: dict[str, Any]) -> None:
    allowed = quirks_of_kind(kind, klass)
    known = frozenset().union(*_quirk_tables().values())
    for key in quirks:
        if key in allowed or key not in known:   # an unknown key: the schema says so
            continue
        if allowed:
            listing = did_you_mean(key, allowed) or \
                f"; the quirks of kind {kind} are {', '.join(sorted(allowed))}"
        else:
            listing = f"; kind {kind} has none"
        checker.at(("simulation", "devices", device, "quirks", key),
                   f"quirk '{key}' does not apply to device {device}, whose link is of kind "
                   f"{kind}{listing}", key=True)


def _faults(checker: Checker, device: str, faults: Any) -> None:
    for index, fault in enumerate(faults if isinstance(faults, list) else ()):
        if isinstance(fault, dict) and fault.get("permanent") is True and "times" in fault:
            checker.at(("simulation", "devices", device, "faults", index, "times"),
                       "a permanent fault fires every time; drop `times` or `permanent`",
                       key=True)
