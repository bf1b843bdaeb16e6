"""ST-Link USB layer: which probes exist, how to pick one, how to move bytes.

Reference §1: VID 0x0483; the PID says the generation and the OUT endpoint
(V1 EP 2 inside mass-storage framing, V2 EP 2, everything later EP 1); the
reply endpoint is always 0x81. Selection is by serial number or by USB port
path (``bus-port.port…``): a serial can collide (clones share serials, and a
DFU device may carry the same one), a port path cannot. Discovery, port
paths, selection and the libusb error table are the shared USB layer's
(:mod:`transports.usb`), the same as the DFU link's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import usb.core
import usb.util

from transports import usb as shared
from transports.errors import RunnerError
from transports.trace import NO_TRACE, Trace
from transports.usb import UDEV_HINT, LinkNames

__all__ = ["PROBE_KINDS", "UDEV_HINT", "ProbeCandidate", "ProbeKind", "UsbPipe",
           "find_candidates", "normalise_serial", "select_probe"]

ST_VID = 0x0483
_THING = "the ST-Link"


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
    """A probe seen on the bus, with what a user can select it by.

    Only the serial is read at enumeration: every connect enumerates every
    probe, and the product string is wanted only when a listing describes one.
    """

    serial: str
    port_path: str
    kind: ProbeKind
    device: Any
    names: LinkNames

    @property
    def product(self) -> str:
        """The probe's product string (read now; the kind's name if it has none)."""
        return shared.read_string(self.device, self.device.iProduct, "reading its product name",
                                  self.names, thing=_THING) or self.kind.name

    def describe(self) -> str:
        try:
            product = self.product
        except RunnerError:
            # The listing is already an error message; a probe that cannot say its
            # name is still listed by what it can be selected by.
            product = self.kind.name
        return f"{self.kind.name} serial {self.serial or '?'} at port {self.port_path} " \
               f"({product})"


def find_candidates(backend: Any = None, names: LinkNames | None = None
                    ) -> list[ProbeCandidate]:
    """Every ST-Link debug probe on the bus (bootloader PIDs excluded).

    The bus is scanned through :func:`~transports.usb.scan_shared`: links that
    connect at the same moment share one scan that began after they asked.
    """
    names = names or LinkNames(link="?", device="?")
    found = []
    for device, kind, scanned in shared.scan_shared(backend, "stlink", lambda: _scan(backend)):
        # Where the scan could not read the serial, read it here: errors name this link.
        serial = scanned if scanned is not None else shared.read_string(
            device, device.iSerialNumber, "reading its serial number", names, thing=_THING)
        found.append(ProbeCandidate(serial=normalise_serial(serial),
                                    port_path=shared.port_path(device), kind=kind,
                                    device=device, names=names))
    return found


def _scan(backend: Any) -> list[tuple[Any, ProbeKind, str | None]]:
    """The debug probes on the bus with their serials (None where it could not be read)."""
    probes: list[tuple[Any, ProbeKind, str | None]] = []
    for device in shared.find_devices(backend, vid=ST_VID, what="ST-Link"):
        kind = PROBE_KINDS.get(device.idProduct)
        if kind is None or not kind.debug:
            continue
        serial: str | None
        try:
            serial = shared.read_string(device, device.iSerialNumber, "reading its serial "
                                        "number", LinkNames(link="?", device="?"),
                                        thing=_THING)
        except RunnerError:
            serial = None
        probes.append((device, kind, serial))
    return probes


def select_probe(candidates: Sequence[ProbeCandidate], *, serial: str | None,
                 port_path: str | None, link: str, device: str) -> ProbeCandidate:
    """Pick the one probe the options name; anything else is a ConnectError that lists."""
    return shared.select(candidates, serial=serial or None, port_path=port_path or None,
                         what="ST-Link", plural="ST-Links",
                         names=LinkNames(link=link, device=device),
                         missing_hint="plug the probe in, or fix serial/port-path in the "
                                      "manifest",
                         ambiguous_hint="name one with serial (or port-path, which cannot "
                                        "collide)")


class UsbPipe:
    """Bulk transfers to one opened probe (interface 0, configuration 1)."""

    def __init__(self, candidate: ProbeCandidate, *, timeout_ms: int = 1000,
                 names: LinkNames | None = None) -> None:
        self.candidate = candidate
        self.kind = candidate.kind
        self.device = candidate.device
        self.timeout_ms = timeout_ms
        self.names = names or LinkNames(link="?", device="?")
        self.packet = 64
        self._claimed = False
        #: Raw bulk transfers go here with ``-vv``.
        self.trace: Trace = NO_TRACE

    def open(self) -> None:
        device = self.device
        with shared.usb_errors("claiming interface 0", self.names, thing=_THING):
            try:
                if device.is_kernel_driver_active(0):
                    # Reference §1.4: V1 is bound to usb-storage; take it over.
                    device.detach_kernel_driver(0)
            except NotImplementedError:
                pass
            if device.get_active_configuration().bConfigurationValue != 1:
                device.set_configuration(1)
            usb.util.claim_interface(device, 0)
        self._claimed = True
        interface = device.get_active_configuration()[(0, 0)]
        for endpoint in interface:
            if endpoint.bEndpointAddress == self.kind.in_ep:
                self.packet = endpoint.wMaxPacketSize

    def write(self, data: bytes) -> None:
        if self.trace.raw:
            self.trace.transfer("out", data, what=f"bulk 0x{self.kind.out_ep:02X}")
        with shared.usb_errors("a bulk write", self.names, thing=_THING):
            self.device.write(self.kind.out_ep, data, self.timeout_ms)

    def read(self, length: int) -> bytes:
        # pyOCD: ask for at least one packet, or libusb may report an overflow.
        size = max(length, self.packet)
        with shared.usb_errors("a bulk read", self.names, thing=_THING):
            data = bytes(self.device.read(self.kind.in_ep, size, self.timeout_ms))
        if self.trace.raw:
            self.trace.transfer("in", data, what=f"bulk 0x{self.kind.in_ep:02X}")
        return data

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
