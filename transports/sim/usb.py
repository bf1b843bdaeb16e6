"""A pyusb backend (``usb.backend.IBackend``) hosting simulated USB devices.

Drivers find devices with ``usb.core.find(backend=…)`` and talk to them through
pyusb's ordinary API; this backend answers like libusb would, so the driver
code is the production code. Each simulated device is a :class:`SimUsbDevice`
subclass that describes itself (:class:`DeviceInfo`, configurations,
interfaces, endpoints, strings) and handles its own class/vendor control
requests and bulk transfers; the backend handles the standard requests
(GET_DESCRIPTOR for device, configuration and string descriptors — the
configuration descriptor is served as one blob, extra descriptors included,
so a driver can find a DFU functional descriptor wherever the device puts it).

Errors are raised as libusb raises them: a stall is ``USBError`` with errno
EPIPE, a timeout ``USBTimeoutError``, an unplugged device ENODEV, a device the
user may not open EACCES, and claiming an interface that a kernel driver or
another program holds (:attr:`SimUsbDevice.held_by`: OpenOCD, a running
STM32CubeProgrammer) EBUSY, as libusb's usbfs claim answers.

The backend counts every transfer (control, bulk OUT, bulk IN) per device, so
benchmarks can report round trips per KiB deterministically.
"""

from __future__ import annotations

import array
import errno
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import usb.backend
import usb.core

__all__ = [
    "ConfigurationInfo",
    "ControlRequest",
    "DeviceInfo",
    "EndpointInfo",
    "InterfaceInfo",
    "SimUsbBackend",
    "SimUsbDevice",
    "TransferCounts",
    "UsbStall",
    "UsbTimeout",
]

# libusb error codes, as pyusb's libusb1 backend reports them.
_LIBUSB_ERROR_ACCESS = -3
_LIBUSB_ERROR_NO_DEVICE = -4
_LIBUSB_ERROR_BUSY = -6
_LIBUSB_ERROR_TIMEOUT = -7
_LIBUSB_ERROR_PIPE = -9
_LIBUSB_ERROR_NOT_FOUND = -5

_DESC_DEVICE = 1
_DESC_CONFIGURATION = 2
_DESC_STRING = 3
_DESC_INTERFACE = 4
_DESC_ENDPOINT = 5
_GET_DESCRIPTOR = 0x06
_GET_CONFIGURATION = 0x08
_GET_STATUS = 0x00
_SET_CONFIGURATION = 0x09
_SET_INTERFACE = 0x0B
_LANGID_EN_US = 0x0409


class UsbStall(Exception):  # a device-side signal, not a flashrunner error
    """Raised by a simulated device to stall the current transfer (EPIPE)."""


