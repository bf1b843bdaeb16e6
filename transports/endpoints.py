"""The endpoint seam: where a session gets the far end of its link.

A driver never decides whether it talks to hardware or to a simulator. The
run is composed once (``runner.launch``) with one :class:`Endpoints`
provider, carried to every session in :attr:`LinkRequest.endpoints
<transports.base.LinkRequest.endpoints>`; the driver asks it for its port,
bus adapter, USB backend and clock, and runs the same code whatever it gets.
:class:`HardwareEndpoints` returns the real things; the simulator's provider
(:class:`transports.sim.endpoints.SimulatedEndpoints`) returns simulated
far ends with the same interfaces. See docs/architecture.md, "The endpoint
seam".

Adding an endpoint (a GPIO chip, a USB hub, a sysfs tree) is one method here,
its hardware implementation in :class:`HardwareEndpoints` and the simulated
one in the simulator's provider. Each method takes the session's request, so
a provider can tell which device and link the endpoint is for.

This module imports the wire libraries lazily: a missing optional package
(python-can) only matters to the link that needs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from transports.errors import ConnectError

if TYPE_CHECKING:
    import can
    import serial
    from smbus2 import I2cFunc, i2c_msg

    from transports.base import LinkRequest
    from transports.chips import FlashBlock
    from transports.gpio import GpioBackend
    from transports.power.sysfs import Sysfs

__all__ = ["HARDWARE", "WALL_CLOCK", "Clock", "Endpoints", "HardwareEndpoints", "HostControl",
           "I2cAdapter", "MemoryPort", "WallClock", "open_i2c_adapter"]


class Clock(Protocol):
    """The timebase a driver waits and sets deadlines with.

    On hardware it is the host's monotonic clock; in a rehearsal it is the
    simulated chip's, which also passes while the host sleeps (docs/architecture.md,
    "Simulated time").
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean anything)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        ...


class WallClock:
    """The host's clock: :func:`time.monotonic` and :func:`time.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


#: The host's clock, for sessions and tests made without an endpoint provider.
WALL_CLOCK = WallClock()


class I2cAdapter(Protocol):
    """What smbus2's ``SMBus`` offers that the I2C link uses."""

    funcs: I2cFunc

    def i2c_rdwr(self, *messages: i2c_msg) -> None: ...

    def close(self) -> None: ...


def open_i2c_adapter(bus: int | str) -> I2cAdapter:
    """``/dev/i2c-<bus>`` (or the path ``bus``) opened with smbus2 (``funcs``: I2C_FUNCS).

    Raises:
        OSError: no such adapter (ENOENT), or no permission to open it.
    """
    from smbus2 import SMBus

    adapter: I2cAdapter = SMBus(bus)
    return adapter


class MemoryPort(Protocol):
    """The far end of ``kind: sim``: a chip's memory reached through no protocol.

    Exists only in simulation. Each method raises the transport errors
    (:mod:`transports.errors`) a link would: timeouts, NACKs, link loss,
    readout protection, erase and write failures.
    """

    def connect(self) -> None: ...

    def identity(self) -> tuple[int, str, int, int]:
        """(DEV_ID, UID as hex, flash size in bytes, RDP level)."""
        ...

    def mass_erase(self) -> None: ...

    def erase(self, block: FlashBlock) -> None: ...

    def program(self, address: int, data: bytes) -> None: ...

    def read(self, address: int, length: int) -> bytes: ...

    def crc(self, address: int, length: int) -> int:
        """The chip's CRC unit over the area (``stm32-crc32``)."""
        ...

    def reset(self) -> None: ...

    def option_bytes(self) -> tuple[bytes, int]:
        """(the option-byte area, its RDP level)."""
        ...

    def set_rdp_level(self, level: int) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class HostControl:
    """What the station controls beside its links: hub ports, sysfs, GPIO chips.

    Attributes:
        usb_backend: the pyusb backend hubs are found through (``None``: libusb).
        sysfs: the station's sysfs (hub ports' ``disable`` files).
        gpio: the GPIO backend (``None``: libgpiod, opened on first use).
        clock: the timebase power-good and pulse times are waited on.
        i2c_adapter: opens ``/dev/i2c-<bus>`` as the I2C link's endpoint does, so
            discovery reads an adapter's functionality from the adapter itself.
    """

    usb_backend: Any
    sysfs: Sysfs
    gpio: GpioBackend | None
    clock: Clock
    i2c_adapter: Callable[[int], I2cAdapter] = open_i2c_adapter


class Endpoints(Protocol):
    """Everything a session may reach outside the process. One provider per run."""

    def clock(self, request: LinkRequest) -> Clock:
        """The timebase of ``request``'s session."""
        ...

    def serial_port(self, request: LinkRequest, port: str) -> serial.SerialBase:
        """``port`` (a device path or pyserial URL) as an *unopened* pyserial port."""
        ...

    def i2c_adapter(self, request: LinkRequest, bus: int | str, *, address: int,
                    clock_hz: int) -> I2cAdapter:
        """The I2C adapter ``bus`` (``/dev/i2c-<bus>``), opened; the session closes it.

        ``address`` is the chip's 7-bit address on it and ``clock_hz`` the bus
        clock (the kernel sets the real one; a simulated bus is timed by it).
        """
        ...

    def can_bus(self, request: LinkRequest, *, interface: str, channel: str,
                bitrate: int | None) -> can.BusABC:
        """A python-can bus; ``bitrate`` ``None`` leaves the rate to the OS (socketcan)."""
        ...

    def usb_backend(self, request: LinkRequest) -> Any:
        """The pyusb backend to search (``None``: pyusb's default, libusb)."""
        ...

    def memory_port(self, request: LinkRequest) -> MemoryPort:
        """The far end of a ``kind: sim`` link (simulation only)."""
        ...

    def host_control(self) -> HostControl:
        """Hub port power, sysfs and GPIO (docs/architecture.md, "Hardware control")."""
        ...


class HardwareEndpoints:
    """The real far ends: serial ports, i2c-dev, python-can, libusb, the host clock."""

    def clock(self, request: LinkRequest) -> Clock:
        return WALL_CLOCK

    def serial_port(self, request: LinkRequest, port: str) -> serial.SerialBase:
        import serial

        return serial.serial_for_url(port, do_not_open=True)

    def i2c_adapter(self, request: LinkRequest, bus: int | str, *, address: int,
                    clock_hz: int) -> I2cAdapter:
        return open_i2c_adapter(bus)

    def can_bus(self, request: LinkRequest, *, interface: str, channel: str,
                bitrate: int | None) -> can.BusABC:
        import can

        extra: dict[str, Any] = {} if bitrate is None else {"bitrate": bitrate}
        return can.Bus(interface=interface, channel=channel, **extra)

    def usb_backend(self, request: LinkRequest) -> Any:
        return None

    def host_control(self) -> HostControl:
        from transports.power.sysfs import HostSysfs

        return HostControl(usb_backend=None, sysfs=HostSysfs(), gpio=None, clock=WALL_CLOCK)

    def memory_port(self, request: LinkRequest) -> MemoryPort:
        raise ConnectError(f"link {request.link} is of kind {request.kind}, which only "
                           f"exists in simulation", hint="run with --simulate or set "
                                                         "simulate: true",
                           transport=request.link, device=request.device)


#: The provider of a run on real hardware.
HARDWARE = HardwareEndpoints()
