"""What ``flashrunner discover`` reports: devices found, ambiguities, links bound or missing.

The values :mod:`runner.discover` (USB) and :mod:`runner.sysdevices` (sysfs)
produce and the renderers print; kept apart so both walks share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Discovery", "Flag", "Found", "InventoryLink", "Region", "parent_hub"]


def parent_hub(port_path: str) -> tuple[str, int | None]:
    """``1-4.2`` hangs off hub ``1-4`` port 2; ``1-3`` off the root hub ``usb1``, port 3."""
    bus, _, ports = port_path.partition("-")
    if not ports or ports == "?":
        return f"usb{bus}", None
    head, dot, last = ports.rpartition(".")
    hub = f"{bus}-{head}" if dot else f"usb{bus}"
    return hub, int(last) if last.isdigit() else None


def _size(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


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
    """One device or adapter: on the USB bus, or a host's I2C/CAN adapter off it.

    ``port_path`` is ``""`` (and ``vid``/``pid`` 0) for an adapter that is not
    on USB (a SoC's I2C controller, a virtual CAN interface).
    """

    kind: str  # "stlink", "dfu", "hub", "serial", "i2c", "can"
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
    #: The inventory link bound to this device (by port path, node, else by serial).
    link: str | None = None
    #: The device whose own ``transport: {use: …}`` selectors made the binding.
    link_device: str | None = None
    #: What could not be read (permission, a device that did not answer).
    problems: tuple[str, ...] = ()
    #: Adapters: the host's name for it (``/dev/ttyACM0``, ``/dev/i2c-1``, ``can0``).
    node: str | None = None
    #: USB-serial: udev's ``/dev/serial/by-path`` and ``by-id`` names, the USB interface.
    by_path: str | None = None
    by_id: str | None = None
    interface: int | None = None
    #: An ST-Link's virtual COM port (on the probe), and the probe's serial (on the tty).
    vcp: str | None = None
    vcp_of: str | None = None
    #: I2C: the adapter's name, its parent device, and whether it does plain I2C
    #: (I2C_FUNC_I2C; ``None``: its functionality could not be read).
    adapter_name: str | None = None
    parent: str | None = None
    plain_i2c: bool | None = None
    functionality: int | None = None
    #: CAN: the netdev's operstate and bit rate (``None``: the sysfs tree does not say).
    operstate: str | None = None
    bitrate: int | None = None

    @property
    def usb_id(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"

    @property
    def on_usb(self) -> bool:
        return bool(self.port_path)


@dataclass(frozen=True, slots=True, kw_only=True)
class Flag:
    """An ambiguity a selection by serial would trip over, or an adapter that cannot serve."""

    problem: str  # "serial-at-two-paths", "dfu-serial-collision", "clone-serial", "smbus-only"
    serial: str
    port_paths: tuple[str, ...]
    message: str
    node: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryLink:
    """A ``transports:`` entry (or a device's own selectors for one), as binding needs it.

    ``node`` is what a uart, i2c or can link names its adapter by: the serial
    port (``/dev/ttyUSB0``, a ``/dev/serial/by-path`` name), ``/dev/i2c-<bus>``,
    the socketcan channel.
    """

    name: str
    kind: str
    serial: str | None = None
    port_path: str | None = None
    node: str | None = None
    #: Set when the selectors are a device's own (``transport: {use: name, …}``).
    device: str | None = None

    @property
    def selector(self) -> str:
        if self.port_path:
            return f"port-path {self.port_path}"
        if self.node:
            return f"node {self.node}"
        return f"serial {self.serial}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Discovery:
    """Everything found, the ambiguities, and inventory links whose device is not there."""

    devices: tuple[Found, ...]
    flags: tuple[Flag, ...] = ()
    missing: tuple[InventoryLink, ...] = field(default_factory=tuple)
