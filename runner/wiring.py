"""A device's hardware control at run time: its power ports and BOOT0/NRST lines.

The manifest's ``wiring`` (docs/architecture.md, "Hardware control") is
resolved once per device by :func:`resolve_wiring` (``auto`` becomes the hub
and port the link's ``port-path`` hangs off), and a :class:`DeviceHardware`
opens what the recovery actions need through the run's
:class:`HardwareControl` — the host's hubs, sysfs and GPIO chips, or their
simulated stand-ins in a rehearsal. Every switch and line change is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runner.model import PowerRef, PowerSupply, Wiring
from transports.endpoints import HostControl
from transports.errors import HardwareControlError, LinkLost
from transports.gpio import GpioBackend, LineSpec, TargetPins
from transports.power import PortPower
from transports.power.sysfs import Sysfs

# Hubs, power commands and pyusb are imported by the runs that switch power: a run
# without wiring does not pay for them before its first byte (docs/architecture.md).

__all__ = ["DeviceHardware", "HardwareControl", "resolve_wiring"]


def resolve_wiring(wiring: Wiring, options: Mapping[str, Any]) -> Wiring | None:
    """``auto`` power refs resolved from the link's ``port-path``; ``None`` for no wiring."""
    if wiring == Wiring(location=wiring.location):
        return None
    path = str(options.get("port-path") or "")

    def concrete(ref: PowerRef | None) -> PowerRef | None:
        if ref is None or not ref.auto or "-" not in path:
            return ref
        hub, _, port = path.rpartition(".")
        if not hub:  # a port of the root hub (1-3): Linux calls that hub 1-0
            bus, _, port = path.partition("-")
            hub = f"{bus}-0"
        return PowerRef(supply=f"@{hub}", port=int(port))

    return replace(wiring, power=concrete(wiring.power), probe_power=concrete(wiring.probe_power))


@dataclass(slots=True, kw_only=True)
class HardwareControl:
    """What hardware control reaches on this host (or in this rehearsal).

    Attributes:
        usb_backend: the pyusb backend hubs are found through (``None``: libusb).
        sysfs: the host's sysfs (or a simulated tree).
        gpio: the GPIO backend (``None``: libgpiod, opened on first use).
        sleep, monotonic: the run's clock.
        run_command: runs a power adapter's argv (``subprocess.run`` on a host).
        supplies: the manifest's ``power:`` entries.
    """

    usb_backend: Any
    sysfs: Sysfs
    gpio: GpioBackend | None = None
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    run_command: Callable[..., Any] | None = None
    supplies: Mapping[str, PowerSupply] = field(default_factory=dict)

    @classmethod
    def of(cls, host: HostControl, supplies: Mapping[str, PowerSupply]) -> HardwareControl:
        """From an endpoint provider's :class:`~transports.endpoints.HostControl`."""
        return cls(usb_backend=host.usb_backend, sysfs=host.sysfs, gpio=host.gpio,
                   sleep=host.clock.sleep, monotonic=host.clock.monotonic, supplies=supplies)

    def gpio_backend(self) -> GpioBackend:
        if self.gpio is None:
            from transports.gpio import GpiodBackend

            self.gpio = GpiodBackend()
        return self.gpio

    def port(self, ref: PowerRef) -> PortPower:
        """The switch behind ``ref`` (``@<hub>`` is a hub found from a port path)."""
        from transports.power.command import CommandPower
        from transports.power.usbhub import UsbHubPort

        name = ref.supply or ""
        if name.startswith("@"):
            return UsbHubPort(name[1:], int(ref.port), usb_backend=self.usb_backend,
                              sysfs=self.sysfs, sleep=self.sleep, monotonic=self.monotonic)
        supply = self.supplies.get(name)
        if supply is None:
            raise HardwareControlError(f"no power supply {name!r}")
        if supply.kind == "usb-hub":
            assert supply.hub is not None
            return UsbHubPort(supply.hub, int(ref.port), usb_backend=self.usb_backend,
                              sysfs=self.sysfs, ganged=supply.ganged, sleep=self.sleep,
                              monotonic=self.monotonic)
        extra = {"run": self.run_command} if self.run_command is not None else {}
        return CommandPower(port=ref.port, off=supply.off, on=supply.on,
                            state=supply.state or None, timeout_s=supply.timeout_s, name=name,
                            **extra)

    def wait_enumerated(self, port_path: str, timeout_s: float) -> None:
        """Wait until a USB device shows up at ``port_path`` again (else link-lost)."""
        from transports.usb import find_devices
        from transports.usb import port_path as usb_port_path

        deadline = self.monotonic() + timeout_s
        while True:
            if any(usb_port_path(device) == port_path
                   for device in find_devices(self.usb_backend, what="USB device")):
                return
            if self.monotonic() >= deadline:
                raise LinkLost(f"nothing enumerated at USB port {port_path} within "
                               f"{timeout_s:g} s after its power came back",
                               hint="check the board's cable and supply")
            self.sleep(0.1)


#: ``(event, fields)``: how a device's hardware actions are reported.
Report = Callable[[str, Mapping[str, Any]], None]


class DeviceHardware:
    """One device's power ports and pins, opened as the recovery actions need them."""

    def __init__(self, control: HardwareControl, device: str, wiring: Wiring,
                 report: Report, *, rom_link: bool = False) -> None:
        self.control, self.device, self.wiring, self.report = control, device, wiring, report
        #: The link is the ROM bootloader (DFU, USART, I2C, CAN): BOOT0 rests high.
        self.rom_link = rom_link
        self._pins: TargetPins | None = None

    def pins(self) -> TargetPins:
        if self._pins is None:
            def line(spec: Any, open_drain: bool) -> LineSpec | None:
                if spec is None:
                    return None
                return LineSpec(chip=spec.chip, line=spec.line, active_low=spec.active_low,
                                open_drain=open_drain)

            def changed(role: str, active: bool, fields: Mapping[str, Any]) -> None:
                self.report("gpio", {"line_role": role, "active": active, **fields})

            self._pins = TargetPins(self.control.gpio_backend(), f"flashrunner:{self.device}",
                                    nrst=line(self.wiring.nrst, True),
                                    boot0=line(self.wiring.boot0, False), on_change=changed,
                                    sleep=self.control.sleep, monotonic=self.control.monotonic,
                                    boot0_rest=self.rom_link)
            self._pins.open()
        return self._pins

    def power_cycle(self, ref: PowerRef | None, what: str) -> dict[str, Any]:
        """Cut ``ref``'s port for the wiring's off time, restore it; the details."""
        if ref is None:
            raise HardwareControlError(f"{self.device} has no {what} wiring to power-cycle")
        port = self.control.port(ref)
        started = self.control.monotonic()
        fields = port.off()
        self.report("power", {"switch": "off", "target": what, **fields})
        self.control.sleep(self.wiring.off_time_s)
        port.still_off()
        off_s = self.control.monotonic() - started
        fields = port.on()
        self.report("power", {"switch": "on", "target": what, **fields,
                              "off_s": round(off_s, 3)})
        return {**fields, "target": what, "off_s": round(off_s, 3)}

    def close(self) -> None:
        pins, self._pins = self._pins, None
        if pins is not None:
            pins.close()
