"""What is plugged in: ST-Link probes, ROM DFU devices, hubs and adapters, keyed by port path.

``flashrunner discover`` walks the USB bus with pyusb on the backend the
endpoint provider gives (libusb on a bench, the simulated bus of a rehearsal:
docs/architecture.md, "The endpoint seam"), so it sees exactly what a run
would. Every device is keyed by its USB **port path** (``1-4.2``), which is
stable while the cabling is; serials are reported, normalised as the links
compare them, but never trusted to be unique: one serial at two paths, ROM
DFU serials that collide (48 bits of the UID) and clone serials (all zeros,
a short pattern repeated) are flagged, not guessed around.

The host's USB-serial, I2C and CAN adapters are read from its sysfs
(:mod:`runner.sysdevices`, through the same seam); an ST-Link V2-1/V3's
virtual COM port is paired with its probe (the same USB device), and an I2C
adapter that offers only SMBus is flagged: the ROM bootloader needs plain I2C.
Devices are bound to the inventory's links by port path, node or serial,
including the selectors a device gives its link (``transport: {use: …}``),
across the inventory's ``include:`` files.

Nothing is written to any device. A probe is opened only to read its firmware
version and the target voltage (GET_VERSION, GET_TARGET_VOLTAGE); a DFU
device only to read its descriptors and strings; an I2C adapter only to read
its functionality (I2C_FUNCS).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from runner.bindings import bind, inventory_links
from runner.discover_render import JSON_VERSION, as_json, from_json, render_json, render_table
from runner.errors import EnvironmentProblem, RunnerError
from runner.found import Discovery, Flag, Found, InventoryLink, Region, parent_hub
from runner.sysdevices import can_interfaces, i2c_adapters, serial_adapters
from transports import usb as shared
from transports.dfu.layout import parse_layout
from transports.dfu.usb import read_description
from transports.endpoints import WALL_CLOCK
from transports.power.usbhub import read_descriptor
from transports.stlink.protocol import StLink
from transports.stlink.usb import PROBE_KINDS, ST_VID, BulkFraming, UsbPipe, normalise_serial
from transports.stlink.usb import ProbeCandidate as _ProbeCandidate

if TYPE_CHECKING:
    from collections.abc import Callable

    from transports.endpoints import HostControl, I2cAdapter
    from transports.power.sysfs import Sysfs

__all__ = ["DFU_PID", "JSON_VERSION", "Discovery", "Flag", "Found", "InventoryLink", "Region",
           "as_json", "clone_pattern", "discover", "discover_host", "from_json",
           "inventory_links", "render_json", "render_table"]

#: The ST ROM bootloader's DFU identity (AN3156).
DFU_PID = 0xDF11
#: bDeviceClass of a USB hub (USB 2.0 §11.23.1).
HUB_CLASS = 0x09

_NAMES = shared.LinkNames(link="discover", device="-")


# ------------------------------------------------------------------------------ the walk


def discover_host(control: HostControl, *, links: Sequence[InventoryLink] = (),
                  read_firmware: bool = True) -> Discovery:
    """:func:`discover` on a station's USB bus, sysfs and I2C adapters (host or rehearsal)."""
    return discover(control.usb_backend, links=links, read_firmware=read_firmware,
                    sysfs=control.sysfs, i2c_adapter=control.i2c_adapter)


def discover(backend: Any, *, links: Sequence[InventoryLink] = (),
             read_firmware: bool = True, sysfs: Sysfs | None = None,
             i2c_adapter: Callable[[int], I2cAdapter] | None = None) -> Discovery:
    """Walk ``backend`` (``None``: libusb) and classify what is plugged in.

    With ``sysfs``, the USB-serial, I2C (functionality read through
    ``i2c_adapter``) and CAN adapters listed there are added.

    Without libusb the adapters in ``sysfs`` are still listed: the USB walk's
    absence is a flag (``usb-not-walked``), and the inventory's ST-Link and DFU
    links are not reported missing, since nobody looked for them.

    Raises:
        EnvironmentProblem: libusb is not installed and there is no ``sysfs`` to walk.
    """
    found: list[Found] = []
    unwalked: EnvironmentProblem | None = None
    try:
        devices = shared.find_devices(backend, what="USB device")
    except EnvironmentProblem as error:
        if sysfs is None:
            raise
        devices, unwalked = [], error
    for device in devices:
        item = _classify(device, read_firmware=read_firmware)
        if item is not None:
            found.append(item)
    if sysfs is not None:
        found.extend(serial_adapters(sysfs))
        if i2c_adapter is not None:
            found.extend(i2c_adapters(sysfs, i2c_adapter))
        found.extend(can_interfaces(sysfs))
    found.sort(key=_order)
    switching = {f.port_path: f.power_switching for f in found if f.kind == "hub"}
    found = [replace(f, hub_power_switching=switching[f.hub]) if switching.get(f.hub) else f
             for f in found]
    found = _pair_vcps(found)
    bound, missing = bind(found, links)
    flags = _flags(bound)
    if unwalked is not None:
        missing = [link for link in missing if link.kind not in USB_WALKED]
        flags.insert(0, Flag(problem="usb-not-walked", serial="", port_paths=(),
                             message=f"USB not walked: {unwalked.message}; probes, DFU "
                                     f"devices and hubs are not listed"
                                     + (f"; {unwalked.hint}" if unwalked.hint else "")))
    return Discovery(devices=tuple(bound), flags=tuple(flags), missing=tuple(missing))


#: The link kinds whose devices only the USB walk finds.
USB_WALKED = frozenset({"stlink", "dfu"})


#: Within one port path: the USB device first, then the adapters on its interfaces.
_KIND_ORDER = {"hub": 0, "stlink": 0, "dfu": 0, "serial": 1, "i2c": 2, "can": 3}


def _order(found: Found) -> tuple[Any, ...]:
    return (not found.on_usb, _path_key(found.port_path) if found.on_usb else (),
            _KIND_ORDER.get(found.kind, 9), _node_key(found.node or ""))


def _node_key(node: str) -> tuple[str, int]:
    head = node.rstrip("0123456789")
    tail = node[len(head):]
    return head, int(tail) if tail else -1


def _pair_vcps(found: list[Found]) -> list[Found]:
    """An ST-Link's CDC ACM tty (the same USB device) and the probe name each other."""
    probes = {f.port_path: f for f in found if f.kind == "stlink"}
    vcps: dict[str, str] = {}
    paired: list[Found] = []
    for item in found:
        probe = probes.get(item.port_path) if item.kind == "serial" else None
        if probe is not None and item.node:
            vcps.setdefault(probe.port_path, item.node)
        paired.append(item if probe is None else replace(item, vcp_of=probe.serial))
    return [replace(f, vcp=vcps[f.port_path]) if f.kind == "stlink" and f.port_path in vcps
            else f for f in paired]


def _classify(device: Any, *, read_firmware: bool) -> Found | None:
    path = shared.port_path(device)
    hub, hub_port = parent_hub(path)
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
                                    device=device, names=_NAMES)
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


def _path_key(path: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[-.]", path))


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
    for item in found:
        if item.kind == "i2c" and item.plain_i2c is False:
            flags.append(Flag(problem="smbus-only", serial=item.serial, node=item.node,
                              port_paths=(item.port_path,) if item.on_usb else (),
                              message=f"{item.node} ({item.adapter_name or 'I2C adapter'}) "
                                      f"offers SMBus only: cannot reach the ROM bootloader: "
                                      f"needs plain I2C transfers (AN4221)"))
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