class UsbTimeout(Exception):  # a device-side signal, not a flashrunner error
    """Raised by a simulated device that does not answer (the host times out)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointInfo:
    address: int
    attributes: int = 0x02  # bulk
    max_packet_size: int = 64
    interval: int = 0
    extra: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class InterfaceInfo:
    number: int
    alternate: int = 0
    interface_class: int = 0xFF
    subclass: int = 0
    protocol: int = 0
    name: str | None = None
    endpoints: tuple[EndpointInfo, ...] = ()
    #: Class-specific descriptors following this interface descriptor.
    extra: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigurationInfo:
    value: int = 1
    attributes: int = 0x80
    max_power: int = 50
    interfaces: tuple[InterfaceInfo, ...] = ()
    #: Class-specific descriptors following the configuration descriptor itself.
    extra: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceInfo:
    """The device descriptor plus where the device sits on the bus.

    ``serial`` is a string, or raw bytes for devices whose serial string
    descriptor is not valid UTF-16 text (old ST-Link V2 firmware).
    """

    vendor_id: int
    product_id: int
    bcd_device: int = 0x0100
    bcd_usb: int = 0x0200
    device_class: int = 0
    subclass: int = 0
    protocol: int = 0
    max_packet_size0: int = 64
    manufacturer: str | None = "STMicroelectronics"
    product: str | None = None
    serial: str | bytes | None = None
    bus: int = 1
    address: int = 1
    port_numbers: tuple[int, ...] = (1,)
    speed: int = 3  # libusb: 3 = high speed


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlRequest:
    request_type: int
    request: int
    value: int
    index: int
    data: bytes = b""   # OUT payload
    length: int = 0     # IN: wLength
    timeout_ms: int = 0  # the host's timeout for this transfer (0: none, as in libusb)

    @property
    def is_in(self) -> bool:
        return bool(self.request_type & 0x80)

    @property
    def kind(self) -> int:
        """0 standard, 1 class, 2 vendor."""
        return (self.request_type >> 5) & 0x3


@dataclass(slots=True)
class TransferCounts:
    """Transfers seen by one device (each is one USB round trip)."""

    control: int = 0
    bulk_out: int = 0
    bulk_in: int = 0
    bytes_out: int = 0
    bytes_in: int = 0

    @property
    def total(self) -> int:
        return self.control + self.bulk_out + self.bulk_in


class SimUsbDevice:
    """Base class of simulated devices. Subclasses override the handlers they need.

    Handlers run in the caller's thread with the device's ``lock`` held.
    """

    info: DeviceInfo
    configurations: tuple[ConfigurationInfo, ...] = ()

    def __init__(self) -> None:
        self.lock = threading.RLock()
        #: Held while a descriptor is read on endpoint 0 (see SimUsbBackend.ctrl_transfer).
        self.descriptor_lock = threading.Lock()
        self.counts = TransferCounts()
        self.plugged = True
        self.accessible = True
        #: Another program that has claimed the device's interfaces (``None``: nobody).
        self.held_by: str | None = None
        self.kernel_driver: set[int] = set()
        self.configuration_value = 0
        self.alternates: dict[int, int] = {}
        self.claimed: set[int] = set()
        #: What the descriptors were built from (``info``, ``configurations``) and
        #: the string table and device descriptor built from it: a device is
        #: enumerated by every host that looks for one, so they are built once.
        self._described: tuple[object, object, tuple[str | bytes, ...], _Descriptor] | None \
            = None

    # -- handlers ------------------------------------------------------------------

    def control(self, request: ControlRequest) -> bytes | None:
        """A class or vendor request (or a standard one the backend does not know).

        Return the IN data (truncated to ``request.length`` by the backend), or
        ``None`` for OUT requests. Raise :class:`UsbStall` to stall.
        """
        raise UsbStall

    def bulk_out(self, endpoint: int, data: bytes) -> None:
        raise UsbStall

    def bulk_in(self, endpoint: int, length: int) -> bytes:
        raise UsbStall

    def on_set_interface(self, interface: int, alternate: int) -> None:
        """Called after SET_INTERFACE; DFU devices switch memory regions here."""

    def on_reset(self) -> None:
        """Called on a USB port reset."""

    # -- descriptors -----------------------------------------------------------------

    def strings(self) -> list[str | bytes]:
        """String table; index 0 is reserved for the LANGID list."""
        table: list[str | bytes] = [""]
        for value in (self.info.manufacturer, self.info.product, self.info.serial):
            if value is not None:
                table.append(value)
        for config in self.configurations:
            for interface in config.interfaces:
                if interface.name is not None:
                    table.append(interface.name)
        return table

    def string_table(self) -> tuple[str | bytes, ...]:
        """:meth:`strings` as of the current ``info`` and ``configurations``."""
        return self._description()[2]

    def string_index(self, value: str | bytes | None) -> int:
        if value is None:
            return 0
        return self.string_table().index(value)

    def device_descriptor(self) -> _Descriptor:
        """The device descriptor as libusb caches it at enumeration."""
        return self._description()[3]

    def _description(self) -> tuple[object, object, tuple[str | bytes, ...], _Descriptor]:
        described = self._described
        if described is None or described[0] is not self.info \
                or described[1] is not self.configurations:
            info, configurations = self.info, self.configurations
            table = tuple(self.strings())

            def index(value: str | bytes | None) -> int:
                return 0 if value is None else table.index(value)

            descriptor = _Descriptor(
                bLength=18, bDescriptorType=_DESC_DEVICE, bcdUSB=info.bcd_usb,
                bDeviceClass=info.device_class, bDeviceSubClass=info.subclass,
                bDeviceProtocol=info.protocol, bMaxPacketSize0=info.max_packet_size0,
                idVendor=info.vendor_id, idProduct=info.product_id, bcdDevice=info.bcd_device,
                iManufacturer=index(info.manufacturer), iProduct=index(info.product),
                iSerialNumber=index(info.serial), bNumConfigurations=len(configurations),
                address=info.address, bus=info.bus,
                port_number=info.port_numbers[-1] if info.port_numbers else None,
                port_numbers=info.port_numbers, speed=info.speed)
            described = self._described = (info, configurations, table, descriptor)
        return described

    def configuration_blob(self, index: int) -> bytes:
        """The full configuration descriptor as the device sends it on the wire."""
        config = self.configurations[index]
        body = bytearray(config.extra)
        for interface in config.interfaces:
            body += struct.pack("<BBBBBBBBB", 9, _DESC_INTERFACE, interface.number,
                                interface.alternate, len(interface.endpoints),
                                interface.interface_class, interface.subclass,
                                interface.protocol, self.string_index(interface.name))
            body += interface.extra
            for endpoint in interface.endpoints:
                body += struct.pack("<BBBBHB", 7, _DESC_ENDPOINT, endpoint.address,
                                    endpoint.attributes, endpoint.max_packet_size,
                                    endpoint.interval)
                body += endpoint.extra
        numbers = {interface.number for interface in config.interfaces}
        header = struct.pack("<BBHBBBBB", 9, _DESC_CONFIGURATION, 9 + len(body), len(numbers),
                             config.value, 0, config.attributes, config.max_power)
        return header + bytes(body)

    def device_blob(self) -> bytes:
        info = self.info
        return struct.pack("<BBHBBBBHHHBBBB", 18, _DESC_DEVICE, info.bcd_usb, info.device_class,
                           info.subclass, info.protocol, info.max_packet_size0, info.vendor_id,
                           info.product_id, info.bcd_device,
                           self.string_index(info.manufacturer), self.string_index(info.product),
                           self.string_index(info.serial), len(self.configurations))


class _Descriptor:
    """Attribute bag, the shape pyusb copies descriptor fields from."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


