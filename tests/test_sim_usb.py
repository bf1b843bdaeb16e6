"""The simulated pyusb backend answers like libusb, through pyusb's own API."""

from __future__ import annotations

import dataclasses
import errno

import pytest
import usb.core
import usb.util

from transports.sim.usb import (
    ConfigurationInfo,
    ControlRequest,
    DeviceInfo,
    EndpointInfo,
    InterfaceInfo,
    SimUsbBackend,
    SimUsbDevice,
    UsbStall,
)

FUNCTIONAL = bytes([9, 0x21, 0x0B, 0xFF, 0x00, 0x00, 0x08, 0x1A, 0x01])


class EchoDevice(SimUsbDevice):
    def __init__(self, serial: str | bytes, port: tuple[int, ...] = (1,)) -> None:
        super().__init__()
        self.info = DeviceInfo(vendor_id=0x0483, product_id=0x3748, product="Echo",
                               serial=serial, port_numbers=port)
        self.configurations = (ConfigurationInfo(interfaces=(
            InterfaceInfo(number=0, endpoints=(EndpointInfo(address=0x81),
                                               EndpointInfo(address=0x02))),
            InterfaceInfo(number=0, alternate=1, name="@Second /0x1/1*1Ka", extra=FUNCTIONAL),
        )),)
        self.pending = b""

    def bulk_out(self, endpoint: int, data: bytes) -> None:
        self.pending = data[::-1]

    def bulk_in(self, endpoint: int, length: int) -> bytes:
        return self.pending

    def control(self, request: ControlRequest) -> bytes | None:
        if request.kind == 1 and request.request == 3 and request.is_in:
            return b"\x00\x10\x00\x00\x05\x00"
        raise UsbStall


@pytest.fixture
def backend() -> SimUsbBackend:
    backend = SimUsbBackend()
    backend.plug(EchoDevice("SER-A", (1, 2)))
    backend.plug(EchoDevice("SER-B", (1, 3)))
    return backend


def test_find_reads_descriptors_and_serial_strings(backend: SimUsbBackend) -> None:
    found = list(usb.core.find(find_all=True, backend=backend, idVendor=0x0483))
    assert [d.serial_number for d in found] == ["SER-A", "SER-B"]
    assert [d.port_numbers for d in found] == [(1, 2), (1, 3)]
    assert found[0].product == "Echo"


def test_bulk_round_trip_counts_transfers(backend: SimUsbBackend) -> None:
    dev = usb.core.find(backend=backend, serial_number="SER-B")
    dev.write(0x02, b"abc")
    assert bytes(dev.read(0x81, 64)) == b"cba"
    counts = backend.devices[1].counts
    assert (counts.bulk_out, counts.bulk_in) == (1, 1)


def test_configuration_blob_keeps_functional_descriptor_after_last_alternate(
        backend: SimUsbBackend) -> None:
    dev = usb.core.find(backend=backend, serial_number="SER-A")
    blob = bytes(dev.ctrl_transfer(0x80, 6, 0x0200, 0, 255))
    assert blob.endswith(FUNCTIONAL)
    cfg = dev.get_active_configuration()
    names = [usb.util.get_string(dev, i.iInterface) for i in cfg if i.iInterface]
    assert names == ["@Second /0x1/1*1Ka"]


def test_unknown_request_stalls_with_epipe(backend: SimUsbBackend) -> None:
    dev = usb.core.find(backend=backend, serial_number="SER-A")
    assert bytes(dev.ctrl_transfer(0xA1, 3, 0, 0, 6)) == b"\x00\x10\x00\x00\x05\x00"
    with pytest.raises(usb.core.USBError) as info:
        dev.ctrl_transfer(0xA1, 9, 0, 0, 6)
    assert info.value.errno == errno.EPIPE


def test_unplugged_device_reports_enodev(backend: SimUsbBackend) -> None:
    dev = usb.core.find(backend=backend, serial_number="SER-A")
    dev.write(0x02, b"x")
    backend.unplug(backend.devices[0])
    with pytest.raises(usb.core.USBError) as info:
        dev.write(0x02, b"x")
    assert info.value.errno == errno.ENODEV


def test_binary_serial_is_served_raw() -> None:
    backend = SimUsbBackend()
    backend.plug(EchoDevice(b"\x66\x00\x6f\x00\x00\xd8"))
    dev = usb.core.find(backend=backend)
    raw = bytes(dev.ctrl_transfer(0x80, 6, 0x0300 | dev.iSerialNumber, 0x0409, 254))
    assert raw[2:] == b"\x66\x00\x6f\x00\x00\xd8"


def test_permission_denied_is_eacces() -> None:
    backend = SimUsbBackend()
    device = backend.plug(EchoDevice("X"))
    device.accessible = False
    dev = usb.core.find(backend=backend)
    with pytest.raises(usb.core.USBError) as info:
        dev.write(0x02, b"x")
    assert info.value.errno == errno.EACCES


def test_a_device_that_changes_what_it_describes_is_enumerated_as_it_is_now(
        backend: SimUsbBackend) -> None:
    echo = backend.devices[0]
    assert usb.core.find(backend=backend, port_numbers=(1, 2)).serial_number == "SER-A"
    # A re-enumeration with another identity (as a probe whose firmware was updated).
    echo.info = dataclasses.replace(echo.info, serial="SER-A2", product="Echo II",
                                    product_id=0x374B)
    found = usb.core.find(backend=backend, port_numbers=(1, 2))
    assert (found.serial_number, found.product, found.idProduct) == ("SER-A2", "Echo II",
                                                                     0x374B)


def test_descriptors_are_read_while_the_device_works_through_a_bulk_command(
        backend: SimUsbBackend) -> None:
    # A probe's USB controller answers on endpoint 0 from its own tables while its
    # firmware is busy with a command: another link enumerating the bus reads the
    # serial without waiting for that command to end.
    import threading

    device = backend.devices[0]
    found = next(d for d in usb.core.find(find_all=True, backend=backend, idVendor=0x0483)
                 if d.serial_number == "SER-A")
    busy, release = threading.Event(), threading.Event()

    def long_command() -> None:
        with device.lock:   # what a bulk transfer holds while the device handles it
            busy.set()
            release.wait(5)

    worker = threading.Thread(target=long_command)
    worker.start()
    try:
        assert busy.wait(5)
        usb.util.dispose_resources(found)
        assert usb.util.get_string(found, found.iSerialNumber) == "SER-A"
        assert usb.util.get_string(found, found.iProduct) == "Echo"
        with pytest.raises(usb.core.USBError):   # an absent string still stalls
            usb.util.get_string(found, 9)
        assert worker.is_alive()   # all of it answered while the command was still running
    finally:
        release.set()
        worker.join(5)
