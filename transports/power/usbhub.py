"""Power to one port of a USB hub: sysfs ``disable`` first, hub class requests otherwise.

On Linux ≥ 6.0 each hub port has a sysfs ``disable`` file; writing "1" cuts
the port's power (on hubs that switch power) and keeps the kernel from
re-powering it, "0" restores it. Without it (older kernels, no permission)
the port is switched with the USB 2.0 hub class requests of USB 2.0 §11.24
through pyusb: ClearPortFeature / SetPortFeature(PORT_POWER), confirmed with
GetPortStatus. The hub descriptor says whether the hub switches power per
port (wHubCharacteristics bits 1:0) and how long power takes to be good
(bPwrOn2PwrGood x 2 ms).

A ganged hub switches every port at once: it is refused unless the
inventory says ``ganged: true``, and then the whole hub is the resource a
cycle holds. A USB 3 hub is two hubs (USB 2 and SuperSpeed halves); the port's
``peer`` link in sysfs names the other half, which is switched too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transports.errors import HardwareControlError
from transports.power.sysfs import Sysfs, port_dir
from transports.usb import find_devices, port_path

__all__ = ["HubDescriptor", "UsbHubPort", "find_hub", "parse_hub_path", "read_descriptor"]

# USB 2.0 §11.24.2 hub class requests (bmRequestType, bRequest).
_GET_HUB_DESCRIPTOR = (0xA0, 0x06)
_GET_PORT_STATUS = (0xA3, 0x00)
_CLEAR_PORT_FEATURE = (0x23, 0x01)
_SET_PORT_FEATURE = (0x23, 0x03)
_PORT_POWER = 8
_HUB_DESCRIPTOR, _SS_HUB_DESCRIPTOR = 0x29, 0x2A
_PORT_STAT_POWER, _SS_PORT_STAT_POWER = 0x0100, 0x0200
_TIMEOUT_MS = 1000
_UDEV_HINT = ("install the udev rules shipped in transports/udev/99-flashrunner.rules so the "
              "port's disable file is writable, or run on Linux 6.0 or newer")


def parse_hub_path(path: str) -> tuple[int, tuple[int, ...]]:
    """``1-1.4`` → bus 1, ports (1, 4)."""
    bus, sep, ports = path.partition("-")
    try:
        if not sep or not ports:
            raise ValueError(path)
        return int(bus), tuple(int(p) for p in ports.split("."))
    except ValueError:
        raise HardwareControlError(f"{path!r} is not a USB port path such as 1-1.4",
                                   hint="take the hub's path from `flashrunner discover` or "
                                        "/sys/bus/usb/devices") from None


class HubDescriptor:
    """The fields of a hub descriptor that power switching needs (USB 2.0 §11.23.2.1)."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) < 7 or raw[1] not in (_HUB_DESCRIPTOR, _SS_HUB_DESCRIPTOR):
            raise HardwareControlError(f"the hub answered a malformed hub descriptor "
                                       f"({raw.hex()})")
        self.ports = raw[2]
        self.characteristics = int.from_bytes(raw[3:5], "little")
        self.power_good_s = raw[5] * 2 / 1000
        self.superspeed = raw[1] == _SS_HUB_DESCRIPTOR

    @property
    def switching(self) -> str:
        """``per-port``, ``ganged`` or ``none`` (wHubCharacteristics bits 1:0)."""
        mode = self.characteristics & 0x3
        return {0: "ganged", 1: "per-port"}.get(mode, "none")


def _descriptor_request(device: Any) -> tuple[int, int]:
    """(wValue, wLength) of GET_HUB_DESCRIPTOR for ``device`` (USB 2 or SuperSpeed)."""
    superspeed = int(getattr(device, "bcdUSB", 0x200)) >= 0x300
    return ((_SS_HUB_DESCRIPTOR if superspeed else _HUB_DESCRIPTOR) << 8,
            12 if superspeed else 9)


def read_descriptor(device: Any) -> HubDescriptor:
    """The hub descriptor of the pyusb hub ``device`` (discovery reports its switching).

    Raises:
        usb.core.USBError: the hub did not answer; HardwareControlError: malformed.
    """
    value, length = _descriptor_request(device)
    return HubDescriptor(bytes(device.ctrl_transfer(*_GET_HUB_DESCRIPTOR, value, 0, length,
                                                    timeout=_TIMEOUT_MS)))


def find_hub(backend: Any, path: str) -> Any:
    """The pyusb device of the hub at ``path`` (``None`` when there is none)."""
    parse_hub_path(path)
    return next((device for device in find_devices(backend, what="USB hub")
                 if device.bDeviceClass == 9 and port_path(device) == path), None)


