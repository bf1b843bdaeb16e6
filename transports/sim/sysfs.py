"""A simulated sysfs tree: the hub ports' ``disable`` files, and ``port``/``peer`` links.

:class:`SimSysfs` lays out, in a directory of its own, what Linux ≥ 6.0 shows
for the simulated hubs::

    bus/usb/devices/1-1:1.0/1-1-port3/disable      "0" powered, "1" off
    bus/usb/devices/1-1:1.0/1-1-port3/peer      -> the SuperSpeed half's port
    bus/usb/devices/1-1.3/port                  -> ../1-1:1.0/1-1-port3

and implements the host's sysfs seam on it (paths relative to the root): a
value written to a ``disable`` file switches the simulated hub's port, as the
kernel does.
``mode`` ``absent`` leaves the ``disable`` files out (a kernel before 6.0),
``read-only`` makes them 0444 (no udev rule), so the driver's fallback to hub
requests is exercised.

The adapters discovery reports are laid out as the kernel shows them
(docs/architecture.md, "Discovery"): a USB device under the xHCI controller
with its interfaces, and the class directories linking into them::

    devices/pci0000:00/0000:00:14.0/usb1/1-4/1-4.4/{idVendor,idProduct,serial,product}
    devices/…/1-4.4/1-4.4:1.0/ttyUSB0/tty/ttyUSB0    <- class/tty/ttyUSB0 (a usb-serial port)
    devices/…/1-4.1/1-4.1:1.2/tty/ttyACM0            <- class/tty/ttyACM0 (CDC ACM)
    devices/platform/i2c_designware.1/i2c-1/i2c-dev/i2c-1   <- class/i2c-dev/i2c-1
    devices/…/1-4.5:1.0/net/can0, devices/virtual/net/vcan0 <- class/net/…

each directory with its ``subsystem`` link, so udev's path naming
(``/dev/serial/by-path``) can be derived from the tree as on a host.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from transports.power.sysfs import ARPHRD_CAN
from transports.sim.usbhub import SimUsbHub

__all__ = ["USB_CONTROLLER", "SimSysfs", "UsbIdentity"]

#: The PCI xHCI controller every simulated USB bus hangs off.
USB_CONTROLLER = "devices/pci0000:00/0000:00:14.0"

_PCI_ADDRESS = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_DISABLE = re.compile(r"bus/usb/devices/(?P<hub>[\d.-]+):1\.0/(?P=hub)-port(?P<port>\d+)/disable$")


@dataclass(frozen=True, slots=True, kw_only=True)
class UsbIdentity:
    """What a USB device's sysfs directory says about it."""

    vid: int
    pid: int
    serial: str = ""
    product: str = ""
    manufacturer: str = ""


