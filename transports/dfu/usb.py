"""Finding the DFU device: its candidates, its descriptors, its errors.

Discovery, port paths, selection and the libusb error table are the shared
USB layer's (:mod:`transports.usb`). ROM DFU serials are derived from only 48
bits of the 96-bit UID and have been seen to collide on a line of identical
boards, so a selection that matches more than one device is refused with the
candidates listed; the USB port path (``1-4.2``, as dfu-util's ``-p`` and
udev's ID_PATH) picks one unambiguously.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import usb.core
import usb.util

from transports import usb as shared
from transports.errors import (
    EnvironmentProblem,
    LinkLost,
    RunnerError,
    TransportError,
)
from transports.usb import UDEV_HINT, LinkNames, Stalled

__all__ = [
    "UDEV_HINT",
    "DeviceDescription",
    "DfuCandidate",
    "DfuInterface",
    "FunctionalDescriptor",
    "LinkNames",
    "Stalled",
    "find_candidates",
    "find_functional_descriptor",
    "parse_interfaces",
    "port_path_of",
    "read_description",
    "select_candidate",
    "usb_errors",
]

_DESC_CONFIGURATION = 0x02
_DESC_INTERFACE = 0x04
_DESC_DFU_FUNCTIONAL = 0x21
DFU_CLASS, DFU_SUBCLASS = 0xFE, 0x01
DFU_MODE_PROTOCOL = 0x02
_THING = "the DFU device"


def usb_errors(what: str, names: LinkNames, *,
               stall_is_error: bool = True) -> AbstractContextManager[None]:
    """The shared libusb error table (:func:`transports.usb.usb_errors`) for a DFU device."""
    return shared.usb_errors(what, names, thing=_THING, stall_is_error=stall_is_error)


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionalDescriptor:
    """The DFU functional descriptor (DFU 1.1 §4.1.3)."""

    attributes: int
    detach_timeout_ms: int
    transfer_size: int
    dfu_version: int

    @property
    def can_download(self) -> bool:
        return bool(self.attributes & 0x01)

    @property
    def can_upload(self) -> bool:
        return bool(self.attributes & 0x02)

    @property
    def manifestation_tolerant(self) -> bool:
        return bool(self.attributes & 0x04)

    @property
    def will_detach(self) -> bool:
        return bool(self.attributes & 0x08)

    @property
    def is_dfuse(self) -> bool:
        """bcdDFUVersion 0x011A marks ST's DfuSe extensions (dfu-util does the same)."""
        return self.dfu_version == 0x011A


@dataclass(frozen=True, slots=True, kw_only=True)
class DfuInterface:
    """One alternate setting of a DFU interface, as the configuration descriptor lists it."""

    number: int
    alternate: int
    protocol: int
    name_index: int