class UsbHubPort:
    """Port ``port`` of the hub at ``hub`` (a port path such as ``1-1.4``).

    Args:
        usb_backend: the pyusb backend the hub is found through (``None``: libusb).
        sysfs: where the port's ``disable`` file is looked for.
        ganged: the inventory accepts a hub that switches all ports together.
        sleep, monotonic: the run's clock.
    """

    def __init__(self, hub: str, port: int, *, usb_backend: Any, sysfs: Sysfs,
                 ganged: bool = False, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        parse_hub_path(hub)
        if port < 1:
            raise HardwareControlError(f"hub ports count from 1, not {port}")
        self.hub, self.port, self.ganged = hub, port, ganged
        self.usb_backend, self.sysfs = usb_backend, sysfs
        self.sleep, self.monotonic = sleep, monotonic
        self.resource = f"usb-hub:{hub}" if ganged else f"usb-hub:{hub}:{port}"
        self._descriptor: HubDescriptor | None = None
        self._device: Any = None
        self.method: str | None = None
        self.fallback_reason: str | None = None

    # ------------------------------------------------------------------ the hub

    def _hub(self) -> Any:
        if self._device is None:
            self._device = find_hub(self.usb_backend, self.hub)
            if self._device is None:
                raise HardwareControlError(f"no USB hub at {self.hub}",
                                           hint="check the hub's port path with "
                                                "`flashrunner discover`")
        return self._device

    def descriptor(self) -> HubDescriptor:
        """Read (once) and check the hub descriptor: per-port switching, port number."""
        if self._descriptor is None:
            value, length = _descriptor_request(self._hub())
            raw = bytes(self._control(_GET_HUB_DESCRIPTOR, value, 0, length))
            descriptor = HubDescriptor(raw)
            if descriptor.switching == "none":
                raise HardwareControlError(f"the hub at {self.hub} cannot switch port power",
                                           hint="use a hub with per-port power switching")
            if descriptor.switching == "ganged" and not self.ganged:
                raise HardwareControlError(
                    f"the hub at {self.hub} switches power to all its ports together "
                    f"(ganged): cutting port {self.port} would cut every board on it",
                    hint="use a hub with per-port power switching, or set ganged: true on "
                         "the hub if cutting all its ports at once is acceptable")
            if not 1 <= self.port <= descriptor.ports:
                raise HardwareControlError(f"the hub at {self.hub} has {descriptor.ports} "
                                           f"ports; there is no port {self.port}")
            self._descriptor = descriptor
        return self._descriptor

    def _control(self, request: tuple[int, int], value: int, index: int,
                 data_or_length: int | None = None) -> Any:
        import usb.core

        try:
            return self._hub().ctrl_transfer(request[0], request[1], value, index,
                                              data_or_length, timeout=_TIMEOUT_MS)
        except usb.core.USBError as error:
            raise HardwareControlError(f"the hub at {self.hub} refused a port request "
                                       f"({error})", hint=_UDEV_HINT) from error

    def is_on(self) -> bool | None:
        descriptor = self.descriptor()
        status = int.from_bytes(bytes(self._control(_GET_PORT_STATUS, 0, self.port, 4))[:2],
                                "little")
        mask = _SS_PORT_STAT_POWER if descriptor.superspeed else _PORT_STAT_POWER
        return bool(status & mask)

    # ------------------------------------------------------------------ switching

    def _ports(self) -> list[tuple[str, int]]:
        """This port, and its peer on the other half of a USB 3 hub."""
        ports = [(self.hub, self.port)]
        peer = self.sysfs.resolve(f"{port_dir(self.hub, self.port)}/peer")
        if peer:
            name = peer.rstrip("/").rsplit("/", 1)[-1]  # e.g. 2-1-port3
            hub, _, number = name.rpartition("-port")
            if hub and number.isdigit():
                ports.append((hub, int(number)))
        return ports

    def _choose_method(self) -> str:
        disable = f"{port_dir(self.hub, self.port)}/disable"
        if not self.sysfs.exists(disable):
            self.fallback_reason = (f"{disable} does not exist (Linux before 6.0, or the hub "
                                    f"does not offer it)")
            return "hub-request"
        if not self.sysfs.writable(disable):
            self.fallback_reason = f"{disable} is not writable; {_UDEV_HINT}"
            return "hub-request"
        self.fallback_reason = None
        return "sysfs"

    def _switch(self, on: bool) -> None:
        self.descriptor()
        method = self.method = self._choose_method()
        for hub, port in self._ports():
            if method == "sysfs":
                self.sysfs.write(f"{port_dir(hub, port)}/disable", "0" if on else "1")
            elif (hub, port) == (self.hub, self.port):
                request = _SET_PORT_FEATURE if on else _CLEAR_PORT_FEATURE
                self._control(request, _PORT_POWER, port)
            else:
                peer = UsbHubPort(hub, port, usb_backend=self.usb_backend, sysfs=self.sysfs,
                                  ganged=self.ganged, sleep=self.sleep, monotonic=self.monotonic)
                peer._switch(on)

    def describe(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"hub": self.hub, "port": self.port}
        if self.method:
            fields["method"] = self.method
        if self.fallback_reason:
            fields["fallback_reason"] = self.fallback_reason
        peers = self._ports()[1:]
        if peers:
            fields["peer"] = f"{peers[0][0]} port {peers[0][1]}"
        return fields

    def off(self) -> dict[str, Any]:
        self._switch(False)
        if self.is_on():
            raise HardwareControlError(f"port {self.port} of the hub at {self.hub} still has "
                                       f"power after it was switched off",
                                       hint="this hub may cut only data, not VBUS: use a hub "
                                            "that switches VBUS per port")
        return self.describe()

    def on(self) -> dict[str, Any]:
        self._switch(True)
        self.sleep(self.descriptor().power_good_s)
        if self.is_on() is False:
            raise HardwareControlError(f"port {self.port} of the hub at {self.hub} did not "
                                       f"power up")
        return {**self.describe(), "power_good_s": self.descriptor().power_good_s}

    def still_off(self) -> None:
        """After the off time: the port must still be off (the kernel may re-power it).

        On the hub-request path the kernel's hub driver is free to power a port
        it manages back on (uhubctl issues #90, #93); retrying would only repeat
        it, so it is reported with what fixes it.
        """
        if self.is_on():
            raise HardwareControlError(
                f"port {self.port} of the hub at {self.hub} came back on by itself while it "
                f"was meant to be off ({self.method}); the kernel re-powers ports it manages",
                hint="use Linux 6.0 or newer and make the port's disable file writable (udev "
                     "rules in transports/udev/99-flashrunner.rules)")