@dataclass(slots=True)
class _Handle:
    device: SimUsbDevice
    open: bool = True


def _usb_error(message: str, code: int, errno_value: int) -> usb.core.USBError:
    return usb.core.USBError(message, code, errno_value)


@dataclass
class SimUsbBackend(usb.backend.IBackend):  # type: ignore[misc]
    """Hosts simulated devices; pass it as ``backend=`` to ``usb.core.find``."""

    devices: list[SimUsbDevice] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()

    # -- the simulation side --------------------------------------------------------

    def plug(self, device: SimUsbDevice) -> SimUsbDevice:
        with self._lock:
            device.plugged = True
            if device not in self.devices:
                self.devices.append(device)
        return device

    def unplug(self, device: SimUsbDevice) -> None:
        with self._lock:
            device.plugged = False
            if device in self.devices:
                self.devices.remove(device)

    def counts(self) -> TransferCounts:
        """Transfers summed over every device."""
        total = TransferCounts()
        for device in list(self.devices):
            for name in ("control", "bulk_out", "bulk_in", "bytes_out", "bytes_in"):
                setattr(total, name, getattr(total, name) + getattr(device.counts, name))
        return total

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _device(handle: _Handle) -> SimUsbDevice:
        device = handle.device
        if not handle.open:
            raise _usb_error("Invalid handle", _LIBUSB_ERROR_NOT_FOUND, errno.EBADF)
        if not device.plugged:
            raise _usb_error("No such device (it may have been disconnected)",
                             _LIBUSB_ERROR_NO_DEVICE, errno.ENODEV)
        return device

    @staticmethod
    def _interface(device: SimUsbDevice, intf: int, alt: int, config: int) -> InterfaceInfo:
        for interface in device.configurations[config].interfaces:
            if interface.number == intf and interface.alternate == alt:
                return interface
        # pyusb asks by position: intf is the index among interface descriptors
        interfaces = [i for i in device.configurations[config].interfaces if i.alternate == 0]
        if intf < len(interfaces):
            number = interfaces[intf].number
            for interface in device.configurations[config].interfaces:
                if interface.number == number and interface.alternate == alt:
                    return interface
        raise _usb_error("Entity not found", _LIBUSB_ERROR_NOT_FOUND, errno.ENOENT)

    # -- IBackend: enumeration and descriptors ------------------------------------------------

    def enumerate_devices(self) -> Sequence[SimUsbDevice]:
        with self._lock:
            return [d for d in self.devices if d.plugged]

    def get_device_descriptor(self, dev: SimUsbDevice) -> _Descriptor:
        return dev.device_descriptor()

    def get_configuration_descriptor(self, dev: SimUsbDevice, config: int) -> _Descriptor:
        if config >= len(dev.configurations):
            raise IndexError("Invalid configuration index " + str(config))
        info = dev.configurations[config]
        blob = dev.configuration_blob(config)
        numbers = {interface.number for interface in info.interfaces}
        return _Descriptor(bLength=9, bDescriptorType=_DESC_CONFIGURATION, wTotalLength=len(blob),
                           bNumInterfaces=len(numbers), bConfigurationValue=info.value,
                           iConfiguration=0, bmAttributes=info.attributes,
                           bMaxPower=info.max_power,
                           extra_descriptors=array.array("B", info.extra))

    def get_interface_descriptor(self, dev: SimUsbDevice, intf: int, alt: int,
                                 config: int) -> _Descriptor:
        if config >= len(dev.configurations):
            raise IndexError("Invalid configuration index " + str(config))
        try:
            interface = self._interface(dev, intf, alt, config)
        except usb.core.USBError:
            raise IndexError(f"Invalid alternate setting index {alt}") from None
        return _Descriptor(bLength=9, bDescriptorType=_DESC_INTERFACE,
                           bInterfaceNumber=interface.number,
                           bAlternateSetting=interface.alternate,
                           bNumEndpoints=len(interface.endpoints),
                           bInterfaceClass=interface.interface_class,
                           bInterfaceSubClass=interface.subclass,
                           bInterfaceProtocol=interface.protocol,
                           iInterface=dev.string_index(interface.name),
                           extra_descriptors=array.array("B", interface.extra))

    def get_endpoint_descriptor(self, dev: SimUsbDevice, ep: int, intf: int, alt: int,
                                config: int) -> _Descriptor:
        interface = self._interface(dev, intf, alt, config)
        if ep >= len(interface.endpoints):
            raise IndexError("Invalid endpoint index " + str(ep))
        endpoint = interface.endpoints[ep]
        return _Descriptor(bLength=7, bDescriptorType=_DESC_ENDPOINT,
                           bEndpointAddress=endpoint.address, bmAttributes=endpoint.attributes,
                           wMaxPacketSize=endpoint.max_packet_size, bInterval=endpoint.interval,
                           bRefresh=0, bSynchAddress=0,
                           extra_descriptors=array.array("B", endpoint.extra))

    def get_parent(self, dev: SimUsbDevice) -> None:
        return None

    # -- IBackend: handles and configuration -------------------------------------------------

    def open_device(self, dev: SimUsbDevice) -> _Handle:
        if not dev.plugged:
            raise _usb_error("No such device (it may have been disconnected)",
                             _LIBUSB_ERROR_NO_DEVICE, errno.ENODEV)
        if not dev.accessible:
            raise _usb_error("Access denied (insufficient permissions)", _LIBUSB_ERROR_ACCESS,
                             errno.EACCES)
        return _Handle(dev)

    def close_device(self, dev_handle: _Handle) -> None:
        dev_handle.open = False
        dev_handle.device.claimed.clear()

    def set_configuration(self, dev_handle: _Handle, config_value: int) -> None:
        device = self._device(dev_handle)
        if config_value not in {c.value for c in device.configurations} | {0}:
            raise _usb_error("Entity not found", _LIBUSB_ERROR_NOT_FOUND, errno.ENOENT)
        device.configuration_value = config_value

    def get_configuration(self, dev_handle: _Handle) -> int:
        device = self._device(dev_handle)
        if device.configuration_value == 0 and device.configurations:
            # libusb reports the active configuration; ours come up configured
            device.configuration_value = device.configurations[0].value
        return device.configuration_value

    def set_interface_altsetting(self, dev_handle: _Handle, intf: int, altsetting: int) -> None:
        device = self._device(dev_handle)
        config = self._active_config(device)
        self._interface(device, intf, altsetting, config)
        with device.lock:
            device.counts.control += 1
            device.alternates[intf] = altsetting
            device.on_set_interface(intf, altsetting)

    def claim_interface(self, dev_handle: _Handle, intf: int) -> None:
        device = self._device(dev_handle)
        if intf in device.kernel_driver or device.held_by is not None:
            raise _usb_error("Resource busy", _LIBUSB_ERROR_BUSY, errno.EBUSY)
        device.claimed.add(intf)

    def release_interface(self, dev_handle: _Handle, intf: int) -> None:
        dev_handle.device.claimed.discard(intf)

    def is_kernel_driver_active(self, dev_handle: _Handle, intf: int) -> bool:
        return intf in self._device(dev_handle).kernel_driver

    def detach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        self._device(dev_handle).kernel_driver.discard(intf)

    def attach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        self._device(dev_handle).kernel_driver.add(intf)

    def clear_halt(self, dev_handle: _Handle, ep: int) -> None:
        self._device(dev_handle)

    def reset_device(self, dev_handle: _Handle) -> None:
        device = self._device(dev_handle)
        with device.lock:
            device.alternates.clear()
            device.on_reset()

    @staticmethod
    def _active_config(device: SimUsbDevice) -> int:
        for index, config in enumerate(device.configurations):
            if config.value == device.configuration_value:
                return index
        return 0

    # -- IBackend: transfers -------------------------------------------------------------------

    def _run(self, device: SimUsbDevice, action: Any, timeout: int,
             lock: threading.Lock | threading.RLock | None = None) -> Any:
        """``action`` under the device's transfer lock (or ``lock``), errors as libusb's."""
        try:
            with lock or device.lock:
                return action()
        except UsbStall:
            raise _usb_error("Pipe error", _LIBUSB_ERROR_PIPE, errno.EPIPE) from None
        except UsbTimeout:
            if not device.plugged:   # it left the bus during the transfer: libusb says so
                raise _usb_error("No such device (it may have been disconnected)",
                                 _LIBUSB_ERROR_NO_DEVICE, errno.ENODEV) from None
            raise usb.core.USBTimeoutError("Operation timed out", _LIBUSB_ERROR_TIMEOUT,
                                           errno.ETIMEDOUT) from None

    def bulk_write(self, dev_handle: _Handle, ep: int, intf: int, data: Any,
                   timeout: int) -> int:
        device = self._device(dev_handle)
        payload = bytes(data)

        def action() -> int:
            device.counts.bulk_out += 1
            device.counts.bytes_out += len(payload)
            device.bulk_out(ep, payload)
            return len(payload)

        result: int = self._run(device, action, timeout)
        return result

    def bulk_read(self, dev_handle: _Handle, ep: int, intf: int, buff: Any,
                  timeout: int) -> int:
        device = self._device(dev_handle)
        length = len(buff) * buff.itemsize

        def action() -> int:
            device.counts.bulk_in += 1
            data = device.bulk_in(ep, length)[:length]
            device.counts.bytes_in += len(data)
            buff[:len(data)] = array.array("B", data)
            return len(data)

        result: int = self._run(device, action, timeout)
        return result

    intr_write = bulk_write
    intr_read = bulk_read

    def ctrl_transfer(self, dev_handle: _Handle, bmRequestType: int,  # noqa: N803 - IBackend
                      bRequest: int, wValue: int, wIndex: int, data: Any,  # noqa: N803
                      timeout: int) -> int:
        device = self._device(dev_handle)
        is_in = bool(bmRequestType & 0x80)
        length = len(data) * data.itemsize if is_in else 0
        request = ControlRequest(request_type=bmRequestType, request=bRequest, value=wValue,
                                 index=wIndex, data=b"" if is_in else bytes(data), length=length,
                                 timeout_ms=int(timeout or 0))

        def action() -> int:
            device.counts.control += 1
            answer = self._standard(device, request)
            if answer is None and not (request.kind == 0 and request.request in
                                       (_SET_CONFIGURATION, _SET_INTERFACE)):
                answer = device.control(request)
            if is_in:
                reply = (answer or b"")[:length]
                device.counts.bytes_in += len(reply)
                data[:len(reply)] = array.array("B", reply)
                return len(reply)
            device.counts.bytes_out += len(request.data)
            return len(request.data)

        # A device's USB controller answers descriptor reads on endpoint 0 from its own
        # tables, also while its firmware works through a bulk command: another host
        # enumerating the bus does not wait for that command to end.
        descriptor = request.kind == 0 and request.request == _GET_DESCRIPTOR and is_in
        result: int = self._run(device, action, timeout,
                                device.descriptor_lock if descriptor else None)
        return result

    def _standard(self, device: SimUsbDevice, request: ControlRequest) -> bytes | None:
        """Answer the standard requests every device answers the same way."""
        if request.kind != 0:
            return None
        if request.request == _GET_DESCRIPTOR and request.is_in:
            kind, index = request.value >> 8, request.value & 0xFF
            if kind == _DESC_DEVICE:
                return device.device_blob()
            if kind == _DESC_CONFIGURATION:
                if index >= len(device.configurations):
                    raise UsbStall
                return device.configuration_blob(index)
            if kind == _DESC_STRING:
                return self._string_descriptor(device, index)
            raise UsbStall
        if request.request == _GET_CONFIGURATION and request.is_in:
            return bytes([device.configuration_value])
        if request.request == _GET_STATUS and request.is_in:
            return b"\x00\x00"
        if request.request == _SET_CONFIGURATION and not request.is_in:
            device.configuration_value = request.value
            return None
        return None

    @staticmethod
    def _string_descriptor(device: SimUsbDevice, index: int) -> bytes:
        if index == 0:
            return struct.pack("<BBH", 4, _DESC_STRING, _LANGID_EN_US)
        table = device.string_table()
        if index >= len(table):
            raise UsbStall
        value = table[index]
        encoded = value if isinstance(value, bytes) else value.encode("utf-16-le")
        return bytes([2 + len(encoded), _DESC_STRING]) + encoded