def _walk(blob: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset + 2 <= len(blob):
        length, kind = blob[offset], blob[offset + 1]
        if length < 2:
            return  # a zero length would loop forever: the rest is garbage
        yield kind, blob[offset:offset + length]
        offset += length


def find_functional_descriptor(blob: bytes) -> FunctionalDescriptor | None:
    """The DFU functional descriptor wherever the configuration puts it.

    DFU 1.1 places it after the interface descriptor; ST ROMs append it after
    the *last* alternate setting. Type 0x21 is also HID's, so only one that
    follows a DFU interface counts.
    """
    in_dfu = False
    for kind, body in _walk(blob):
        if kind == _DESC_INTERFACE and len(body) >= 9:
            in_dfu = body[5] == DFU_CLASS and body[6] == DFU_SUBCLASS
        elif kind == _DESC_DFU_FUNCTIONAL and in_dfu and len(body) >= 7:
            attributes, detach, transfer = struct.unpack_from("<BHH", body, 2)
            version = struct.unpack_from("<H", body, 7)[0] if len(body) >= 9 else 0x0100
            return FunctionalDescriptor(attributes=attributes, detach_timeout_ms=detach,
                                        transfer_size=transfer, dfu_version=version)
    return None


def parse_interfaces(blob: bytes) -> tuple[DfuInterface, ...]:
    """Every DFU alternate setting in a raw configuration descriptor."""
    found = []
    for kind, body in _walk(blob):
        if kind == _DESC_INTERFACE and len(body) >= 9 and body[5] == DFU_CLASS \
                and body[6] == DFU_SUBCLASS:
            found.append(DfuInterface(number=body[2], alternate=body[3], protocol=body[7],
                                      name_index=body[8]))
    return tuple(found)


def port_path_of(device: Any) -> str:
    """``<bus>-<port>[.<port>…]``, as dfu-util ``-p`` and the sysfs device name spell it."""
    return shared.port_path(device)


@dataclass(frozen=True, slots=True, kw_only=True)
class DfuCandidate:
    """A DFU device on the bus, before it is opened for a session.

    ``serial`` is ``None`` when it could not be read; ``problem`` says why.
    """

    device: Any
    serial: str | None
    port_path: str
    problem: RunnerError | None = None

    def describe(self) -> str:
        serial = "(unreadable)" if self.serial is None else self.serial or "(none)"
        return f"serial {serial} at port {self.port_path}"


def _candidate(device: Any, names: LinkNames) -> DfuCandidate | None:
    """The device with its serial read; ``None`` when it left the bus meanwhile."""
    path = port_path_of(device)
    try:
        serial = shared.read_string(device, device.iSerialNumber, "reading the serial number",
                                    names, thing=_THING)
    except LinkLost:
        return None  # another board re-enumerating while we looked
    except (EnvironmentProblem, TransportError) as problem:
        return DfuCandidate(device=device, serial=None, port_path=path, problem=problem)
    return DfuCandidate(device=device, serial=serial, port_path=path)


def find_candidates(vid: int, pid: int, backend: Any, names: LinkNames) -> list[DfuCandidate]:
    """Every device with this VID:PID, with its serial string and port path."""
    devices = shared.find_devices(backend, vid=vid, pid=pid, what="USB DFU device")
    found = (_candidate(device, names) for device in devices)
    return [candidate for candidate in found if candidate is not None]


def select_candidate(candidates: list[DfuCandidate], *, vid: int, pid: int,
                     serial: str | None, port_path: str | None,
                     names: LinkNames) -> DfuCandidate:
    """The one candidate matching the link's serial and/or port path, or a clear error.

    A device whose serial could not be read (no permission, no answer) is an
    error only when it matters: it is the one chosen, or serials decide.
    """
    at_port = [c for c in candidates if port_path is None or c.port_path == port_path]
    unreadable = [c.problem for c in at_port if c.problem is not None]
    if unreadable and (serial is not None or len(at_port) == 1):
        raise unreadable[0]
    usb_id = f"{vid:04x}:{pid:04x}"
    return shared.select(
        candidates, serial=serial, port_path=port_path, what=f"USB DFU device {usb_id}",
        plural=f"USB DFU devices {usb_id}", names=names,
        missing_hint="start the chip in its DFU bootloader (BOOT0 high, then reset) and check "
                     "the cable; 'lsusb -d " + usb_id + "' lists what the host sees",
        ambiguous_hint="ROM DFU serials can collide on identical boards: set port-path on the "
                       "link to the USB port the board is plugged into")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceDescription:
    """What a DFU device says about itself before any DFU request is made."""

    product: str
    bcd_device: int
    max_packet_size: int
    interfaces: tuple[DfuInterface, ...]
    functional: FunctionalDescriptor | None
    #: alternate setting -> its interface string (the DfuSe memory layout)
    alternates: dict[int, str]


def read_description(device: Any, names: LinkNames) -> DeviceDescription:
    """Configure ``device`` if needed and read its descriptors and strings.

    The configuration descriptor is read raw (GET_DESCRIPTOR) so that a
    functional descriptor placed after the last alternate setting is found.
    """
    with usb_errors("reading descriptors", names):
        try:
            device.get_active_configuration()
        except usb.core.USBError:
            device.set_configuration()
        header = bytes(device.ctrl_transfer(0x80, 0x06, _DESC_CONFIGURATION << 8, 0, 9))
        total = struct.unpack_from("<H", header, 2)[0]
        blob = bytes(device.ctrl_transfer(0x80, 0x06, _DESC_CONFIGURATION << 8, 0, total))
        product = usb.util.get_string(device, device.iProduct) if device.iProduct else None
        interfaces = parse_interfaces(blob)
        alternates = {i.alternate: (usb.util.get_string(device, i.name_index) or "")
                      if i.name_index else "" for i in interfaces}
    return DeviceDescription(product=product or "", bcd_device=int(device.bcdDevice),
                             max_packet_size=int(device.bMaxPacketSize0),
                             interfaces=interfaces, functional=find_functional_descriptor(blob),
                             alternates=alternates)
