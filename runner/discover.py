"""What is plugged in: ST-Link probes, ROM DFU devices and USB hubs, keyed by port path.

``flashrunner discover`` walks the USB bus with pyusb on the backend the
endpoint provider gives (libusb on a bench, the simulated bus of a rehearsal:
docs/architecture.md, "The endpoint seam"), so it sees exactly what a run
would. Every device is keyed by its USB **port path** (``1-4.2``), which is
stable while the cabling is; serials are reported, normalised as the links
compare them, but never trusted to be unique: one serial at two paths, ROM
DFU serials that collide (48 bits of the UID) and clone serials (all zeros,
a short pattern repeated) are flagged, not guessed around.

Nothing is written to any device. A probe is opened only to read its firmware
version and the target voltage (GET_VERSION, GET_TARGET_VOLTAGE); a DFU
device only to read its descriptors and strings.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from runner.errors import PlanError, RunnerError
from runner.inputs import MANIFEST_LIMIT, read_input
from transports import usb as shared
from transports.dfu.layout import parse_layout
from transports.dfu.usb import read_description
from transports.endpoints import WALL_CLOCK
from transports.power.usbhub import read_descriptor
from transports.stlink.protocol import StLink
from transports.stlink.usb import PROBE_KINDS, ST_VID, BulkFraming, UsbPipe, normalise_serial
from transports.stlink.usb import ProbeCandidate as _ProbeCandidate

__all__ = ["DFU_PID", "Discovery", "Flag", "Found", "InventoryLink", "Region",
           "as_json", "clone_pattern", "discover", "from_json", "inventory_links", "render_json",
           "render_table"]

#: The ST ROM bootloader's DFU identity (AN3156).
DFU_PID = 0xDF11
#: bDeviceClass of a USB hub (USB 2.0 §11.23.1).
HUB_CLASS = 0x09
#: Bumped when a field of ``--json`` changes meaning or goes away.
JSON_VERSION = 1

_NAMES = shared.LinkNames(link="discover", device="-")


@dataclass(frozen=True, slots=True, kw_only=True)
class Region:
    """One alternate setting of a DFU device, its layout string decoded."""

    alternate: int
    name: str
    start: int
    size: int
    sectors: int

    def __str__(self) -> str:
        return f"alt {self.alternate} {self.name} 0x{self.start:08X} {_size(self.size)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    """One device on the bus."""

    kind: str  # "stlink", "dfu", "hub"
    port_path: str
    vid: int
    pid: int
    serial: str
    product: str
    #: The hub the device hangs off (``usb<bus>`` for a root port) and its port there.
    hub: str
    hub_port: int | None
    model: str = ""
    firmware: str | None = None
    target_voltage: float | None = None
    regions: tuple[Region, ...] = ()
    #: Hubs: how they switch port power ("per-port", "ganged", "none"), when known.
    power_switching: str | None = None
    hub_ports: int | None = None
    #: How the hub this device hangs off switches port power (when that hub was found).
    hub_power_switching: str | None = None
    #: The inventory link bound to this device (by port path, else by serial).
    link: str | None = None
    #: What could not be read (permission, a device that did not answer).
    problems: tuple[str, ...] = ()

    @property
    def usb_id(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Flag:
    """An ambiguity a selection by serial would trip over."""

    problem: str  # "serial-at-two-paths", "dfu-serial-collision", "clone-serial"
    serial: str
    port_paths: tuple[str, ...]
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryLink:
    """A ``transports:`` entry of kind stlink or dfu, as far as binding needs it."""

    name: str
    kind: str
    serial: str | None = None
    port_path: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Discovery:
    """Everything found, the ambiguities, and inventory links whose device is not there."""

    devices: tuple[Found, ...]
    flags: tuple[Flag, ...] = ()
    missing: tuple[InventoryLink, ...] = field(default_factory=tuple)


# ------------------------------------------------------------------------------ the walk


def discover(backend: Any, *, links: Sequence[InventoryLink] = (),
             read_firmware: bool = True) -> Discovery:
    """Walk ``backend`` (``None``: libusb) and classify what is plugged in.

    Raises:
        EnvironmentProblem: libusb is not installed.
    """
    found: list[Found] = []
    for device in shared.find_devices(backend, what="USB device"):
        item = _classify(device, read_firmware=read_firmware)
        if item is not None:
            found.append(item)
    found.sort(key=lambda f: _path_key(f.port_path))
    switching = {f.port_path: f.power_switching for f in found if f.kind == "hub"}
    found = [replace(f, hub_power_switching=switching[f.hub]) if switching.get(f.hub) else f
             for f in found]
    bound, missing = _bind(found, links)
    return Discovery(devices=tuple(bound), flags=tuple(_flags(bound)), missing=tuple(missing))


def _classify(device: Any, *, read_firmware: bool) -> Found | None:
    path = shared.port_path(device)
    hub, hub_port = _parent(path)
    vid, pid = int(device.idVendor), int(device.idProduct)
    base: dict[str, Any] = {"port_path": path, "vid": vid, "pid": pid, "hub": hub,
                            "hub_port": hub_port}
    if vid == ST_VID and pid in PROBE_KINDS:
        return _probe(device, base, read_firmware=read_firmware)
    if vid == ST_VID and pid == DFU_PID:
        return _dfu(device, base)
    if int(getattr(device, "bDeviceClass", 0)) == HUB_CLASS:
        return _hub(device, base)
    return None


def _hub(device: Any, base: dict[str, Any]) -> Found:
    import usb.core

    serial, product, problems = _strings(device)
    switching: str | None = None
    ports: int | None = None
    try:
        descriptor = read_descriptor(device)
        switching, ports = descriptor.switching, descriptor.ports
    except (usb.core.USBError, RunnerError) as error:
        problems = (*problems, f"hub descriptor not read: {error}")
    return Found(kind="hub", serial=serial, product=product, power_switching=switching,
                 hub_ports=ports, problems=problems, **base)


def _strings(device: Any) -> tuple[str, str, tuple[str, ...]]:
    """Serial and product strings; a string that cannot be read becomes a problem."""
    values: list[str] = []
    problems: list[str] = []
    for index, what in ((device.iSerialNumber, "serial"), (device.iProduct, "product")):
        try:
            values.append(shared.read_string(device, index, f"reading its {what}", _NAMES,
                                             thing="the device"))
        except RunnerError as error:
            values.append("")
            problems.append(f"{what} unreadable: {error.message}")
    return values[0], values[1], tuple(problems)


def _probe(device: Any, base: dict[str, Any], *, read_firmware: bool) -> Found:
    kind = PROBE_KINDS[base["pid"]]
    raw_serial, product, problems = _strings(device)
    serial = normalise_serial(raw_serial)
    firmware: str | None = None
    voltage: float | None = None
    if read_firmware and kind.debug and kind.generation != "v1" and not problems:
        candidate = _ProbeCandidate(serial=serial, port_path=base["port_path"], kind=kind,
                                    product=product, device=device)
        pipe = UsbPipe(candidate, names=_NAMES)
        try:
            pipe.open()
            probe = StLink(BulkFraming(pipe), WALL_CLOCK, pid=kind.pid,
                           generation=kind.generation)
            firmware = str(probe.read_version())
            voltage = probe.target_voltage()
        except RunnerError as error:
            problems = (*problems, f"firmware not read: {error.message}")
        finally:
            pipe.close()
    return Found(kind="stlink", serial=serial, product=product or kind.name, model=kind.name,
                 firmware=firmware, target_voltage=voltage, problems=problems, **base)


def _dfu(device: Any, base: dict[str, Any]) -> Found:
    serial, product, problems = _strings(device)
    regions: list[Region] = []
    if not problems:
        try:
            description = read_description(device, _NAMES)
            for alternate, text in sorted(description.alternates.items()):
                layout = parse_layout(text)
                regions.append(Region(alternate=alternate, name=layout.name, start=layout.start,
                                      size=layout.size, sectors=len(layout.sectors)))
        except RunnerError as error:
            problems = (*problems, f"layout not read: {error.message}")
        finally:
            import usb.util

            usb.util.dispose_resources(device)
    return Found(kind="dfu", serial=serial, product=product, regions=tuple(regions),
                 problems=problems, **base)


def _parent(path: str) -> tuple[str, int | None]:
    """``1-4.2`` hangs off hub ``1-4`` port 2; ``1-3`` off the root hub ``usb1``, port 3."""
    bus, _, ports = path.partition("-")
    if not ports or ports == "?":
        return f"usb{bus}", None
    head, dot, last = ports.rpartition(".")
    hub = f"{bus}-{head}" if dot else f"usb{bus}"
    return hub, int(last) if last.isdigit() else None


def _path_key(path: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[-.]", path))


# ------------------------------------------------------------------------------ binding


def _bind(found: list[Found], links: Sequence[InventoryLink]
          ) -> tuple[list[Found], list[InventoryLink]]:
    """Name each device after the link that selects it; list links that select nothing.

    A link with a port path binds by it alone; a link with only a serial binds
    the one device of its kind with that serial (several: it binds none, and
    the ambiguity is flagged). A link with neither selects "the only one" and
    is not bound to a device.
    """
    names: dict[str, str] = {}
    missing: list[InventoryLink] = []
    for link in links:
        if link.port_path:
            hits = [f for f in found if f.kind == link.kind and f.port_path == link.port_path]
        elif link.serial:
            hits = [f for f in found if f.kind == link.kind
                    and f.serial.upper() == link.serial.upper()]
        else:
            continue
        if not hits:
            missing.append(link)
        elif len(hits) == 1:
            names.setdefault(hits[0].port_path, link.name)
    bound = [_with_link(f, names.get(f.port_path)) for f in found]
    return bound, missing


def _with_link(found: Found, link: str | None) -> Found:
    return found if link is None else replace(found, link=link)


# ------------------------------------------------------------------------------ flags

_ALL_SAME = re.compile(r"^(.)\1*$")


def clone_pattern(serial: str) -> bool:
    """One character throughout, or a short unit (up to 4) repeated, give or take the end.

    Clone and old-firmware probes carry serials like ``303030303030303030303031``
    (twelve ASCII digits, hex-encoded) or ``000000000000``: a board's UID-derived
    serial never looks like that.
    """
    text = serial.upper()
    if not text:
        return False
    if _ALL_SAME.match(text):
        return True
    for cut in (0, 1, 2):
        body = text[:len(text) - cut] if cut else text
        if len(body) < 8:
            continue
        for unit in range(1, 5):
            if len(body) % unit == 0 and body == body[:unit] * (len(body) // unit):
                return True
    return False


def _flags(found: Iterable[Found]) -> list[Flag]:
    flags: list[Flag] = []
    by_serial: dict[tuple[str, str], list[Found]] = defaultdict(list)
    for item in found:
        if item.kind in ("stlink", "dfu") and item.serial:
            by_serial[(item.kind, item.serial.upper())].append(item)
            if clone_pattern(item.serial):
                flags.append(Flag(problem="clone-serial", serial=item.serial,
                                  port_paths=(item.port_path,),
                                  message=f"{item.kind} at {item.port_path} has the clone "
                                          f"serial {item.serial}: select it by port-path"))
    for (kind, _serial), items in by_serial.items():
        if len(items) < 2:
            continue
        paths = tuple(i.port_path for i in items)
        problem = "dfu-serial-collision" if kind == "dfu" else "serial-at-two-paths"
        where = ", ".join(paths)
        what = ("DFU devices share serial" if kind == "dfu"
                else "ST-Link probes share serial")
        flags.append(Flag(problem=problem, serial=items[0].serial, port_paths=paths,
                          message=f"{len(items)} {what} {items[0].serial} (at {where}): "
                                  f"a link selecting by serial is ambiguous; set port-path"))
    return flags


# ------------------------------------------------------------------------------ inventory


def inventory_links(path: Path) -> list[InventoryLink]:
    """The stlink and dfu entries of ``path``'s ``transports:`` (a manifest or an include).

    Raises:
        PlanError: the file is not YAML or ``transports`` is not a mapping.
    """
    text = read_input(path, limit=MANIFEST_LIMIT).decode("utf-8", errors="replace")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise PlanError(f"{path}: not valid YAML: {error}") from error
    section = data.get("transports", {}) if isinstance(data, Mapping) else None
    if not isinstance(section, Mapping):
        raise PlanError(f"{path}: 'transports' is not a mapping of link names")
    links = []
    for name, spec in section.items():
        if not isinstance(spec, Mapping) or spec.get("kind") not in ("stlink", "dfu"):
            continue
        serial = spec.get("serial")
        port = spec.get("port-path")
        links.append(InventoryLink(name=str(name), kind=str(spec["kind"]),
                                   serial=None if serial is None else str(serial),
                                   port_path=None if port is None else str(port)))
    return links


# ------------------------------------------------------------------------------ rendering


def _size(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def _details(item: Found) -> str:
    parts: list[str] = []
    if item.kind == "stlink":
        parts.append(item.model)
        if item.firmware:
            parts.append(f"firmware {item.firmware}")
        if item.target_voltage is not None:
            parts.append(f"target {item.target_voltage:.2f} V")
    elif item.kind == "dfu":
        parts.append(item.product or "(no product string)")
        parts.extend(str(region) for region in item.regions)
    else:
        parts.append(item.product or "hub")
        if item.hub_ports is not None:
            parts.append(f"{item.hub_ports} ports")
        if item.power_switching:
            parts.append(f"power switching {item.power_switching}")
    parts.extend(item.problems)
    return "; ".join(p for p in parts if p)


def render_table(result: Discovery) -> str:
    """The human table, flags and missing links after it."""
    if not result.devices:
        lines = ["no ST-Link probe, ROM DFU device or hub found"]
    else:
        rows = [("PORT", "KIND", "VID:PID", "SERIAL", "HUB", "LINK", "DETAILS")]
        for item in result.devices:
            hub = item.hub if item.hub_port is None else f"{item.hub} port {item.hub_port}"
            if item.hub_power_switching:
                hub += f" ({item.hub_power_switching})"
            rows.append((item.port_path, item.kind, item.usb_id, item.serial or "-", hub,
                         item.link or "-", _details(item)))
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
                 + "  " + row[6] for row in rows]
    for flag in result.flags:
        lines.append(f"! {flag.message}")
    for link in result.missing:
        selector = f"port-path {link.port_path}" if link.port_path else f"serial {link.serial}"
        lines.append(f"? link {link.name} ({link.kind}, {selector}): no such device attached")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def as_json(result: Discovery) -> dict[str, Any]:
    """``--json``: stable field names (``JSON_VERSION`` changes when one does)."""
    def device(item: Found) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": item.kind, "port_path": item.port_path, "usb_id": item.usb_id,
            "serial": item.serial, "product": item.product, "hub": item.hub,
            "hub_port": item.hub_port, "hub_power_switching": item.hub_power_switching,
            "link": item.link, "problems": list(item.problems)}
        if item.kind == "stlink":
            data.update(model=item.model, firmware=item.firmware,
                        target_voltage=item.target_voltage)
        if item.kind == "dfu":
            data["regions"] = [{"alternate": r.alternate, "name": r.name,
                                "start": f"0x{r.start:08X}", "size": r.size,
                                "sectors": r.sectors} for r in item.regions]
        if item.kind == "hub":
            data.update(power_switching=item.power_switching, ports=item.hub_ports)
        return data

    return {"discover": JSON_VERSION,
            "devices": [device(item) for item in result.devices],
            "flags": [{"problem": f.problem, "serial": f.serial,
                       "port_paths": list(f.port_paths), "message": f.message}
                      for f in result.flags],
            "missing": [{"link": link.name, "kind": link.kind, "serial": link.serial,
                         "port_path": link.port_path} for link in result.missing]}


def from_json(document: Mapping[str, Any]) -> Discovery:
    """The :class:`Discovery` an :func:`as_json` document describes (a station's report).

    Device fields are taken by their name in :class:`Found` (the JSON names
    are the field names, but for those :func:`as_json` renames).
    """
    names = {f.name for f in fields(Found)}
    devices = []
    for entry in document.get("devices", ()):
        values = {k: v for k, v in entry.items() if k in names}
        vid, _, pid = str(entry["usb_id"]).partition(":")
        values.update(vid=int(vid, 16), pid=int(pid, 16),
                      problems=tuple(entry.get("problems", ())),
                      regions=tuple(Region(alternate=r["alternate"], name=r["name"],
                                           start=int(r["start"], 16), size=r["size"],
                                           sectors=r["sectors"])
                                    for r in entry.get("regions", ())))
        if entry.get("kind") == "hub":
            values["hub_ports"] = entry.get("ports")
        devices.append(Found(**values))
    return Discovery(
        devices=tuple(devices),
        flags=tuple(Flag(problem=f["problem"], serial=f["serial"],
                         port_paths=tuple(f["port_paths"]), message=f["message"])
                    for f in document.get("flags", ())),
        missing=tuple(InventoryLink(name=m["link"], kind=m["kind"], serial=m.get("serial"),
                                    port_path=m.get("port_path"))
                      for m in document.get("missing", ())))


def render_json(result: Discovery) -> str:
    return json.dumps(as_json(result), indent=2) + "\n"

