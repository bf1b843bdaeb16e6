"""``flashrunner discover``'s output: the table, and ``--json`` with stable field names."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from runner.found import Discovery, Flag, Found, InventoryLink, Region

__all__ = ["JSON_VERSION", "as_json", "from_json", "render_json", "render_table"]

#: Bumped when a field of ``--json`` changes meaning or goes away (new fields and
#: new kinds do not bump it).
JSON_VERSION = 1


def _vcp_of(item: Found, result: Discovery) -> str:
    probe = next((f for f in result.devices if f.kind == "stlink"
                  and f.port_path == item.port_path), None)
    text = f"VCP of {probe.model if probe else 'ST-Link'} {item.vcp_of}"
    return text + (f" (link {probe.link})" if probe is not None and probe.link else "")


def _details(item: Found, result: Discovery) -> str:
    parts: list[str] = []
    if item.kind == "stlink":
        parts.append(item.model)
        if item.firmware:
            parts.append(f"firmware {item.firmware}")
        if item.target_voltage is not None:
            parts.append(f"target {item.target_voltage:.2f} V")
        if item.vcp:
            parts.append(f"VCP {item.vcp}")
    elif item.kind == "dfu":
        parts.append(item.product or "(no product string)")
        parts.extend(str(region) for region in item.regions)
    elif item.kind == "serial":
        parts.extend([item.node or "", item.product])
        if item.interface is not None:
            parts.append(f"interface {item.interface}")
        if item.by_path:
            parts.append(item.by_path)
        if item.vcp_of is not None:
            parts.append(_vcp_of(item, result))
    elif item.kind == "i2c":
        parts.append(f"{item.node} {item.adapter_name or ''}".rstrip())
        if item.parent:
            parts.append(f"parent {item.parent}")
        if item.plain_i2c is not None:
            parts.append("plain I2C" if item.plain_i2c else "SMBus only")
    elif item.kind == "can":
        parts.append(f"{item.node} {item.operstate or 'state unknown'}")
        parts.append(f"bitrate {item.bitrate}" if item.bitrate else "bitrate unknown")
        if item.on_usb:
            parts.append(item.product)
    else:
        parts.append(item.product or "hub")
        if item.hub_ports is not None:
            parts.append(f"{item.hub_ports} ports")
        if item.power_switching:
            parts.append(f"power switching {item.power_switching}")
    parts.extend(item.problems)
    return "; ".join(p for p in parts if p)


def _hub(item: Found) -> str:
    if not item.hub:
        return "-"
    hub = item.hub if item.hub_port is None else f"{item.hub} port {item.hub_port}"
    return hub + (f" ({item.hub_power_switching})" if item.hub_power_switching else "")


def _link(item: Found) -> str:
    if item.link is None:
        return "-"
    return item.link if item.link_device is None else f"{item.link} ({item.link_device})"


def _missing(link: InventoryLink) -> str:
    whose = "" if link.device is None else f"device {link.device}: "
    return (f"? link {link.name} ({link.kind}, {whose}{link.selector}): "
            f"no such device attached")


def render_table(result: Discovery) -> str:
    """The human table, flags and missing links after it."""
    if not result.devices:
        lines = ["no ST-Link probe, ROM DFU device, hub or serial/I2C/CAN adapter found"]
    else:
        rows = [("PORT", "KIND", "VID:PID", "SERIAL", "HUB", "LINK", "DETAILS")]
        for item in result.devices:
            rows.append((item.port_path or "-", item.kind,
                         item.usb_id if item.on_usb else "-", item.serial or "-", _hub(item),
                         _link(item), _details(item, result)))
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
                 + "  " + row[6] for row in rows]
    lines.extend(f"! {flag.message}" for flag in result.flags)
    lines.extend(_missing(link) for link in result.missing)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _device(item: Found) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": item.kind, "port_path": item.port_path or None,
        "usb_id": item.usb_id if item.on_usb else None,
        "serial": item.serial, "product": item.product, "hub": item.hub or None,
        "hub_port": item.hub_port, "hub_power_switching": item.hub_power_switching,
        "link": item.link, "link_device": item.link_device, "problems": list(item.problems)}
    if item.kind == "stlink":
        data.update(model=item.model, firmware=item.firmware,
                    target_voltage=item.target_voltage, vcp=item.vcp)
    elif item.kind == "dfu":
        data["regions"] = [{"alternate": r.alternate, "name": r.name,
                            "start": f"0x{r.start:08X}", "size": r.size,
                            "sectors": r.sectors} for r in item.regions]
    elif item.kind == "hub":
        data.update(power_switching=item.power_switching, ports=item.hub_ports)
    elif item.kind == "serial":
        data.update(node=item.node, by_path=item.by_path, by_id=item.by_id,
                    interface=item.interface, vcp_of=item.vcp_of)
    elif item.kind == "i2c":
        data.update(node=item.node, name=item.adapter_name, parent=item.parent,
                    plain_i2c=item.plain_i2c,
                    functionality=None if item.functionality is None
                    else f"0x{item.functionality:08X}")
    elif item.kind == "can":
        data.update(node=item.node, interface=item.interface, operstate=item.operstate,
                    bitrate=item.bitrate)
    return data


def as_json(result: Discovery) -> dict[str, Any]:
    """``--json``: stable field names (``JSON_VERSION`` changes when one changes meaning)."""
    return {"discover": JSON_VERSION,
            "devices": [_device(item) for item in result.devices],
            "flags": [{"problem": f.problem, "serial": f.serial, "node": f.node,
                       "port_paths": list(f.port_paths), "message": f.message}
                      for f in result.flags],
            "missing": [{"link": link.name, "kind": link.kind, "device": link.device,
                         "serial": link.serial, "port_path": link.port_path, "node": link.node}
                        for link in result.missing]}


#: JSON names :func:`as_json` gives fields of :class:`Found` under another name.
_RENAMED = {"ports": "hub_ports", "name": "adapter_name"}


def _found(entry: Mapping[str, Any]) -> Found:
    names = {f.name for f in fields(Found)}
    values = {_RENAMED.get(k, k): v for k, v in entry.items() if _RENAMED.get(k, k) in names}
    vid, _, pid = str(entry.get("usb_id") or "0:0").partition(":")
    functionality = entry.get("functionality")
    values.update(vid=int(vid, 16), pid=int(pid, 16),
                  port_path=entry.get("port_path") or "", hub=entry.get("hub") or "",
                  problems=tuple(entry.get("problems", ())),
                  functionality=None if functionality is None else int(functionality, 16),
                  regions=tuple(Region(alternate=r["alternate"], name=r["name"],
                                       start=int(r["start"], 16), size=r["size"],
                                       sectors=r["sectors"])
                                for r in entry.get("regions", ())))
    return Found(**values)


def from_json(document: Mapping[str, Any]) -> Discovery:
    """The :class:`Discovery` an :func:`as_json` document describes (a station's report).

    Device fields are taken by their name in :class:`Found` (the JSON names
    are the field names, but for those :func:`as_json` renames or formats).
    """
    return Discovery(
        devices=tuple(_found(entry) for entry in document.get("devices", ())),
        flags=tuple(Flag(problem=f["problem"], serial=f["serial"], node=f.get("node"),
                         port_paths=tuple(f["port_paths"]), message=f["message"])
                    for f in document.get("flags", ())),
        missing=tuple(InventoryLink(name=m["link"], kind=m["kind"], serial=m.get("serial"),
                                    port_path=m.get("port_path"), node=m.get("node"),
                                    device=m.get("device"))
                      for m in document.get("missing", ())))


def render_json(result: Discovery) -> str:
    return json.dumps(as_json(result), indent=2) + "\n"
