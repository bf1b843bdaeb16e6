"""USB-serial adapters, I2C adapters and CAN interfaces, read from sysfs.

The host's adapters are not found through libusb but where the kernel lists
them, through the station's sysfs seam (``HostControl.sysfs``: ``/sys`` on a
host, the simulated tree in a rehearsal; docs/architecture.md, "Discovery"):

* ``class/tty/*/device`` followed up to the USB interface and device: the
  node, vid:pid, serial, product, port path, interface number, and udev's
  ``/dev/serial/by-path`` and ``by-id`` names, derived as 60-serial.rules
  does from ``path_id`` (``pci-0000:00:14.0-usb-0:4.4:1.0``) and usb_id
  (``usb-FTDI_FT232R_USB_UART_A10K3XYZ-if00``), ``-port<N>`` for a
  usb-serial converter's port;
* ``class/i2c-dev/i2c-N``: the adapter's name and parent device, and whether
  it offers plain I2C transfers (I2C_FUNC_I2C, the combined transfers the ROM
  bootloader needs, AN4221) or only SMBus — read from the adapter itself
  (I2C_FUNCS through the I2C opener the link uses), never from its name;
* ``class/net/*`` of type ARPHRD_CAN: socketcan interfaces, their operstate,
  and their bit rate where the tree shows it (many kernels keep it in netlink
  only: then it is unknown, not guessed).

No root, no subprocess; nothing is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runner.found import Found, parent_hub
from transports.endpoints import I2cAdapter
from transports.power.sysfs import ARPHRD_CAN, Sysfs

__all__ = ["ARPHRD_CAN", "I2C_FUNC_I2C", "by_id", "can_interfaces", "i2c_adapters", "id_path",
           "serial_adapters"]

#: linux/i2c.h: the adapter does plain I2C transfers (i2c_rdwr), not only SMBus.
I2C_FUNC_I2C = 0x00000001

_INTERFACE = re.compile(r"^\d+-[\d.]+:\d+\.\d+$")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Usb:
    """The USB device (and interface) an adapter's device directory sits under."""

    port_path: str
    interface_dir: str
    vid: int
    pid: int
    serial: str
    product: str
    manufacturer: str
    interface: int | None


def _attr(sysfs: Sysfs, path: str) -> str:
    try:
        return sysfs.read(path).strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _hex(text: str) -> int:
    try:
        return int(text, 16)
    except ValueError:
        return 0


def _usb_of(sysfs: Sysfs, device_dir: str) -> _Usb | None:
    """The USB interface nearest above ``device_dir`` (itself included), and its device."""
    parts = device_dir.split("/")
    for index in range(len(parts) - 1, 0, -1):
        if _INTERFACE.match(parts[index]):
            interface = "/".join(parts[:index + 1])
            device = "/".join(parts[:index])
            number = _attr(sysfs, f"{interface}/bInterfaceNumber")
            return _Usb(port_path=parts[index - 1], interface_dir=interface,
                        vid=_hex(_attr(sysfs, f"{device}/idVendor")),
                        pid=_hex(_attr(sysfs, f"{device}/idProduct")),
                        serial=_attr(sysfs, f"{device}/serial"),
                        product=_attr(sysfs, f"{device}/product"),
                        manufacturer=_attr(sysfs, f"{device}/manufacturer"),
                        interface=_hex(number) if number else None)
    return None


def _subsystem(sysfs: Sysfs, directory: str) -> str:
    return (sysfs.resolve(f"{directory}/subsystem") or "").rpartition("/")[2]


def id_path(sysfs: Sysfs, interface_dir: str) -> str | None:
    """udev's ``ID_PATH`` of a USB interface (``path_id``): nearest PCI/platform, then USB.

    The interface contributes ``usb-0:<ports>:<config>.<interface>`` (the bus
    number is dropped); every USB ancestor above it is skipped; the nearest PCI
    device adds ``pci-<address>``, a platform device ``platform-<name>``.
    """
    parts = interface_dir.split("/")
    pieces: list[str] = []
    done: set[str] = set()
    previous = ""
    for index in range(len(parts), 0, -1):
        directory = "/".join(parts[:index])
        name = parts[index - 1]
        subsystem = _subsystem(sysfs, directory)
        if subsystem == previous or subsystem in done:
            continue  # path_id skips the rest of a subsystem's chain
        if subsystem == "usb":
            pieces.insert(0, f"usb-0:{name.partition('-')[2]}")
        elif subsystem in ("pci", "platform"):
            pieces.insert(0, f"{subsystem}-{name}")
        else:
            previous = subsystem
            continue
        done.add(subsystem)
        previous = subsystem
    if not pieces or not pieces[-1].startswith("usb-"):
        return None
    return "-".join(pieces)


_UNSAFE = re.compile(r"[^0-9A-Za-z#+\-.:=@_\u0080-\U0010ffff]")


