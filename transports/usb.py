"""The USB layer the ST-Link and DFU links share: find, port paths, select, libusb errors.

Both links find their devices with pyusb on the backend the run's endpoint
provider gives them (libusb on hardware, the simulated bus in a rehearsal),
pick one by serial number and/or USB port path, and turn libusb's errors into
flashrunner's through one table (:func:`usb_errors`):

=========================  ==========================================================
libusb / pyusb              flashrunner
=========================  ==========================================================
timeout                     :class:`LinkTimeout`
EPIPE (a stalled request)   :class:`Stalled` inside the protocol, else ProtocolError
ENODEV / NO_DEVICE          :class:`LinkLost` (the device left the bus)
EACCES / EPERM              :class:`EnvironmentProblem` with the udev rules hint
EBUSY                       :class:`ConnectError`: held by another program, which one
anything else               :class:`LinkLost` (a bus or cable fault; a reconnect helps)
=========================  ==========================================================

A port path (``1-4.2``: bus, then the port at each hub, as dfu-util's ``-p``,
udev's ID_PATH and the sysfs device name spell it) cannot collide; a serial
can (clones, ROM DFU serials derived from 48 UID bits), so a selection that
matches more than one device is refused with the candidates listed.
"""

from __future__ import annotations

import errno
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import usb.core
import usb.util

from transports.errors import (
    ConnectError,
    EnvironmentProblem,
    LinkLost,
    LinkTimeout,
    ProtocolError,
)

__all__ = [
    "BUSY_HINT",
    "UDEV_HINT",
    "LinkNames",
    "SharedScan",
    "Stalled",
    "UsbCandidate",
    "find_devices",
    "port_path",
    "read_string",
    "scan_shared",
    "select",
    "shared_scan_of",
    "usb_errors",
]

_RULES = Path(__file__).resolve().parent / "udev" / "99-flashrunner.rules"
#: What to do when the user may not open a USB device (EACCES).
UDEV_HINT = (f"install flashrunner's udev rules (they grant access to ST-Link probes and "
             f"the ROM DFU device): sudo cp {_RULES} /etc/udev/rules.d/ && sudo udevadm "
             f"control --reload-rules && sudo udevadm trigger, then replug the device")
#: The programs that usually hold an ST-Link or a ROM DFU device (EBUSY on claim).
LIKELY_HOLDERS = "OpenOCD / STM32CubeProgrammer / st-util (or dfu-util, pyOCD)"
BUSY_HINT = "close the program that holds it and run again: one program at a time owns a device"

_LIBUSB_ERROR_NO_DEVICE = -4
_LIBUSB_ERROR_BUSY = -6


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkNames:
    """Which manifest link and device a session serves, for error fields."""

    link: str
    device: str


class Stalled(Exception):  # a wire signal, always turned into a flashrunner error
    """The device stalled a request (libusb EPIPE)."""


@contextmanager
def usb_errors(what: str, names: LinkNames, *, thing: str,
               stall_is_error: bool = True) -> Iterator[None]:
    """Translate pyusb/libusb exceptions raised inside the block into flashrunner's.

    ``what`` is the operation (``"claiming interface 0"``), ``thing`` the device
    as the user knows it (``"the ST-Link"``, ``"the DFU device"``). With
    ``stall_is_error`` false a stall raises :class:`Stalled` for the protocol
    to handle (DFU's error states are read after one).
    """
    where = {"transport": names.link, "device": names.device}
    try:
        yield
    except usb.core.USBTimeoutError as error:
        raise LinkTimeout(f"{thing} of {names.device} did not answer {what}",
                          hint="check the cable and the target's power; replug the device if "
                               "it stays silent", **where) from error
    except usb.core.USBError as error:
        code = error.errno
        if code == errno.EPIPE:
            if stall_is_error:
                raise ProtocolError(f"{thing} of {names.device} stalled {what}",
                                    command=what, transport=names.link,
                                    device=names.device) from error
            raise Stalled(what) from error
        if code == errno.ENODEV or error.backend_error_code == _LIBUSB_ERROR_NO_DEVICE:
            raise LinkLost(f"{thing} of {names.device} left the bus during {what}",
                           hint="check the cable and the board's power; a device re-enumerates "
                                "after a reset", **where) from error
        if code in (errno.EACCES, errno.EPERM):
            raise EnvironmentProblem(f"no permission to open {thing} of {names.device} "
                                     f"({what})", hint=UDEV_HINT) from error
        if code == errno.EBUSY or error.backend_error_code == _LIBUSB_ERROR_BUSY:
            raise ConnectError(f"{thing} of {names.device} is held by another program, "
                               f"likely {LIKELY_HOLDERS}: {what} failed",
                               hint=BUSY_HINT, **where) from error
        raise LinkLost(f"USB error during {what} on {thing} of {names.device}: {error}",
                       hint="replug the device and try again", **where) from error


def port_path(device: Any) -> str:
    """``<bus>-<port>[.<port>…]`` of a pyusb device (``<bus>-?`` when the OS hides it)."""
    ports = tuple(p for p in (getattr(device, "port_numbers", None)
                              or (getattr(device, "port_number", None),)) if p is not None)
    return f"{device.bus}-{'.'.join(str(p) for p in ports)}" if ports else f"{device.bus}-?"


