"""Which links a station sees: ST USB devices by port path, serial ports, I2C and CAN buses.

Read from sysfs and /dev only (no USB access, nothing opened), so it is safe
while another run is flashing. Used by ``flashrunner stations check``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["links_seen"]

#: ST's USB vendor id and the products flashrunner drives (ST-Link V2/V2-1/V3, ROM DFU).
_ST_VENDOR = "0483"
_ST_PRODUCTS = {"3748": "stlink-v2", "374b": "stlink-v2-1", "3752": "stlink-v2-1",
                "374e": "stlink-v3", "374f": "stlink-v3", "3753": "stlink-v3",
                "3754": "stlink-v3", "df11": "dfu"}


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def links_seen(sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")) -> list[str]:
    seen = []
    usb = sys_root / "bus" / "usb" / "devices"
    for device in sorted(usb.glob("*")) if usb.is_dir() else ():
        if _read(device / "idVendor") != _ST_VENDOR:
            continue
        kind = _ST_PRODUCTS.get(_read(device / "idProduct"), "st-usb")
        serial = _read(device / "serial")
        seen.append(f"{kind} port-path {device.name}" + (f" serial {serial}" if serial else ""))
    for pattern in ("ttyUSB*", "ttyACM*", "ttyAMA*", "i2c-*"):
        seen.extend(str(path) for path in sorted(dev_root.glob(pattern)))
    net = sys_root / "class" / "net"
    seen.extend(f"can {path.name}" for path in sorted(net.glob("*can*")) if net.is_dir())
    return seen
