"""The simulated station's hardware control: hubs, a sysfs tree and GPIO chips, wired to boards.

One :class:`SimHardware` per simulation world (:func:`sim_hardware`). The run's
composition declares what the inventory names — hubs by port path, GPIO chips
by label, and for each device the lines its NRST and BOOT0 are on — and every
simulated board is attached when it is created (:meth:`SimHardware.attach`):
to the hub port its USB port path hangs off, and to its GPIO lines, so cutting
the port or pulsing NRST does to it what it does to a real board.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from transports.sim.clock import SimClock
from transports.sim.gpio import SimGpioBackend, SimGpioChip
from transports.sim.sysfs import SimSysfs
from transports.sim.usb import SimUsbBackend
from transports.sim.usbhub import PoweredBoard, SimUsbHub

if TYPE_CHECKING:
    from transports.sim.world import SimulationWorld

__all__ = ["PinnedBoard", "PortBoard", "SimHardware", "sim_hardware"]


class PortBoard(PoweredBoard, Protocol):
    """Something on a USB port path (``""``: not on a simulated hub)."""

    @property
    def port_path(self) -> str: ...


class PinnedBoard(PortBoard, Protocol):
    """A board with NRST and BOOT0 pins (and a USB port path when it has one)."""

    def set_nrst(self, level: bool) -> None: ...

    def set_boot0(self, level: bool) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class _Line:
    chip: str
    line: str | int
    active_low: bool


def _parent(path: str) -> tuple[str, int] | None:
    hub, sep, port = path.rpartition(".")
    return (hub, int(port)) if sep and port.isdigit() else None


class SimHardware:
    """Hubs, sysfs and GPIO chips of one simulation world."""

    def __init__(self, backend: SimUsbBackend, clock: SimClock) -> None:
        self.backend, self.clock = backend, clock
        self.hubs: dict[str, SimUsbHub] = {}
        self.sysfs = SimSysfs()
        self.gpio = SimGpioBackend([], clock)
        self._pins: dict[str, dict[str, _Line]] = {}
        self._boards: dict[str, PortBoard] = {}
        self._lock = threading.RLock()

    def hub(self, path: str, settings: Mapping[str, Any] | None = None) -> SimUsbHub:
        """The hub at ``path`` (created on first use, with ``simulation.hubs`` settings)."""
        with self._lock:
            if path in self.hubs:
                return self.hubs[path]
            settings = settings or {}
            bus, _, ports = path.partition("-")
            hub = SimUsbHub(self.backend, self.clock, bus=int(bus),
                            ports=tuple(int(p) for p in ports.split(".")),
                            nports=int(settings.get("ports", 7)),
                            ganged=bool(settings.get("ganged", False)),
                            repowers_after_s=settings.get("repowers-after"))
            self.hubs[path] = hub
            peer_path = settings.get("superspeed-peer")
            if peer_path:
                bus, _, ports = str(peer_path).partition("-")
                peer = SimUsbHub(self.backend, self.clock, bus=int(bus),
                                 ports=tuple(int(p) for p in ports.split(".")),
                                 nports=hub.nports, ganged=hub.ganged, superspeed=True)
                hub.peer, peer.peer = peer, hub
                self.hubs[str(peer_path)] = peer
            self.sysfs.mode = str(settings.get("sysfs", "writable"))
            self.sysfs.add_hub(hub)
            if hub.peer is not None:
                self.sysfs.add_hub(hub.peer)
            self.sysfs.mode = "writable"
            for device, board in self._boards.items():
                self._plug(device, board)
            return hub

    def gpio_chip(self, label: str, lines: int = 28) -> SimGpioChip:
        with self._lock:
            for chip in self.gpio.chips:
                if label in (chip.label, chip.path):
                    return chip
            chip = SimGpioChip(label, f"/dev/gpiochip{len(self.gpio.chips)}", lines)
            self.gpio.chips.append(chip)
            return chip

    def pin(self, device: str, role: str, *, chip: str, line: str | int,
            active_low: bool) -> None:
        """Wire ``device``'s ``nrst`` or ``boot0`` to a line (of a chip made on first use)."""
        with self._lock:
            self.gpio_chip(chip)
            self._pins.setdefault(device, {})[role] = _Line(chip=chip, line=line,
                                                            active_low=active_low)

    def attach(self, device: str, board: PinnedBoard) -> None:
        """A board was created: plug it into its hub port and its GPIO lines."""
        with self._lock:
            self._boards[device] = board
            self._plug(device, board)
            for role, line in self._pins.get(device, {}).items():
                setter = board.set_nrst if role == "nrst" else board.set_boot0
                self.gpio_chip(line.chip).wire(line.line, setter)
                if role == "boot0":
                    board.set_boot0(True)  # pulled to the strapped level until driven

    def attach_powered(self, name: str, board: PortBoard) -> None:
        """Something without pins (a probe) was created: plug it into its hub port."""
        with self._lock:
            self._boards[name] = board
            self._plug(name, board)

    def _plug(self, device: str, board: PortBoard) -> None:
        parent = _parent(board.port_path)
        if parent is None or parent[0] not in self.hubs:
            return
        hub, port = self.hubs[parent[0]], parent[1]
        if board not in hub.boards.get(port, []):
            hub.attach(port, board)

    def close(self) -> None:
        self.sysfs.close()


def sim_hardware(world: SimulationWorld) -> SimHardware:
    """The world's simulated hardware control (created on first use)."""
    def build() -> SimHardware:
        hardware = SimHardware(world.shared("usb", SimUsbBackend), SimClock(world.time_scale))
        world.on_close(hardware.close)
        return hardware

    return world.shared("hardware-control", build)