def find_devices(backend: Any, *, vid: int | None = None, pid: int | None = None,
                 what: str) -> list[Any]:
    """Every device with this VID (and PID; no VID: every device) on ``backend``.

    ``backend`` ``None`` is pyusb's default, libusb.

    Raises:
        EnvironmentProblem: libusb is not installed.
    """
    match: dict[str, int] = {}
    if vid is not None:
        match["idVendor"] = vid
    if pid is not None:
        match["idProduct"] = pid
    try:
        return list(usb.core.find(find_all=True, backend=backend, **match) or ())
    except usb.core.NoBackendError as error:
        raise EnvironmentProblem(f"libusb is not installed, so no {what} can be reached",
                                 hint="install libusb-1.0 (Debian/Ubuntu: "
                                      "sudo apt-get install libusb-1.0-0)") from error


def read_string(device: Any, index: int, what: str, names: LinkNames, *,
                thing: str) -> str:
    """String descriptor ``index`` of ``device`` ("" for index 0), errors mapped.

    pyusb hides why it found no LANGID (it reports ``ValueError``); asking for
    the LANGIDs directly raises the USB error itself (EACCES, ENODEV) to map.
    """
    if not index:
        return ""
    with usb_errors(what, names, thing=thing):
        try:
            return str(usb.util.get_string(device, index) or "")
        except ValueError as error:
            usb.util.get_langids(device)
            raise ProtocolError(f"{thing} at port {port_path(device)} has no string "
                                f"descriptors", command="GET_DESCRIPTOR",
                                transport=names.link, device=names.device) from error


class UsbCandidate(Protocol):
    """A device on the bus as selection sees it."""

    @property
    def serial(self) -> str | None: ...

    @property
    def port_path(self) -> str: ...

    def describe(self) -> str: ...


C = TypeVar("C", bound=UsbCandidate)


def select(candidates: Sequence[C], *, serial: str | None, port_path: str | None,
           what: str, plural: str, names: LinkNames, missing_hint: str,
           ambiguous_hint: str) -> C:
    """The one candidate matching ``serial`` and/or ``port_path``, or a ConnectError.

    Serials compare case-insensitively. No match lists what is there; more
    than one match is refused, listing each with its port path.
    """
    matching = [c for c in candidates
                if (port_path is None or c.port_path == port_path)
                and (serial is None or (c.serial or "").upper() == serial.upper())]
    if len(matching) == 1:
        return matching[0]
    wanted = " and ".join(part for part in (
        f"serial {serial}" if serial else "", f"port {port_path}" if port_path else "") if part)
    where = {"transport": names.link, "device": names.device}
    if not matching:
        seen = "; ".join(c.describe() for c in candidates) or "none"
        raise ConnectError(f"no {what}{' with ' + wanted if wanted else ''} for {names.device} "
                           f"({plural} present: {seen})", hint=missing_hint, **where)
    listed = "; ".join(c.describe() for c in matching)
    raise ConnectError(f"{len(matching)} {plural} match{' ' + wanted if wanted else ''} for "
                       f"{names.device}: {listed}; refusing to guess", hint=ambiguous_hint,
                       **where)


R = TypeVar("R")


class SharedScan(Generic[R]):
    """One bus scan at a time, its result shared by every caller that waited for it.

    Every connect enumerates the bus and reads each candidate's serial number to
    find its probe. When a line opens sixty-four links at once, that is sixty-four
    scans of sixty-four devices. Here a caller gets the result of a scan that
    *started after it asked* (so nothing plugged in before the call is missed):
    it runs the scan itself when none is under way, else waits for the one that
    starts when the current one ends, which every caller that arrived meanwhile
    shares. A scan's failure is every waiter's failure.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running = False
        self._started = 0
        self._finished = 0
        self._latest: tuple[R | None, BaseException | None] = (None, None)
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """How many callers are waiting for a scan to begin or end (not running one)."""
        with self._changed:
            return self._waiting

    def run(self, scan: Callable[[], R]) -> R:
        with self._changed:
            wanted = self._started + 1
            while self._finished < wanted:
                if not self._running:
                    self._running = True
                    self._started += 1
                    number = self._started
                    break
                self._waiting += 1
                try:
                    self._changed.wait()
                finally:
                    self._waiting -= 1
            else:
                return self._answer(*self._latest)
        result: R | None = None
        failure: BaseException | None = None
        try:
            result = scan()
        except BaseException as error:  # every waiter sees it, and so does this caller
            failure = error
        with self._changed:
            self._running = False
            self._finished = number
            self._latest = (result, failure)
            self._changed.notify_all()
        return self._answer(result, failure)

    @staticmethod
    def _answer(result: R | None, failure: BaseException | None) -> R:
        if failure is not None:
            raise failure
        assert result is not None
        return result


#: One :class:`SharedScan` per backend object (libusb's default is ``None``) and purpose;
#: an entry goes with its backend, before the backend's ``id`` can be reused.
_SCANS: dict[tuple[int, str], SharedScan[Any]] = {}
_SCANS_LOCK = threading.Lock()


def scan_shared(backend: Any, purpose: str, scan: Callable[[], R]) -> R:
    """``scan()`` through the :class:`SharedScan` of ``backend`` for ``purpose``."""
    shared: SharedScan[R] = shared_scan_of(backend, purpose)
    return shared.run(scan)


def shared_scan_of(backend: Any, purpose: str) -> SharedScan[Any]:
    """The :class:`SharedScan` of ``backend`` (``None``: libusb's) for ``purpose``."""
    key = (id(backend), purpose)
    with _SCANS_LOCK:
        shared = _SCANS.get(key)
        if shared is None:
            shared = _SCANS[key] = SharedScan()
            if backend is not None:  # libusb's default lives as long as we do
                weakref.finalize(backend, _SCANS.pop, key, None)
    return shared
