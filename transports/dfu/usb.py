"""Finding the DFU device: USB discovery, selection, descriptors, libusb errors.

ROM DFU serials are derived from only 48 bits of the 96-bit UID and have been
seen to collide on a line of identical boards, so a selection that matches
more than one device is refused with the candidates listed; the USB port path
(``1-4.2``, as dfu-util's ``-p`` and udev's ID_PATH) picks one unambiguously.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import usb.core
import usb.util

from transports.errors import (
    BusFault,
    ConnectError,
    EnvironmentProblem,
    LinkLost,
    LinkTimeout,
    ProtocolError,
    Refused,
    RunnerError,
    TransportError,
)

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

_RULES = Path(__file__).resolve().parents[1] / "udev" / "99-flashrunner.rules"
UDEV_HINT = (f"install flashrunner's udev rules (they grant access to 0483:df11): "
             f"sudo cp {_RULES} /etc/udev/rules.d/ && sudo udevadm control --reload-rules "
             f"&& sudo udevadm trigger, then replug the board")

_DESC_CONFIGURATION = 0x02
_DESC_INTERFACE = 0x04
_DESC_DFU_FUNCTIONAL = 0x21
_LIBUSB_ERROR_NO_DEVICE = -4
DFU_CLASS, DFU_SUBCLASS = 0xFE, 0x01
DFU_MODE_PROTOCOL = 0x02


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkNames:
    """Which manifest link and device a session serves, for error fields."""

    link: str
    device: str


class Stalled(Exception):  # a wire signal, always turned into a flashrunner error
    """The device stalled a control transfer (libusb EPIPE)."""


@contextmanager
def usb_errors(what: str, names: LinkNames, *, stall_is_error: bool = True) -> Iterator[None]:
    """Translate pyusb/libusb exceptions raised inside the block into ours."""
    where = {"transport": names.link, "device": names.device}
    link, device = names.link, names.device
    try:
        yield
    except usb.core.USBTimeoutError as error:
        raise LinkTimeout(f"the DFU device of {names.device} did not answer {what}",
                          hint="check the cable; a ROM busy erasing answers late, "
                               "power-cycle the board if it stays silent", **where) from error
    except usb.core.USBError as error:
        code = error.errno
        if code == errno.EPIPE:
            if stall_is_error:
                raise Refused(f"the DFU device of {names.device} stalled {what}",
                              command=what, transport=link, device=device) from error
            raise Stalled(what) from error
        if code == errno.ENODEV or error.backend_error_code == _LIBUSB_ERROR_NO_DEVICE:
            raise LinkLost(f"the DFU device of {names.device} left the bus during {what}",
                           hint="check the cable and the board's power; it re-enumerates "
                                "after a reset", **where) from error
        if code == errno.EACCES:
            raise EnvironmentProblem(f"no permission to open the USB DFU device of "
                                     f"{names.device}", hint=UDEV_HINT) from error
        if code == errno.EBUSY:
            raise ConnectError(f"the DFU device of {names.device} is claimed by another "
                               f"program", hint="close dfu-util or STM32CubeProgrammer",
                               **where) from error
        raise BusFault(f"USB error during {what} on {names.device}: {error}",
                       command=what, transport=link, device=device) from error


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
    ports = device.port_numbers or (device.port_number,)
    return f"{device.bus}-{'.'.join(str(p) for p in ports if p is not None)}"


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
    if not device.iSerialNumber:
        return DfuCandidate(device=device, serial="", port_path=path)
    try:
        with usb_errors("reading the serial number", names):
            try:
                serial = str(usb.util.get_string(device, device.iSerialNumber) or "")
            except ValueError as error:
                # pyusb hides why it found no LANGID; asking again directly
                # raises the USB error itself (EACCES, ENODEV) for us to map.
                usb.util.get_langids(device)
                raise ProtocolError(f"the USB DFU device at port {path} has no string "
                                    f"descriptors", command="GET_DESCRIPTOR",
                                    transport=names.link, device=names.device) from error
    except LinkLost:
        return None  # another board re-enumerating while we looked
    except (EnvironmentProblem, TransportError) as problem:
        return DfuCandidate(device=device, serial=None, port_path=path, problem=problem)
    return DfuCandidate(device=device, serial=serial, port_path=path)


def find_candidates(vid: int, pid: int, backend: Any, names: LinkNames) -> list[DfuCandidate]:
    """Every device with this VID:PID, with its serial string and port path."""
    try:
        devices = list(usb.core.find(find_all=True, idVendor=vid, idProduct=pid,
                                     backend=backend) or ())
    except usb.core.NoBackendError as error:
        raise EnvironmentProblem("libusb is not installed; USB DFU needs it",
                                 hint="install libusb-1.0 (Debian/Ubuntu: "
                                      "sudo apt-get install libusb-1.0-0)") from error
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
    matching = [c for c in at_port
                if serial is None or (c.serial or "").upper() == serial.upper()]
    wanted = " and ".join(part for part in (
        f"serial {serial}" if serial else "", f"port {port_path}" if port_path else "") if part)
    usb_id = f"{vid:04x}:{pid:04x}"
    if len(matching) == 1:
        return matching[0]
    where = {"transport": names.link, "device": names.device}
    if not matching:
        seen = "; ".join(c.describe() for c in candidates) or "none"
        raise ConnectError(
            f"no USB DFU device {usb_id}{' with ' + wanted if wanted else ''} for "
            f"{names.device} (DFU devices present: {seen})",
            hint="start the chip in its DFU bootloader (BOOT0 high, then reset) and check "
                 "the cable; 'lsusb -d " + usb_id + "' lists what the host sees", **where)
    listed = "; ".join(c.describe() for c in matching)
    raise ConnectError(
        f"{len(matching)} USB DFU devices {usb_id} match{' ' + wanted if wanted else ''} for "
        f"{names.device}: {listed}; refusing to guess",
        hint="ROM DFU serials can collide on identical boards: set port-path on the link "
             "to the USB port the board is plugged into", **where)


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
