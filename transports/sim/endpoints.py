"""Simulated far ends for every link: the rehearsal's endpoint provider.

:class:`SimulatedEndpoints` implements :class:`transports.endpoints.Endpoints`
over one :class:`~transports.sim.world.SimulationWorld`: a ``flashsim://``
serial port for USART, a simulated I2C adapter, a python-can ``virtual`` bus
with the ROM node on it, the world's pyusb backend, a memory port for
``kind: sim``, and each device's chip clock. The drivers run unchanged on
top (docs/architecture.md, "The endpoint seam").

USB devices are different from the others: a driver *discovers* them. So
the boards and probes on the simulated bus are the ones plugged when the
run is composed (:meth:`SimulatedEndpoints.plug`, one call per device of the
plan) — never one a session plugs for itself — and a rehearsal's discovery
finds what a bench would: the boards that are there.

Endpoints live as long as the world (a reconnect finds the chip as it left
it) and are stopped by the world's ``close``. The simulated board is wired
the way the manifest describes it: the USART endpoint's BOOT0/NRST lines
follow the link's ``boot0``/``reset`` options, which a device profile's
``quirks`` may override (``boot0``, ``reset``, ``invert-boot0``,
``invert-reset``) for fixtures driven by entry sequences, and its adapter has
the latency timer ``latency-timer`` gives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import serial

from transports.chips import Chip
from transports.sim.adapters import laid_out_i2c
from transports.sim.bootloader import BootloaderCore, Link, bootloader_profile
from transports.sim.bootloader_stream import StreamBootloader
from transports.sim.canbus import CanBootloaderNode, node_on
from transports.sim.clock import SimTimebase
from transports.sim.control import sim_hardware
from transports.sim.dfu import plug_rom_dfu
from transports.sim.memory_port import SimMemoryPort
from transports.sim.smbus import SimI2cBus
from transports.sim.stlink import attach_probe
from transports.sim.usart import (
    UsartEndpoint,
    Wiring,
    endpoint,
    register_endpoint,
    unregister_endpoint,
)
from transports.sim.usb import SimUsbBackend
from transports.sim.world import SimulationWorld

if TYPE_CHECKING:
    import can

    from transports.base import LinkRequest
    from transports.endpoints import Clock, HostControl, I2cAdapter, MemoryPort

__all__ = ["SimulatedEndpoints", "can_channel_name", "can_node", "simulated_request",
           "usart_key"]


class SimulatedEndpoints:
    """The rehearsal's far ends, all from one simulation world."""

    def __init__(self, world: SimulationWorld) -> None:
        self.world = world
        self.backend: SimUsbBackend = world.shared("usb", SimUsbBackend)
        #: device → the key of the simulated ST-Link it is wired to
        self._probes: dict[str, str] = {}

    @classmethod
    def of(cls, world: SimulationWorld) -> SimulatedEndpoints:
        """The one provider of ``world`` (created on first use)."""
        provider: SimulatedEndpoints = world.shared("endpoints", lambda: cls(world))
        return provider

    # ------------------------------------------------------------------ composition

    def plug(self, *, device: str, link: str, kind: str, chip: Chip,
             options: Mapping[str, Any], resource: str | None = None) -> None:
        """Put ``device``'s board on the simulated USB bus, as a bench would have it.

        A ``dfu`` device's board is plugged with its BOOT0 high (the ROM DFU
        device enumerates), a ``stlink`` device's probe with the board behind it.
        Devices whose ``resource`` (the plan's resource key) is the same share one
        probe, as boards swapped under one ST-Link do. Other kinds need nothing
        plugged: their far end is opened by the session's endpoint call.
        """
        if kind == "dfu":
            plug_rom_dfu(self.world, self.backend, device, chip,
                         serial=options.get("serial"), port_path=options.get("port-path"))
        elif kind == "stlink":
            key = resource or f"device:{device}"
            attach_probe(self.world, device, chip, options.get("serial"), key=key,
                         port_path=options.get("port-path"))
            self._probes[device] = key

    # ------------------------------------------------------------------ Endpoints

    def clock(self, request: LinkRequest) -> Clock:
        return SimTimebase(self.world.chip(request.device, request.chip).clock)

    def serial_port(self, request: LinkRequest, port: str) -> serial.SerialBase:
        world = self.world
        key = usart_key(world, request.link, request.device)

        def factory() -> str:
            options = {**dict(request.options), **dict(world.profile(request.device).quirks)}
            stream = StreamBootloader(_bootloader_core(world, request, Link.USART), Link.USART)
            timer_ms = options.get("latency-timer")
            latency_s = None if timer_ms is None else int(timer_ms) / 1000
            board = UsartEndpoint(stream, _wiring(options), latency_timer_s=latency_s)
            url = register_endpoint(key, board)
            world.on_close(lambda: unregister_endpoint(key))
            sim_hardware(world).attach(request.device, board)  # BOOT0/NRST on GPIO, if wired
            return url

        url: str = world.shared(f"usart:{request.link}:{request.device}", factory)
        endpoint(key).stream.session_started()
        return serial.serial_for_url(url, do_not_open=True)

    def i2c_adapter(self, request: LinkRequest, bus: int | str, *, address: int,
                    clock_hz: int) -> I2cAdapter:
        """The simulated adapter ``bus`` with the device's ROM attached at ``address``.

        A device profile's ``smbus-only: true`` quirk makes the adapter SMBus-only.
        """
        world = self.world
        quirks = world.profile(request.device).quirks
        adapter: SimI2cBus = world.shared(
            f"i2c:{bus}", lambda: SimI2cBus(clock_hz=clock_hz,
                                            smbus_only=bool(quirks.get("smbus-only", False))))
        if address not in adapter.devices:
            stream = StreamBootloader(_bootloader_core(world, request, Link.I2C), Link.I2C)
            adapter.attach(address, stream)
        adapter.devices[address].session_started()
        return adapter

    def can_bus(self, request: LinkRequest, *, interface: str, channel: str,
                bitrate: int | None) -> can.BusABC:
        """A ``virtual`` bus unique to this world and device, with the ROM node on it.

        AN3154 has no node addressing, so every simulated device gets a bus of its
        own, whatever interface and channel the manifest names.
        """
        import can

        world = self.world
        name = can_channel_name(world, request.link, request.device)

        def factory() -> CanBootloaderNode:
            quirks = world.profile(request.device).quirks
            node = CanBootloaderNode(_bootloader_core(world, request, Link.CAN), name,
                                     bitrate=_ROM_BITRATE,
                                     erase_style=str(quirks.get("can-erase",
                                                                "an3154")))
            world.on_close(node.stop)
            return node

        node: CanBootloaderNode = world.shared(f"can:{name}", factory)
        node.session_started()
        return can.Bus(interface="virtual", channel=node.channel, receive_own_messages=False)

    def usb_backend(self, request: LinkRequest) -> Any:
        key = self._probes.get(request.device)
        if key is not None:
            # The bench swaps this device's board under its probe (a no-op when it is there).
            attach_probe(self.world, request.device, request.chip,
                         request.options.get("serial"), key=key)
        return self.backend

    def host_control(self) -> HostControl:
        from transports.endpoints import HostControl

        hardware = sim_hardware(self.world)
        return HostControl(usb_backend=hardware.backend, sysfs=hardware.sysfs,
                           gpio=hardware.gpio, clock=SimTimebase(hardware.clock),
                           i2c_adapter=self._i2c_adapter_of)

    def _i2c_adapter_of(self, bus: int) -> I2cAdapter:
        """The simulated adapter ``bus`` as the host opens it: absent unless laid out."""
        if bus not in laid_out_i2c(self.world):
            raise FileNotFoundError(2, "No such file or directory", f"/dev/i2c-{bus}")
        adapter: SimI2cBus = self.world.shared(f"i2c:{bus}", SimI2cBus)
        return adapter

    def memory_port(self, request: LinkRequest) -> MemoryPort:
        return SimMemoryPort(self.world.chip(request.device, request.chip),
                             link=request.link, device=request.device,
                             rate=float(request.options.get("rate", 100_000)))


