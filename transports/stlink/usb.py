"""ST-Link USB layer: which probes exist, how to pick one, how to move bytes.

Reference §1: VID 0x0483; the PID says the generation and the OUT endpoint
(V1 EP 2 inside mass-storage framing, V2 EP 2, everything later EP 1); the
reply endpoint is always 0x81. Selection is by serial number or by USB port
path (``bus-port.port…``): a serial can collide (clones share serials, and a
DFU device may carry the same one), a port path cannot.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import usb.core
import usb.util

from transports.errors import ConnectError, EnvironmentProblem, LinkLost, LinkTimeout

__all__ = ["PROBE_KINDS", "ProbeCandidate", "ProbeKind", "UsbPipe", "find_candidates",
           "normalise_serial", "select_probe"]

ST_VID = 0x0483
UDEV_HINT = ("install the udev rules shipped with flashrunner: sudo cp "
             "$(python -c 'import transports, os; print(os.path.dirname(transports.__file__))')"
             "/udev/99-flashrunner.rules /etc/udev/rules.d/ && sudo udevadm control "
             "--reload-rules && sudo udevadm trigger, then replug the probe")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeKind:
    """One PID: generation, endpoints and packet size (reference §1.1)."""

    pid: int
    name: str
    generation: str  # "v1", "v2", "v2-1", "v3"
    out_ep: int
    in_ep: int = 0x81
    trace_ep: int | None = None
    debug: bool = True  # False for the V3 bootloader PIDs


PROBE_KINDS: dict[int, ProbeKind] = {kind.pid: kind for kind in (
    ProbeKind(pid=0x3744, name="ST-Link/V1", generation="v1", out_ep=0x02),
    ProbeKind(pid=0x3748, name="ST-Link/V2", generation="v2", out_ep=0x02, trace_ep=0x83),
    ProbeKind(pid=0x374A, name="ST-Link/V2-1 (audio)", generation="v2-1", out_ep=0x01,
              trace_ep=0x82),
    ProbeKind(pid=0x374B, name="ST-Link/V2-1", generation="v2-1", out_ep=0x01, trace_ep=0x82),
    ProbeKind(pid=0x3752, name="ST-Link/V2-1 (no MSD)", generation="v2-1", out_ep=0x01,
              trace_ep=0x82),
    ProbeKind(pid=0x3742, name="ST-Link/V2-1 (no MSD)", generation="v2-1", out_ep=0x01,
              trace_ep=0x82),
    ProbeKind(pid=0x374D, name="STLINK-V3 loader", generation="v3", out_ep=0x01, debug=False),
    ProbeKind(pid=0x374E, name="STLINK-V3E", generation="v3", out_ep=0x01, trace_ep=0x82),
    ProbeKind(pid=0x374F, name="STLINK-V3SET", generation="v3", out_ep=0x01, trace_ep=0x82),
    ProbeKind(pid=0x3753, name="STLINK-V3 (2 VCP)", generation="v3", out_ep=0x01,
              trace_ep=0x82),
    ProbeKind(pid=0x3754, name="STLINK-V3 (no MSD)", generation="v3", out_ep=0x01,
              trace_ep=0x82),
    ProbeKind(pid=0x3755, name="STLINK-V3PWR loader", generation="v3", out_ep=0x01,
              debug=False),
    ProbeKind(pid=0x3757, name="STLINK-V3PWR", generation="v3", out_ep=0x01, trace_ep=0x82),
)}


def normalise_serial(raw: str | None) -> str:
    """The serial as the tools print it.

    Reference §1.3: old V2 firmware returns 12 binary bytes, one per UTF-16
    code unit; every tool hex-encodes their low bytes (upper case).
    """
    if not raw:
        return ""
    if len(raw) == 12 and not all(c in "0123456789abcdefABCDEF" for c in raw):
        return "".join(f"{ord(c) & 0xFF:02X}" for c in raw)
    return raw.upper() if all(c in "0123456789abcdefABCDEF" for c in raw) else raw


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeCandidate:
    """A probe seen on the bus, with what a user can select it by."""

    serial: str
    port_path: str
    kind: ProbeKind
    product: str
    device: Any

    def describe(self) -> str:
        return f"{self.kind.name} serial {self.serial or '?'} at port {self.port_path} " \
               f"({self.product})"


def _port_path(device: Any) -> str:
    ports = getattr(device, "port_numbers", None) or ()
    return f"{device.bus}-{'.'.join(str(p) for p in ports)}" if ports else f"{device.bus}-?"


def _usb_call(action: Any, what: str) -> Any:
    try:
        return action()
    except ValueError as error:
        # pyusb reports a string read it was not allowed to make as "no langid".
        raise EnvironmentProblem(f"no permission to open the ST-Link ({what})",
                                 hint=UDEV_HINT) from error
    except usb.core.USBError as error:
        if error.errno == errno.EACCES:
            raise EnvironmentProblem(f"no permission to open the ST-Link ({what})",
                                     hint=UDEV_HINT) from error
        raise


def find_candidates(backend: Any = None) -> list[ProbeCandidate]:
    """Every ST-Link debug probe on the bus (bootloader PIDs excluded)."""
    try:
        devices = list(usb.core.find(find_all=True, idVendor=ST_VID, backend=backend) or ())
    except usb.core.NoBackendError as error:
        raise EnvironmentProblem("libusb is not installed, so no ST-Link can be reached",
                                 hint="install libusb-1.0 (apt install libusb-1.0-0)") from error
    found = []
    for device in devices:
        kind = PROBE_KINDS.get(device.idProduct)
        if kind is None or not kind.debug:
            continue
        serial = _usb_call(lambda d=device: d.serial_number, "reading its serial number")
        product = _usb_call(lambda d=device: d.product, "reading its product name") or kind.name
        found.append(ProbeCandidate(serial=normalise_serial(serial), port_path=_port_path(device),
                                    kind=kind, product=product, device=device))
    return found


def select_probe(candidates: Sequence[ProbeCandidate], *, serial: str | None,
                 port_path: str | None, link: str, device: str) -> ProbeCandidate:
    """Pick the one probe the options name; anything else is a ConnectError that lists."""
    matches = list(candidates)
    if serial:
        matches = [c for c in matches if c.serial.upper() == serial.upper()]
    if port_path:
        matches = [c for c in matches if c.port_path == port_path]
    listing = "; ".join(c.describe() for c in candidates) or "none"
    if not matches:
        wanted = " and ".join(x for x in (f"serial {serial}" if serial else "",
                                          f"port {port_path}" if port_path else "") if x)
        raise ConnectError(f"no ST-Link {'with ' + wanted if wanted else 'found'}; "
                           f"probes found: {listing}",
                           hint="plug the probe in, or fix serial/port-path in the manifest",
                           transport=link, device=device)
    if len(matches) > 1:
        listed = "; ".join(c.describe() for c in matches)
        raise ConnectError(f"{len(matches)} ST-Links match: {listed}",
                           hint="name one with serial (or port-path, which cannot collide)",
                           transport=link, device=device)
    return matches[0]


class UsbPipe:
    """Bulk transfers to one opened probe (interface 0, configuration 1)."""

    def __init__(self, candidate: ProbeCandidate, *, timeout_ms: int = 1000) -> None:
        self.candidate = candidate
        self.kind = candidate.kind
        self.device = candidate.device
        self.timeout_ms = timeout_ms
        self.packet = 64
        self._claimed = False

    def open(self) -> None:
        device = self.device

        def setup() -> None:
            try:
                if device.is_kernel_driver_active(0):
                    # Reference §1.4: V1 is bound to usb-storage; take it over.
                    device.detach_kernel_driver(0)
            except NotImplementedError:
                pass
            if device.get_active_configuration().bConfigurationValue != 1:
                device.set_configuration(1)
            usb.util.claim_interface(device, 0)

        _usb_call(setup, "claiming interface 0")
        self._claimed = True
        interface = device.get_active_configuration()[(0, 0)]
        for endpoint in interface:
            if endpoint.bEndpointAddress == self.kind.in_ep:
                self.packet = endpoint.wMaxPacketSize

    def write(self, data: bytes) -> None:
        self._guard(lambda: self.device.write(self.kind.out_ep, data, self.timeout_ms), "write")

    def read(self, length: int) -> bytes:
        # pyOCD: ask for at least one packet, or libusb may report an overflow.
        size = max(length, self.packet)
        data = self._guard(lambda: self.device.read(self.kind.in_ep, size, self.timeout_ms),
                           "read")
        return bytes(data)

    def _guard(self, action: Any, what: str) -> Any:
        try:
            return _usb_call(action, what)
        except usb.core.USBTimeoutError as error:
            raise LinkTimeout(f"the ST-Link did not answer ({what})",
                              hint="replug the probe; check the target's power") from error
        except usb.core.USBError as error:
            if error.errno == errno.ENODEV:
                raise LinkLost("the ST-Link was disconnected",
                               hint="check the USB cable and replug the probe") from error
            raise LinkLost(f"USB {what} failed: {error}",
                           hint="replug the probe and try again") from error

    def close(self) -> None:
        if self._claimed:
            try:
                usb.util.release_interface(self.device, 0)
            except usb.core.USBError:
                pass
            self._claimed = False
        usb.util.dispose_resources(self.device)


class BulkFraming:
    """V2/V2-1/V3 framing (reference §2): the 16-byte block, OUT data, then the reply."""

    def __init__(self, pipe: UsbPipe) -> None:
        self.pipe = pipe

    @property
    def packet(self) -> int:
        return self.pipe.packet

    def exchange(self, block: bytes, *, data_out: bytes = b"", reply: int = 0) -> bytes:
        self.pipe.write(block.ljust(16, b"\0"))
        if data_out:
            self.pipe.write(data_out)
        if reply:
            return self.pipe.read(reply)[:reply]
        return b""

    def close(self) -> None:
        self.pipe.close()
