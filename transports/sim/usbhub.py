"""A simulated USB hub on the shared pyusb backend: per-port power, children that vanish.

The hub is a :class:`~transports.sim.usb.SimUsbDevice` of class 9 answering the
USB 2.0 §11.24 hub class requests a host uses to switch port power:
GetHubDescriptor (a SuperSpeed descriptor when the hub is the USB 3 half),
GetPortStatus, Set/ClearPortFeature(PORT_POWER). Boards are attached to its
ports (:meth:`SimUsbHub.attach`); cutting a port's power powers them down —
they leave the bus and their chip loses power, which is the only thing that
clears a ``wedged`` fault — and restoring it powers them up again after
bPwrOn2PwrGood, re-enumerating under the same port path.

Settings model the hubs of the field: ``ganged`` (wHubCharacteristics LPSM 00:
every port switches together), ``superspeed`` with a ``peer`` (the USB 3 hub's
two halves), and ``repowers_after_s`` (the kernel's hub driver turns a port
that was switched off by a hub request back on after a while; the sysfs
``disable`` path is immune, as on Linux ≥ 6.0).
"""

from __future__ import annotations

import struct
from typing import Protocol

from transports.sim.clock import SimClock
from transports.sim.usb import ControlRequest, DeviceInfo, SimUsbBackend, SimUsbDevice, UsbStall

__all__ = ["PoweredBoard", "SimUsbHub"]

_GET_STATUS, _CLEAR_FEATURE, _SET_FEATURE, _GET_DESCRIPTOR = 0x00, 0x01, 0x03, 0x06
_PORT_POWER = 8
_PORT_STAT_CONNECTION, _PORT_STAT_ENABLE = 0x0001, 0x0002
_PORT_STAT_POWER, _SS_PORT_STAT_POWER = 0x0100, 0x0200


class PoweredBoard(Protocol):
    """Something that draws its power from a hub port."""

    def power_off(self) -> None: ...

    def power_on(self) -> None: ...

    @property
    def present(self) -> bool:
        """On the bus now (for the port's connection bit)."""


class SimUsbHub(SimUsbDevice):
    """A hub at ``bus-ports`` (e.g. bus 1, ports (1,) → ``1-1``) with ``nports`` ports."""

    def __init__(self, backend: SimUsbBackend, clock: SimClock, *, bus: int,
                 ports: tuple[int, ...], nports: int = 4, ganged: bool = False,
                 superspeed: bool = False, power_good_ms: int = 100,
                 repowers_after_s: float | None = None) -> None:
        super().__init__()
        self.backend, self.clock = backend, clock
        self.nports, self.ganged, self.superspeed = nports, ganged, superspeed
        self.power_good_ms, self.repowers_after_s = power_good_ms, repowers_after_s
        self.info = DeviceInfo(vendor_id=0x0424, product_id=0x2514 if not superspeed else 0x5534,
                               bcd_usb=0x0300 if superspeed else 0x0210, device_class=9,
                               manufacturer="Microchip", product="USB hub", bus=bus,
                               address=10 + len(backend.devices), port_numbers=ports)
        self.powered = dict.fromkeys(range(1, nports + 1), True)
        self.boards: dict[int, list[PoweredBoard]] = {}
        self.peer: SimUsbHub | None = None
        self._off_since: dict[int, float] = {}
        self.switches: list[tuple[float, int, bool, str]] = []  # (sim time, port, on, how)
        backend.plug(self)

    @property
    def path(self) -> str:
        return f"{self.info.bus}-{'.'.join(str(p) for p in self.info.port_numbers)}"

    def child_path(self, port: int) -> str:
        return f"{self.path}.{port}"

    def attach(self, port: int, board: PoweredBoard) -> None:
        if not 1 <= port <= self.nports:
            raise ValueError(f"hub {self.path} has no port {port}")
        self.boards.setdefault(port, []).append(board)

    # ------------------------------------------------------------------ power

    def set_power(self, port: int, on: bool, how: str) -> None:
        """Switch ``port`` (every port on a ganged hub), its peer's too."""
        self._repower_due()
        ports = list(self.powered) if self.ganged else [port]
        for number in ports:
            if self.powered[number] == on:
                continue
            self.powered[number] = on
            self.switches.append((self.clock.elapsed, number, on, how))
            if on:
                self._off_since.pop(number, None)
                self.clock.advance(self.power_good_ms / 1000)
                for board in self.boards.get(number, []):
                    board.power_on()
            else:
                self._off_since[number] = self.clock.elapsed if how == "hub-request" else -1.0
                for board in self.boards.get(number, []):
                    board.power_off()
        if self.peer is not None and self.peer.powered.get(port) != on:
            self.peer.set_power(port, on, how)

    def _repower_due(self) -> None:
        """The kernel's hub driver re-powers ports switched off behind its back."""
        if self.repowers_after_s is None:
            return
        for port, since in list(self._off_since.items()):
            if since >= 0 and self.clock.elapsed - since >= self.repowers_after_s:
                del self._off_since[port]
                self.set_power(port, True, "kernel")

    # ------------------------------------------------------------------ requests

    def _descriptor(self) -> bytes:
        characteristics = 0x0000 if self.ganged else 0x0001  # LPSM bits 1:0
        if self.superspeed:  # USB 3.2 §10.15.2.1
            return struct.pack("<BBBHBBBHH", 12, 0x2A, self.nports, characteristics,
                               self.power_good_ms // 2, 0, 0, 0, 0)[:12]
        removable = 0
        return struct.pack("<BBBHBBBB", 9, 0x29, self.nports, characteristics,
                           self.power_good_ms // 2, 0, removable, 0xFF)

    def _port_status(self, port: int) -> bytes:
        self._repower_due()
        if not 1 <= port <= self.nports:
            raise UsbStall
        status = 0
        if self.powered[port]:
            status |= _SS_PORT_STAT_POWER if self.superspeed else _PORT_STAT_POWER
            if any(board.present for board in self.boards.get(port, [])):
                status |= _PORT_STAT_CONNECTION | _PORT_STAT_ENABLE
        return struct.pack("<HH", status, 0)

    def control(self, request: ControlRequest) -> bytes | None:
        if request.kind != 1:
            raise UsbStall
        recipient = request.request_type & 0x1F
        if request.request == _GET_DESCRIPTOR and recipient == 0 and request.is_in:
            if (request.value >> 8) != (0x2A if self.superspeed else 0x29):
                raise UsbStall
            return self._descriptor()
        if request.request == _GET_STATUS and recipient == 3 and request.is_in:
            return self._port_status(request.index)
        if request.request in (_SET_FEATURE, _CLEAR_FEATURE) and recipient == 3:
            if request.value != _PORT_POWER or not 1 <= request.index <= self.nports:
                raise UsbStall
            self.set_power(request.index, request.request == _SET_FEATURE, "hub-request")
            return None
        raise UsbStall