#: AN3154: the CAN ROM always starts at 125 kbit/s.
_ROM_BITRATE = 125_000


def _bootloader_core(world: SimulationWorld, request: LinkRequest, link: Link) -> BootloaderCore:
    """A fresh ROM core for the device's simulated chip, as its profile describes it."""
    sim = world.chip(request.device, request.chip)
    quirks = world.profile(request.device).quirks
    return BootloaderCore(sim, bootloader_profile(request.chip, link, quirks))


def _wiring(options: Mapping[str, Any]) -> Wiring:
    def line(name: str) -> str | None:
        value = options.get(name, "none")  # a {gpio: …} pin is wired through SimHardware
        return None if value == "none" or not isinstance(value, str) else value
    return Wiring(boot0=line("boot0"), reset=line("reset"),
                  invert_boot0=bool(options.get("invert-boot0", False)),
                  invert_reset=bool(options.get("invert-reset", False)))


def can_channel_name(world: SimulationWorld, link: str, device: str) -> str:
    """The virtual channel the device's simulated node listens on."""
    return f"flashrunner-{id(world):x}-{link}-{device}"


def can_node(world: SimulationWorld, link: str, device: str) -> CanBootloaderNode | None:
    """The device's simulated CAN node, once a session has created it."""
    return node_on(can_channel_name(world, link, device))


def usart_key(world: SimulationWorld, link: str, device: str) -> str:
    """The ``flashsim://`` key of the device's simulated board."""
    return f"{id(world):x}.{link}.{device}"


def simulated_request(world: SimulationWorld, *, device: str, link: str, kind: str,
                      chip: Chip, options: Mapping[str, Any],
                      resource: str | None = None) -> LinkRequest:
    """A link request on ``world``'s endpoints, its board plugged as composition does.

    For tests and benchmarks that open one session without a plan; every
    request on ``world`` shares its one provider (:meth:`SimulatedEndpoints.of`).
    """
    from transports.base import LinkRequest

    endpoints = SimulatedEndpoints.of(world)
    endpoints.plug(device=device, link=link, kind=kind, chip=chip, options=options,
                   resource=resource)
    return LinkRequest(device=device, link=link, kind=kind, options=options, chip=chip,
                       endpoints=endpoints)
