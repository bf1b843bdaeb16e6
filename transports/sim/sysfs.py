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
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path

from transports.sim.usbhub import SimUsbHub

__all__ = ["SimSysfs"]

_DISABLE = re.compile(r"bus/usb/devices/(?P<hub>[\d.-]+):1\.0/(?P=hub)-port(?P<port>\d+)/disable$")


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

    # ------------------------------------------------------------------ the sysfs seam

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
