"""``flashrunner --version``: the tool and everything below it that a bug report needs.

A link that misbehaves on one machine and not on another is as often the
libusb or pyserial underneath as flashrunner itself, so the version lists
them, and says which are missing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import sys
from importlib import metadata

from runner import __version__

__all__ = ["libusb_version", "version_report"]

#: Distributions whose version matters to a link, in the order printed.
_DISTRIBUTIONS = (("pyusb", "ST-Link, DFU"), ("pyserial", "USART"), ("python-can", "CAN"),
                  ("smbus2", "I2C"), ("structlog", "audit log"))


class _LibusbVersion(ctypes.Structure):
    # libusb.h: struct libusb_version (libusb_get_version, libusb >= 1.0.10).
    _fields_ = [("major", ctypes.c_uint16), ("minor", ctypes.c_uint16),
                ("micro", ctypes.c_uint16), ("nano", ctypes.c_uint16),
                ("rc", ctypes.c_char_p), ("describe", ctypes.c_char_p)]


def libusb_version() -> str | None:
    """The libusb-1.0 the USB links would load, or None when there is none."""
    name = ctypes.util.find_library("usb-1.0")
    if name is None:
        return None
    try:
        library = ctypes.CDLL(name)
        library.libusb_get_version.restype = ctypes.POINTER(_LibusbVersion)
        found = library.libusb_get_version().contents
    except (OSError, AttributeError):
        return f"present ({name}), version unknown"
    return f"{found.major}.{found.minor}.{found.micro}.{found.nano}"


def version_report() -> str:
    """The text ``--version`` prints."""
    lines = [f"flashrunner {__version__}",
             f"  python      {platform.python_version()} ({sys.executable})"]
    for name, used_by in _DISTRIBUTIONS:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"  {name:<11} {version} ({used_by})")
    libusb = libusb_version()
    lines.append(f"  {'libusb':<11} {libusb or 'not found (apt install libusb-1.0-0)'} "
                 f"(ST-Link, DFU)")
    return "\n".join(lines)
