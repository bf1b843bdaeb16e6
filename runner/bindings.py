"""Which inventory link each discovered device is: the links' selectors, and binding by them.

An inventory (a manifest, or a station file of ``transports:``) is read with
its ``include:`` files, resolved as the manifest loader resolves them
(:func:`runner.manifest.sources.read_sources`: relative to the including
file, under its folder), so a split inventory binds as one. Each link gives
its selectors — an ST-Link or DFU link its ``port-path`` or ``serial``, a
uart link its ``port`` (a USB tty, or its ``/dev/serial/by-path`` or ``by-id``
name; an on-board UART or a pyserial URL is not discovered), an i2c link
its ``bus``, a socketcan link its ``channel`` — and so does each device that
names its link with selectors of its own (``transport: {use: probe, port-path:
"1-4.2"}``): such a device binds the device found there to that link.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from runner.errors import PlanError
from runner.found import Found, InventoryLink

__all__ = ["FOUND_KIND", "bind", "inventory_links", "link_selectors"]

#: What a link of each kind selects: the kind of device found.
FOUND_KIND = {"stlink": "stlink", "dfu": "dfu", "uart": "serial", "i2c": "i2c", "can": "can"}
#: The serial ports of USB adapters, as the kernel and udev name them.
_USB_PORT = re.compile(r"^/dev/(tty(USB|ACM)\d+|serial/by-(path|id)/.+)$")
#: The option keys that select a device, per link kind.
_SELECTORS = {"stlink": ("serial", "port-path"), "dfu": ("serial", "port-path"),
              "uart": ("port",), "i2c": ("bus",), "can": ("channel", "interface")}


def link_selectors(name: str, kind: str, options: Mapping[str, Any], *,
                   device: str | None = None) -> InventoryLink | None:
    """The selectors of link ``name`` (with ``options``); ``None``: a kind not discovered."""
    if kind not in FOUND_KIND:
        return None
    serial = options.get("serial") if kind in ("stlink", "dfu") else None
    port_path = options.get("port-path") if kind in ("stlink", "dfu") else None
    node: str | None = None
    if kind == "uart":
        # Only ports discovery lists: an on-board UART or a URL is neither bound nor missing.
        port = str(options.get("port", ""))
        node = port if _USB_PORT.match(port) else None
    elif kind == "i2c" and options.get("bus") is not None:
        bus = str(options["bus"])
        node = bus if bus.startswith("/dev/") else f"/dev/i2c-{bus}"
    elif kind == "can" and options.get("interface") == "socketcan":
        node = str(options.get("channel", "")) or None
    return InventoryLink(name=name, kind=kind, device=device,
                         serial=None if serial is None else str(serial),
                         port_path=None if port_path is None else str(port_path), node=node)


def inventory_links(path: Path) -> list[InventoryLink]:
    """The links of ``path``'s ``transports:`` and its includes', and the devices' own selectors.

    Raises:
        PlanError: the file or an included one cannot be read or is not YAML, or
            ``transports`` is not a mapping.
    """
    from runner.manifest.sources import read_sources

    sources = read_sources(path, str(path))
    if sources.incomplete:
        # Schema remarks (a station file has no `manifest:`) do not stop discovery.
        reasons = [f"{i.file}:{i.line}: {i.message}" for i in sources.issues
                   if "required key" not in i.message]
        raise PlanError("; ".join(reasons[:3]) or f"{path}: cannot be read")
    data = sources.data
    section = data.get("transports") or {}
    if not isinstance(section, Mapping):
        raise PlanError(f"{path}: 'transports' is not a mapping of link names")
    links: list[InventoryLink] = []
    kinds: dict[str, str] = {}
    for name, spec in section.items():
        if not isinstance(spec, Mapping):
            continue
        kinds[str(name)] = str(spec.get("kind"))
        link = link_selectors(str(name), str(spec.get("kind")), spec)
        if link is not None:
            links.append(link)
    devices = data.get("devices") or {}
    for device, spec in devices.items() if isinstance(devices, Mapping) else ():
        transport = spec.get("transport") if isinstance(spec, Mapping) else None
        if not isinstance(transport, Mapping) or str(transport.get("use")) not in section:
            continue
        name = str(transport["use"])
        kind = kinds[name]
        if not any(key in transport for key in _SELECTORS.get(kind, ())):
            continue  # the link's own selectors apply
        own = link_selectors(name, kind, {**section[name], **transport}, device=str(device))
        if own is not None:
            links.append(own)
    return links


def bind(found: list[Found], links: Sequence[InventoryLink]
         ) -> tuple[list[Found], list[InventoryLink]]:
    """Name each device after the link that selects it; list links that select nothing.

    A link with a port path binds by it alone; a uart, i2c or can link by its
    node (the tty or its ``/dev/serial/by-path`` name, ``/dev/i2c-N``, the
    socketcan channel); a link with only a serial binds the one device of its
    kind with that serial (several: it binds none, and the ambiguity is
    flagged). A link with none of these selects "the only one" and is not
    bound to a device. A device's own selectors bind after the links' own.
    """
    names: dict[int, InventoryLink] = {}
    missing: list[InventoryLink] = []
    for link in sorted(links, key=lambda one: one.device is not None):
        kind = FOUND_KIND.get(link.kind)
        same = [(i, f) for i, f in enumerate(found) if f.kind == kind]
        if link.port_path:
            hits = [i for i, f in same if f.port_path == link.port_path]
        elif link.node:
            hits = [i for i, f in same if link.node in (f.node, f.by_path, f.by_id)]
        elif link.serial:
            hits = [i for i, f in same if f.serial.upper() == link.serial.upper()]
        else:
            continue
        if not hits:
            missing.append(link)
        elif len(hits) == 1:
            names.setdefault(hits[0], link)
    bound = [f if i not in names else replace(f, link=names[i].name,
                                               link_device=names[i].device)
             for i, f in enumerate(found)]
    return bound, missing