def _id_text(text: str) -> str:
    """udev's whitespace and character replacement of a USB string (usb_id)."""
    return _UNSAFE.sub("_", "_".join(text.split()))


def by_id(usb: _Usb, port: str | None) -> str:
    """60-serial.rules' ``/dev/serial/by-id`` name: ``usb-<vendor>_<model>_<serial>-if<NN>``.

    Vendor and model are the manufacturer and product strings (the ids in hex
    when a string is absent), spaces and unsafe characters replaced as usb_id does.
    """
    vendor = _id_text(usb.manufacturer) or f"{usb.vid:04x}"
    model = _id_text(usb.product) or f"{usb.pid:04x}"
    serial = "_".join(p for p in (vendor, model, _id_text(usb.serial)) if p)
    interface = f"{usb.interface or 0:02x}"
    return f"/dev/serial/by-id/usb-{serial}-if{interface}" + (f"-port{port}" if port else "")


def _usb_fields(usb: _Usb | None) -> dict[str, Any]:
    if usb is None:
        return {"port_path": "", "vid": 0, "pid": 0, "serial": "", "product": "", "hub": "",
                "hub_port": None}
    hub, port = parent_hub(usb.port_path)
    return {"port_path": usb.port_path, "vid": usb.vid, "pid": usb.pid, "serial": usb.serial,
            "product": usb.product, "hub": hub, "hub_port": port}


def serial_adapters(sysfs: Sysfs) -> list[Found]:
    """Every tty on a USB interface (``ttyUSB*``, ``ttyACM*``, …)."""
    found: list[Found] = []
    for name in sysfs.listdir("class/tty"):
        device = sysfs.resolve(f"class/tty/{name}/device")
        usb = _usb_of(sysfs, device) if device else None
        if device is None or usb is None:
            continue  # a virtual console or an on-board UART: not an adapter
        port = None
        if _subsystem(sysfs, device) == "usb-serial":  # 60-serial.rules: .ID_PORT
            port = _attr(sysfs, f"{device}/port_number") or None
        path = id_path(sysfs, usb.interface_dir)
        by_path = None
        if path is not None:
            by_path = f"/dev/serial/by-path/{path}" + (f"-port{port}" if port else "")
        found.append(Found(kind="serial", node=f"/dev/{name}", by_path=by_path,
                           by_id=by_id(usb, port), interface=usb.interface,
                           **_usb_fields(usb)))
    return found


def i2c_adapters(sysfs: Sysfs, opener: Callable[[int], I2cAdapter]) -> list[Found]:
    """Every ``/dev/i2c-N``, its functionality read from the adapter (``opener(N)``)."""
    found: list[Found] = []
    names = [n for n in sysfs.listdir("class/i2c-dev") if n.startswith("i2c-")
             and n[4:].isdigit()]
    for name in sorted(names, key=lambda n: int(n[4:])):
        bus = int(name[4:])
        adapter_dir = sysfs.resolve(f"class/i2c-dev/{name}/device") or ""
        parent = adapter_dir.rsplit("/", 2)[-2] if adapter_dir.count("/") >= 1 else None
        usb = _usb_of(sysfs, adapter_dir) if adapter_dir else None
        funcs: int | None = None
        problems: tuple[str, ...] = ()
        try:
            adapter = opener(bus)
            try:
                funcs = int(adapter.funcs)
            finally:
                adapter.close()
        except PermissionError:
            problems = (f"functionality not read: no permission to open /dev/{name} "
                        f"(add the user to the i2c group)",)
        except OSError as error:
            problems = (f"functionality not read: /dev/{name}: {error.strerror or error}",)
        found.append(Found(kind="i2c", node=f"/dev/{name}",
                           adapter_name=_attr(sysfs, f"class/i2c-dev/{name}/name"),
                           parent=parent, functionality=funcs,
                           plain_i2c=None if funcs is None else bool(funcs & I2C_FUNC_I2C),
                           problems=problems, **_usb_fields(usb)))
    return found


def can_interfaces(sysfs: Sysfs) -> list[Found]:
    """Every socketcan netdev (``class/net/*/type`` is ARPHRD_CAN)."""
    found: list[Found] = []
    for name in sysfs.listdir("class/net"):
        if _attr(sysfs, f"class/net/{name}/type") != str(ARPHRD_CAN):
            continue
        device = sysfs.resolve(f"class/net/{name}/device")
        usb = _usb_of(sysfs, device) if device else None
        bitrate = _attr(sysfs, f"class/net/{name}/can_bittiming/bitrate")
        found.append(Found(kind="can", node=name,
                           operstate=_attr(sysfs, f"class/net/{name}/operstate") or None,
                           bitrate=int(bitrate) if bitrate.isdigit() else None,
                           interface=None if usb is None else usb.interface,
                           **_usb_fields(usb)))
    return found