class SimSysfs:
    """The sysfs of a simulated host with ``hubs``; remove with :meth:`close`."""

    def __init__(self, hubs: list[SimUsbHub] | None = None, *, mode: str = "writable",
                 root: str | os.PathLike[str] | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="flashrunner-sysfs-")
            root = self._tmp.name
        self.root = Path(root)
        self.mode = mode
        self.hubs: dict[str, SimUsbHub] = {}
        for hub in hubs or []:
            self.add_hub(hub)

    def _port_dir(self, hub: SimUsbHub, port: int) -> Path:
        return self.root / "bus/usb/devices" / f"{hub.path}:1.0" / f"{hub.path}-port{port}"

    def add_hub(self, hub: SimUsbHub) -> None:
        self.hubs[hub.path] = hub
        for port in range(1, hub.nports + 1):
            directory = self._port_dir(hub, port)
            directory.mkdir(parents=True, exist_ok=True)
            if self.mode != "absent":
                disable = directory / "disable"
                disable.write_text("0\n" if hub.powered[port] else "1\n")
                disable.chmod(0o444 if self.mode == "read-only" else 0o644)
            child = self.root / "bus/usb/devices" / hub.child_path(port)
            child.mkdir(parents=True, exist_ok=True)
            link = child / "port"
            if not link.exists():
                link.symlink_to(os.path.relpath(directory, child))
        if hub.peer is not None and hub.peer.path in self.hubs:
            self._link_peers(hub, hub.peer)

    def _link_peers(self, one: SimUsbHub, other: SimUsbHub) -> None:
        for port in range(1, min(one.nports, other.nports) + 1):
            for here, there in ((one, other), (other, one)):
                link = self._port_dir(here, port) / "peer"
                if not link.exists():
                    link.symlink_to(os.path.relpath(self._port_dir(there, port),
                                                    self._port_dir(here, port)))

    # ------------------------------------------------------------------ adapters

    def _dir(self, path: str, subsystem: str | None = None) -> str:
        (self.root / path).mkdir(parents=True, exist_ok=True)
        if subsystem is not None:
            self._link(f"{path}/subsystem", subsystem)
        return path

    def _file(self, path: str, text: str) -> None:
        (self.root / path).write_text(text + "\n")

    def _link(self, path: str, target: str) -> None:
        link = self.root / path
        if not link.is_symlink():
            (self.root / target).mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(self.root / target, link.parent))

    def usb_device(self, port_path: str, identity: UsbIdentity | None = None) -> str:
        """The directory of the USB device at ``port_path`` (its hubs' made on the way)."""
        bus, _, ports = port_path.partition("-")
        self._dir(USB_CONTROLLER, "bus/pci")
        path = self._dir(f"{USB_CONTROLLER}/usb{bus}", "bus/usb")
        numbers = ports.split(".")
        for depth in range(1, len(numbers) + 1):
            path = self._dir(f"{path}/{bus}-{'.'.join(numbers[:depth])}", "bus/usb")
        if identity is not None:
            self._file(f"{path}/idVendor", f"{identity.vid:04x}")
            self._file(f"{path}/idProduct", f"{identity.pid:04x}")
            for name, value in (("serial", identity.serial), ("product", identity.product),
                                ("manufacturer", identity.manufacturer)):
                if value:
                    self._file(f"{path}/{name}", value)
        return path

    def usb_interface(self, port_path: str, number: int, *, interface_class: int) -> str:
        """Interface ``number`` of configuration 1 of the device at ``port_path``."""
        path = self._dir(f"{self.usb_device(port_path)}/{port_path}:1.{number}", "bus/usb")
        self._file(f"{path}/bInterfaceNumber", f"{number:02x}")
        self._file(f"{path}/bInterfaceClass", f"{interface_class:02x}")
        return path

    def tty(self, name: str, interface: str, *, usb_serial: bool) -> None:
        """``class/tty/<name>`` under ``interface``: a usb-serial port, or CDC ACM's."""
        parent = interface
        if usb_serial:  # the usb-serial port device sits between interface and tty
            parent = self._dir(f"{interface}/{name}", "bus/usb-serial")
            self._file(f"{parent}/port_number", "0")
        node = self._dir(f"{parent}/tty/{name}", "class/tty")
        self._link(f"{node}/device", parent)
        self._dir("class/tty")
        self._link(f"class/tty/{name}", node)

    def controller(self, name: str) -> str:
        """The directory of a host controller: a PCI function (``0000:00:1f.4``) or a platform
        device (``fe804000.i2c``)."""
        if _PCI_ADDRESS.match(name):
            return self._dir(f"devices/pci0000:00/{name}", "bus/pci")
        return self._dir(f"devices/platform/{name}", "bus/platform")

    def i2c_adapter(self, bus: int, name: str, parent: str) -> None:
        """``class/i2c-dev/i2c-<bus>`` under ``parent`` (a directory)."""
        adapter = self._dir(f"{parent}/i2c-{bus}", "bus/i2c")
        self._file(f"{adapter}/name", name)
        node = self._dir(f"{adapter}/i2c-dev/i2c-{bus}", "class/i2c-dev")
        self._file(f"{node}/name", name)
        self._link(f"{node}/device", adapter)
        self._dir("class/i2c-dev")
        self._link(f"class/i2c-dev/i2c-{bus}", node)

    def can_netdev(self, name: str, parent: str | None, *, operstate: str,
                   bitrate: int | None) -> None:
        """``class/net/<name>`` of type ARPHRD_CAN, under a USB interface or virtual."""
        node = self._dir(f"{parent}/net/{name}" if parent else f"devices/virtual/net/{name}",
                         "class/net")
        self._file(f"{node}/type", str(ARPHRD_CAN))
        self._file(f"{node}/operstate", operstate)
        if bitrate is not None:  # only some kernels show it; the others leave it out
            self._dir(f"{node}/can_bittiming")
            self._file(f"{node}/can_bittiming/bitrate", str(bitrate))
        if parent:
            self._link(f"{node}/device", parent)
        self._dir("class/net")
        self._link(f"class/net/{name}", node)

    # ------------------------------------------------------------------ the sysfs seam

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self.root / path))
        except OSError:
            return []

    def exists(self, path: str) -> bool:
        return (self.root / path).exists()

    def writable(self, path: str) -> bool:
        try:
            return bool((self.root / path).stat().st_mode & stat.S_IWUSR)
        except OSError:
            return False

    def read(self, path: str) -> str:
        return (self.root / path).read_text()

    def resolve(self, path: str) -> str | None:
        target = self.root / path
        if not target.is_symlink():
            return None
        return str(target.resolve().relative_to(self.root.resolve()))

    def write(self, path: str, text: str) -> None:
        if not self.writable(path):  # as the kernel refuses: EACCES
            raise PermissionError(13, "Permission denied", str(self.root / path))
        (self.root / path).write_text(text)
        match = _DISABLE.search(path)
        if match is not None and match["hub"] in self.hubs:
            value = text.strip()
            if value not in ("0", "1"):
                raise OSError(22, "Invalid argument", str(self.root / path))
            self.hubs[match["hub"]].set_power(int(match["port"]), value == "0", "sysfs")

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
