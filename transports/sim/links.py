"""Simulated endpoints for the bootloader links, built from a simulate-mode link request.

A transport in simulate mode asks here for the far end of its link; the
endpoint lives as long as the :class:`~transports.sim.world.SimulationWorld`
(a reconnect finds the chip as it left it) and is stopped by the world's
``close``. The simulated board is wired the way the manifest describes it:
the USART endpoint's BOOT0/NRST lines follow the link's ``boot0``/``reset``
options, which a device profile's ``quirks`` may override (``boot0``,
``reset``, ``invert-boot0``, ``invert-reset``) for fixtures driven by entry
sequences.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from transports.sim.bootloader import BootloaderCore, Link, bootloader_profile
from transports.sim.bootloader_stream import StreamBootloader
from transports.sim.canbus import CanBootloaderNode, node_on
from transports.sim.smbus import SimI2cBus
from transports.sim.usart import UsartEndpoint, Wiring, register_endpoint, unregister_endpoint

if TYPE_CHECKING:
    from transports.base import LinkRequest
    from transports.sim.world import SimulationWorld

__all__ = ["bootloader_core", "can_channel", "can_channel_name", "can_node", "i2c_bus",
           "usart_key", "usart_url", "world_of"]


def world_of(request: LinkRequest) -> SimulationWorld:
    if request.simulation is None:
        raise ValueError("not a simulate-mode request")
    return request.simulation


def bootloader_core(request: LinkRequest, link: Link) -> BootloaderCore:
    """A fresh ROM core for the device's simulated chip, as its profile describes it."""
    world = world_of(request)
    sim = world.chip(request.device, request.chip)
    quirks = world.profile(request.device).quirks
    return BootloaderCore(sim, bootloader_profile(request.chip, link, quirks))


def _wiring(options: dict[str, Any]) -> Wiring:
    def line(name: str) -> str | None:
        value = options.get(name, "none")
        return None if value == "none" else str(value)
    return Wiring(boot0=line("boot0"), reset=line("reset"),
                  invert_boot0=bool(options.get("invert-boot0", False)),
                  invert_reset=bool(options.get("invert-reset", False)))


def usart_url(request: LinkRequest) -> tuple[str, Callable[[float], None]]:
    """The ``flashsim://`` URL of the device's simulated board, and a sleep on its clock."""
    world = world_of(request)
    sim = world.chip(request.device, request.chip)
    key = usart_key(world, request.link, request.device)

    def factory() -> str:
        options = {**dict(request.options), **dict(world.profile(request.device).quirks)}
        stream = StreamBootloader(bootloader_core(request, Link.USART), Link.USART)
        url = register_endpoint(key, UsartEndpoint(stream, _wiring(options)))
        world.on_close(lambda: unregister_endpoint(key))
        return url

    url: str = world.shared(f"usart:{request.link}:{request.device}", factory)
    return url, sim.clock.advance


def i2c_bus(request: LinkRequest, bus: str, address: int, clock_hz: int) -> SimI2cBus:
    """The simulated adapter ``bus`` with the device's ROM attached at ``address``.

    A device profile's ``smbus-only: true`` quirk makes the adapter SMBus-only.
    """
    world = world_of(request)
    quirks = world.profile(request.device).quirks
    adapter: SimI2cBus = world.shared(
        f"i2c:{bus}", lambda: SimI2cBus(clock_hz=clock_hz,
                                        smbus_only=bool(quirks.get("smbus-only", False))))
    if address not in adapter.devices:
        stream = StreamBootloader(bootloader_core(request, Link.I2C), Link.I2C)
        adapter.attach(address, stream)
    return adapter


def can_channel(request: LinkRequest, bitrate: int) -> str:
    """A ``virtual`` bus channel, unique to this world and device, with the ROM node on it.

    AN3154 has no node addressing, so every simulated device gets a bus of its own.
    """
    world = world_of(request)
    channel = can_channel_name(world, request.link, request.device)

    def factory() -> CanBootloaderNode:
        quirks = world.profile(request.device).quirks
        node = CanBootloaderNode(bootloader_core(request, Link.CAN), channel, bitrate=bitrate,
                                 erase_style=str(quirks.get("can-erase", "an3154")))
        world.on_close(node.stop)
        return node

    node: CanBootloaderNode = world.shared(f"can:{channel}", factory)
    return node.channel


def can_channel_name(world: SimulationWorld, link: str, device: str) -> str:
    """The virtual channel the device's simulated node listens on."""
    return f"flashrunner-{id(world):x}-{link}-{device}"


def can_node(world: SimulationWorld, link: str, device: str) -> CanBootloaderNode | None:
    """The device's simulated CAN node, once a session has created it."""
    return node_on(can_channel_name(world, link, device))


def usart_key(world: SimulationWorld, link: str, device: str) -> str:
    """The ``flashsim://`` key of the device's simulated board."""
    return f"{id(world):x}.{link}.{device}"
