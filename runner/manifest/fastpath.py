"""A quick structural check for the plain device entries of a large line.

A production line lists thousands of devices that all look alike
(``{chip: …, transport: …, recipe: …, after: […]}``); running each through
the general JSON Schema validator costs most of ``validate`` at 50,000
devices. :func:`plainly_valid` accepts an entry only when it is certainly
valid against the manifest schema's ``device`` definition (known keys, text
where text is asked, the name's pattern); everything else, and every entry
whenever the schema's device definitions are not the shape this check was
written for, goes through the full validator and its located messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from schemas import load_schema

__all__ = ["PlainDevices", "plain_devices"]

#: The device definition this check mirrors: key → "text" (non-empty), "name" or "names";
#: "full" keys (a device's wiring) always go through the full validator.
_KNOWN = {"chip": "text", "transport": "text", "recipe": "name", "station": "name",
          "recovery": "name", "after": "names", "wiring": "full"}
_REQUIRED = frozenset({"chip", "transport", "recipe"})


class PlainDevices:
    """Decides quickly for device entries, for one version of the schema."""

    def __init__(self, pattern: re.Pattern[str], max_length: int) -> None:
        self.pattern = pattern
        self.max_length = max_length

    def name_ok(self, name: object) -> bool:
        return isinstance(name, str) and len(name) <= self.max_length \
            and self.pattern.match(name) is not None

    def plainly_valid(self, name: object, entry: object) -> bool:
        """True only if ``entry`` under key ``name`` is valid (False: ask the validator)."""
        if not isinstance(entry, dict) or not self.name_ok(name) \
                or not _REQUIRED.issubset(entry):
            return False
        for key, value in entry.items():
            kind = _KNOWN.get(key)
            if kind is None or kind == "full":
                return False
            if kind == "names":
                if not isinstance(value, list) \
                        or not all(type(item) is str for item in value) \
                        or len(set(value)) != len(value):
                    return False
            elif type(value) is not str or (kind == "text" and not value):
                return False
        return True


@cache
def plain_devices() -> PlainDevices | None:
    """The quick check, or None when the schema's device definitions changed shape."""
    defs = load_schema("manifest")["$defs"]
    devices, device, name = defs.get("devices"), defs.get("device"), defs.get("element-name")
    expected_devices = {"type": "object", "propertyNames": {"$ref": "#/$defs/element-name"},
                        "additionalProperties": {"$ref": "#/$defs/device"}}
    if devices != expected_devices or not isinstance(device, Mapping) \
            or not isinstance(name, Mapping):
        return None
    if set(device) != {"type", "additionalProperties", "required", "properties"} \
            or device["additionalProperties"] is not False \
            or set(device["required"]) != _REQUIRED or set(device["properties"]) != set(_KNOWN):
        return None
    properties: Mapping[str, Any] = device["properties"]
    text = {"type": "string", "minLength": 1}
    if properties["chip"] != text or properties["transport"].get("oneOf", [None])[0] != text:
        return None
    for key in ("recipe", "station", "recovery"):
        if {k: v for k, v in properties[key].items() if k != "description"} \
                != {"type": "string"}:
            return None
    after = {k: v for k, v in properties["after"].items() if k != "description"}
    if after != {"type": "array", "uniqueItems": True, "items": {"type": "string"}}:
        return None
    if set(name) != {"type", "pattern", "maxLength"} or name["type"] != "string":
        return None
    return PlainDevices(re.compile(name["pattern"]), int(name["maxLength"]))
