"""The simulated host's USB-serial, I2C and CAN adapters, laid out in its sysfs.

A rehearsal's ``discover`` walks the same sysfs tree a host has
(:class:`~transports.sim.sysfs.SimSysfs`), so the adapters are put there as
the kernel would show them: a tty under its USB interface (``ttyUSB`` for a
usb-serial converter, ``ttyACM`` for CDC ACM — an ST-Link V2-1/V3's virtual
COM port is interface 2 of the probe's own USB device), an i2c-dev node under
its controller, a socketcan netdev. The I2C adapters are also the simulated
buses the I2C link opens (``i2c:<bus>`` in the world), so an SMBus-only
adapter refuses a rehearsal's link as it refuses a real one.

:func:`simulate_adapters` takes the manifest's ``simulation`` section shape
(``serial``/``i2c``/``can``, docs/architecture.md "Discovery"), already
merged with what the composition derives from the plan's links.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from transports.sim.control import sim_hardware
from transports.sim.smbus import SimI2cBus
from transports.sim.sysfs import SimSysfs, UsbIdentity
from transports.sim.usb import SimUsbBackend
from transports.sim.world import SimulationWorld

__all__ = ["ADAPTER_BUS", "VCP_INTERFACE", "laid_out_i2c", "simulate_adapters"]

#: The USB bus whose root ports take adapters that name no port path.
ADAPTER_BUS = 3
#: usb-serial converters (``ttyUSB``) and CDC ACM devices (``ttyACM``) without a usb-id.
_FTDI = UsbIdentity(vid=0x0403, pid=0x6001, product="FT232R USB UART", manufacturer="FTDI")
_CDC = UsbIdentity(vid=0x0483, pid=0x5740, product="STM32 Virtual ComPort",
                   manufacturer="STMicroelectronics")
#: CAN and I2C adapters on USB without a usb-id: a candleLight (gs_usb), a CP2112.
_CANDLE = UsbIdentity(vid=0x1D50, pid=0x606F, product="candleLight USB to CAN adapter",
                      manufacturer="bytewerk")
_CP2112 = UsbIdentity(vid=0x10C4, pid=0xEA90, product="CP2112 HID USB-to-SMBus Bridge",
                      manufacturer="Silicon Laboratories")
#: The interface an ST-Link's virtual COM port is (CDC ACM, both V2-1 and V3).
VCP_INTERFACE = 2
_CDC_CLASS, _VENDOR_CLASS = 0x02, 0xFF


def simulate_adapters(world: SimulationWorld,
                      section: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
    """Lay out ``section``'s adapters in the world's sysfs; make its I2C buses."""
    sysfs = sim_hardware(world).sysfs
    builder = _Builder(world, sysfs)
    for tty, settings in sorted(section.get("serial", {}).items()):
        builder.serial(str(tty), settings)
    for bus, settings in sorted(section.get("i2c", {}).items(), key=lambda i: int(i[0])):
        builder.i2c(int(bus), settings)
    for name, settings in sorted(section.get("can", {}).items()):
        builder.can(str(name), settings)


class _Builder:
    def __init__(self, world: SimulationWorld, sysfs: SimSysfs) -> None:
        self.world, self.sysfs = world, sysfs
        self.backend: SimUsbBackend = world.shared("usb", SimUsbBackend)
        self.taken: set[str] = {_path_of(d) for d in self.backend.devices}
        self.next_port = 1

    def _free_path(self) -> str:
        while f"{ADAPTER_BUS}-{self.next_port}" in self.taken:
            self.next_port += 1
        path = f"{ADAPTER_BUS}-{self.next_port}"
        self.taken.add(path)
        return path

    def _on_bus(self, port_path: str) -> UsbIdentity | None:
        """The identity of the simulated USB device plugged at ``port_path`` (a probe)."""
        for device in self.backend.devices:
            if _path_of(device) == port_path:
                info = device.info
                serial = info.serial.hex().upper() if isinstance(info.serial, bytes) \
                    else info.serial or ""
                return UsbIdentity(vid=info.vendor_id, pid=info.product_id, serial=serial,
                                   product=info.product or "",
                                   manufacturer=info.manufacturer or "")
        return None

    def _usb(self, settings: Mapping[str, Any], default: UsbIdentity, what: str,
             ) -> tuple[str, UsbIdentity, bool]:
        """(port path, identity, on a device already plugged there)."""
        path = settings.get("port-path")
        plugged = self._on_bus(str(path)) if path else None
        if plugged is not None and "usb-id" not in settings:
            return str(path), plugged, True
        identity = default
        if "usb-id" in settings:
            vid, _, pid = str(settings["usb-id"]).partition(":")
            identity = UsbIdentity(vid=int(vid, 16), pid=int(pid, 16), product="",
                                   manufacturer="")
        serial = settings.get("serial") or _serial(f"{self.world.seed}:{what}")
        identity = UsbIdentity(vid=identity.vid, pid=identity.pid, serial=str(serial),
                               product=str(settings.get("product", identity.product)),
                               manufacturer=str(settings.get("manufacturer",
                                                             identity.manufacturer)))
        return str(path) if path else self._free_path(), identity, False

    def serial(self, tty: str, settings: Mapping[str, Any]) -> None:
        acm = tty.startswith("ttyACM")
        path, identity, plugged = self._usb(settings, _CDC if acm else _FTDI, tty)
        self.sysfs.usb_device(path, identity)
        interface = int(settings.get("interface", VCP_INTERFACE if plugged else 0))
        directory = self.sysfs.usb_interface(path, interface,
                                             interface_class=_CDC_CLASS if acm else _VENDOR_CLASS)
        self.sysfs.tty(tty, directory, usb_serial=not acm)

    def i2c(self, bus: int, settings: Mapping[str, Any]) -> None:
        smbus_only = bool(settings.get("smbus-only", False))
        if "port-path" in settings or "usb-id" in settings:
            path, identity, _ = self._usb(settings, _CP2112, f"i2c-{bus}")
            self.sysfs.usb_device(path, identity)
            parent = self.sysfs.usb_interface(path, 0, interface_class=0x03)
            name = str(settings.get("name", f"CP2112 SMBus Bridge on hidraw{bus}"))
        else:
            parent = self.sysfs.controller(str(settings.get("parent", f"i2c_designware.{bus}")))
            name = str(settings.get("name", "Synopsys DesignWare I2C adapter"))
        self.sysfs.i2c_adapter(bus, name, parent)
        clock = int(settings.get("clock", 100_000))
        self.world.shared(f"i2c:{bus}", lambda: SimI2cBus(clock_hz=clock, smbus_only=smbus_only))
        laid_out_i2c(self.world).add(bus)

    def can(self, name: str, settings: Mapping[str, Any]) -> None:
        parent: str | None = None
        if not settings.get("virtual", False):
            path, identity, _ = self._usb(settings, _CANDLE, name)
            self.sysfs.usb_device(path, identity)
            parent = self.sysfs.usb_interface(path, 0, interface_class=_VENDOR_CLASS)
        bitrate = settings.get("bitrate")
        self.sysfs.can_netdev(name, parent, operstate=str(settings.get("state", "up")),
                              bitrate=None if bitrate is None else int(bitrate))


def laid_out_i2c(world: SimulationWorld) -> set[int]:
    """The I2C buses the world's host has (``/dev/i2c-<bus>`` opens)."""
    buses: set[int] = world.shared("i2c-adapters", set)
    return buses


def _path_of(device: Any) -> str:
    info = device.info
    return f"{info.bus}-{'.'.join(str(p) for p in info.port_numbers)}"


def _serial(seed: str) -> str:
    """An FTDI-style serial (8 characters), the same for the same world and adapter."""
    digest = hashlib.sha256(seed.encode()).digest()
    alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return "".join(alphabet[b % len(alphabet)] for b in digest[:8])
