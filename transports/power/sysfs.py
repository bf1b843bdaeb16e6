"""The sysfs seam: the few files hub-port power control reads and writes.

:class:`Sysfs` names paths relative to a root (``/sys`` on a real host, a
temporary tree in a rehearsal) so the driver code is the same in both. Only
what :mod:`transports.power.usbhub` and discovery (:mod:`runner.sysdevices`)
need is here: whether a file exists and may be written, reading and writing
its text, resolving a symlink, and listing a directory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["ARPHRD_CAN", "HostSysfs", "Sysfs", "port_dir"]

#: linux/if_arp.h: the ``type`` of a socketcan netdev (``class/net/<name>/type``).
ARPHRD_CAN = 280


@runtime_checkable
class Sysfs(Protocol):
    """Files under a sysfs root, by path relative to it (``bus/usb/devices/…``)."""

    def exists(self, path: str) -> bool: ...

    def writable(self, path: str) -> bool: ...

    def read(self, path: str) -> str: ...

    def write(self, path: str, text: str) -> None: ...

    def resolve(self, path: str) -> str | None:
        """The target of a symlink, relative to the root; ``None`` when there is none."""

    def listdir(self, path: str) -> list[str]:
        """The names in directory ``path``, sorted; none when it does not exist."""


class HostSysfs:
    """This host's sysfs (``/sys``), or a copy of its layout under another root."""

    def __init__(self, root: str | os.PathLike[str] = "/sys") -> None:
        self.root = Path(root)

    def _path(self, path: str) -> Path:
        return self.root / path

    def exists(self, path: str) -> bool:
        return self._path(path).exists()

    def writable(self, path: str) -> bool:
        target = self._path(path)
        try:
            mode = target.stat().st_mode
        except OSError:
            return False
        # root passes os.access(W_OK) whatever the mode; sysfs marks read-only files 0444.
        return bool(mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and \
            os.access(target, os.W_OK)

    def read(self, path: str) -> str:
        return self._path(path).read_text()

    def write(self, path: str, text: str) -> None:
        with open(self._path(path), "w") as handle:  # sysfs wants one write() per value
            handle.write(text)

    def resolve(self, path: str) -> str | None:
        target = self._path(path)
        if not target.is_symlink():
            return None
        resolved = target.resolve()
        try:
            return str(resolved.relative_to(self.root.resolve()))
        except ValueError:
            return None

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self._path(path)))
        except OSError:
            return []


def port_dir(hub: str, port: int, config: int = 1) -> str:
    """``bus/usb/devices/<hub>:<cfg>.0/<hub>-port<N>``, the port's sysfs directory.

    Linux ≥ 6.0 puts a ``disable`` file there: "1" cuts the port's power and keeps
    the kernel from re-powering it, "0" restores it (docs/architecture.md,
    "Hardware control").
    """
    if hub.endswith("-0"):  # a root hub: its ports are usb<bus>-port<N>
        return f"bus/usb/devices/{hub}:{config}.0/usb{hub[:-2]}-port{port}"
    return f"bus/usb/devices/{hub}:{config}.0/{hub}-port{port}"
