"""The transport contract: what every way of reaching a chip must offer.

A transport is one *session* with one chip over one link (a USART port, an I2C
address on a bus, a CAN node, a USB DFU device, an ST-Link probe). The runner
opens it, asks for the chip's identity, erases, writes, reads, resets, and
closes it; verification is done once, by the runner, with :meth:`checksum`
when the transport offers it and by read-back otherwise.

Each transport class declares its :class:`Capability` set (everything the
kind can offer with some chip) and, per chip and options, what a session is
expected to offer (:meth:`TransportClass.planned_capabilities`), so the
compiler can reject a step the link cannot do before anything runs and the
plan says how each step will be done; and a :class:`SpeedModel` so the plan
can estimate durations.

Transports never import the runner: the error tree (:mod:`transports.errors`)
and the chip database live here, below the engine. Everything outside the
process (ports, buses, USB, the clock) is reached through the endpoint provider
in :attr:`LinkRequest.endpoints` (:mod:`transports.endpoints`), handed in by
whoever composes the run, so the same driver code runs on hardware and in a
rehearsal.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from transports.chips import Chip, FlashBlock
from transports.endpoints import HARDWARE, Endpoints
from transports.trace import NO_TRACE, Trace

__all__ = [
    "MASS_ERASE",
    "Capability",
    "Checksum",
    "ChipIdentity",
    "Fallback",
    "LinkRequest",
    "OptionBytes",
    "OptionBytesChange",
    "Progress",
    "ResetMode",
    "SpeedModel",
    "StaticCapabilities",
    "Transport",
    "TransportClass",
    "no_fallback",
    "no_progress",
    "planned_capabilities",
    "simulated_endpoints",
]


class Capability(enum.Enum):
    """What a link can do; the compiler checks steps against these."""

    ERASE_PAGES = "erase-pages"
    ERASE_MASS = "erase-mass"
    WRITE = "write"
    READ = "read"
    CHECKSUM = "checksum"          # on-target checksum, cheaper than read-back
    RESET_HARDWARE = "reset-hardware"
    RESET_SOFTWARE = "reset-software"
    GO = "go"                      # jump to an address (bootloader Go / DFU leave)
    OPTION_BYTES = "option-bytes"  # read and write the option bytes, RDP included
    READ_UNPROTECT = "read-unprotect"
    WRITE_UNPROTECT = "write-unprotect"
    UID = "uid"                    # identify() reports the 96-bit unique ID


class ResetMode(enum.Enum):
    """How to leave the chip after flashing."""

    HARDWARE = "hardware"  # NRST pulse (probe pin, DTR/RTS, GPIO)
    SOFTWARE = "software"  # AIRCR.SYSRESETREQ over the debug port
    GO = "go"              # jump to the application (bootloader Go, DFU leave)
    HALT = "halt"          # reset and stay halted (debug probes)


#: Progress callback: (bytes done, bytes total). Called from the transport's thread.
Progress = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    """A :data:`Progress` that ignores its reports."""


#: Pass to :meth:`Transport.erase` to erase the whole flash.
MASS_ERASE: Sequence[FlashBlock] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChipIdentity:
    """Who the chip is, as read from the chip itself (for the audit log).

    ``dev_id`` is the 12-bit DEV_ID/PID; ``uid`` the 96-bit unique ID as hex
    (empty when the link cannot read it); ``flash_size`` in bytes as the
    chip's flash-size register reports it (``None`` when unknown).
    """

    dev_id: int
    rev_id: int | None = None
    uid: str = ""
    flash_size: int | None = None
    rdp_level: int | None = None
    bootloader_version: str | None = None
    probe: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def log_fields(self) -> dict[str, Any]:
        """Fields for the ``device.identified`` event."""
        data: dict[str, Any] = {"dev_id": f"0x{self.dev_id:03X}"}
        if self.rev_id is not None:
            data["rev_id"] = f"0x{self.rev_id:04X}"
        if self.uid:
            data["uid"] = self.uid
        if self.flash_size is not None:
            data["flash_size"] = self.flash_size
        if self.rdp_level is not None:
            data["rdp_level"] = self.rdp_level
        if self.bootloader_version:
            data["bootloader_version"] = self.bootloader_version
        if self.probe:
            data["probe"] = self.probe
        data.update(self.details)
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class Checksum:
    """An on-target checksum and the algorithm the runner must reproduce.

    Algorithms are named in :mod:`transports.checksums`.
    """

    algorithm: str
    value: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionBytes:
    """The option bytes as read: raw image plus decoded fields."""

    raw: bytes
    rdp_level: int
    fields: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionBytesChange:
    """What to change. ``rdp_level`` 2 is irreversible and needs ``confirmed``."""

    rdp_level: int | None = None
    fields: Mapping[str, int] = field(default_factory=dict)
    confirmed_irreversible: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeedModel:
    """Throughput figures used for plan estimates (not for timeouts).

    Chip-side times (erase, program) come from the chip database; these are
    the link's own costs.
    """

    connect_s: float
    write_bytes_per_s: float
    read_bytes_per_s: float
    checksum_bytes_per_s: float | None = None
    #: The link's own overhead per erase unit (command frames), on top of the chip's erase time.
    erase_overhead_s: float = 0.0


#: ``(feature, instead, why)``: a session gave up a faster path for a slower, safe one
#: (the RAM loader for the register path, the on-target CRC for read-back). The run
#: logs it and warns; it is never silent.
Fallback = Callable[[str, str, str], None]


def no_fallback(feature: str, instead: str, why: str) -> None:
    """A session opened outside a run: nobody to tell (its identity still says so)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkRequest:
    """Everything a transport needs to open a session with one device's chip.

    ``options`` are the manifest's settings for the link merged with the
    device's own (e.g. an I2C address or CAN node); ``endpoints`` is where the
    session opens its port, bus or USB device and takes its clock from: the
    hardware, or a rehearsal's simulated far ends. The transport runs the very
    same code with either. ``trace`` receives each protocol command and reply
    (``-v``) and the raw transfers (``-vv``); it is off unless asked for.
    ``fallback`` is told whenever the session leaves a faster path for a safe one.
    """

    device: str
    link: str
    kind: str
    options: Mapping[str, Any]
    chip: Chip
    endpoints: Endpoints = HARDWARE
    trace: Trace = NO_TRACE
    fallback: Fallback = no_fallback


@runtime_checkable
class Transport(Protocol):
    """One session with one chip. Methods raise :class:`transports.errors.TransportError`."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What this session offers (a class variable in most implementations)."""
        ...

    def connect(self) -> None:
        """Open the link and bring the chip into a state where it takes commands."""

    def identify(self) -> ChipIdentity:
        """Read the chip's identity (DEV_ID, UID, flash size, RDP, versions)."""

    def erase(self, blocks: Sequence[FlashBlock], progress: Progress = no_progress) -> None:
        """Erase these erase units, or the whole flash when given :data:`MASS_ERASE`."""

    def write(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        """Program ``data`` at ``address`` (already erased, write-unit aligned and padded)."""

    def read(self, address: int, length: int, progress: Progress = no_progress) -> bytes:
        """Read ``length`` bytes from ``address``."""

    def checksum(self, address: int, length: int) -> Checksum:
        """On-target checksum; only called when :attr:`Capability.CHECKSUM` is offered."""

    def reset(self, mode: ResetMode) -> None:
        """Leave the chip running (or halted) in the given way."""

    def read_option_bytes(self) -> OptionBytes:
        """Read the option bytes (RDP level included)."""

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        """Change option bytes; RDP 1 → 0 mass-erases the flash, as silicon does."""

    def close(self) -> None:
        """Release the link. Safe to call more than once and after errors."""


class TransportClass(Protocol):
    """What the registry loads: a class that opens sessions for one link kind.

    The class object itself is the implementation: its class variables provide
    the read-only attributes below (declared as properties so that mypy matches a
    class object against this protocol), its class methods the methods.
    """

    @property
    def kind(self) -> str:
        """The manifest's ``kind:`` (and the entry point's name, for a plugin)."""
        ...

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Everything this kind of link can offer with some chip and some options;
        what one device's session will offer is :meth:`planned_capabilities`."""
        ...

    @property
    def options_schema(self) -> Mapping[str, Any]:
        """JSON Schema (draft 2020-12) of this kind's options: the link's keys
        (everything but ``kind``) merged with a device's own (``transport: {use: …}``).
        ``additionalProperties: false`` so a typo'd option is an error with its location."""
        ...

    @property
    def simulation(self) -> frozenset[str]:
        """The endpoints (method names of the endpoint provider, docs/architecture.md)
        a simulated session of this kind reaches; empty: the kind cannot be simulated,
        and a rehearsal that uses it is refused before anything runs."""
        ...

    @classmethod
    def planned_capabilities(cls, options: Mapping[str, Any],
                             chip: Chip) -> frozenset[Capability]:
        """What a session with ``chip`` and these options is expected to offer.

        A subset of :attr:`capabilities`, decided from the chip database and
        the options alone (no I/O); the plan counts on it, and a session that
        turns out to offer less is reported at run time.
        """
        ...

    @classmethod
    def speed_model(cls, options: Mapping[str, Any], chip: Chip) -> SpeedModel:
        """Throughput figures for these settings (baud rate, clock, …)."""
        ...

    @classmethod
    def resource_key(cls, link: str, options: Mapping[str, Any]) -> str:
        """The physical resource this session holds exclusively.

        Devices whose sessions return the same key are serialised by the
        executor: two I2C addresses on one bus share ``i2c:<bus>``.
        """
        ...

    @classmethod
    def open(cls, request: LinkRequest) -> Transport:
        """Create (not yet connect) a session for ``request``."""
        ...


class StaticCapabilities:
    """Mixin for transport classes whose sessions offer :attr:`capabilities` whatever the chip."""

    capabilities: ClassVar[frozenset[Capability]]

    @classmethod
    def planned_capabilities(cls, options: Mapping[str, Any],
                             chip: Chip) -> frozenset[Capability]:
        return cls.capabilities


def simulated_endpoints(transport: TransportClass | type[Any]) -> frozenset[str]:
    """The endpoints ``transport`` uses when simulated; empty when it cannot be.

    A class written before the contract said so declares nothing, and counts as
    not simulatable: a rehearsal must never reach hardware through it.
    """
    declared: object = getattr(transport, "simulation", frozenset())
    if not isinstance(declared, (set, frozenset)):
        return frozenset()
    return frozenset(str(name) for name in declared)


def planned_capabilities(transport: TransportClass | type[Any], options: Mapping[str, Any],
                         chip: Chip) -> frozenset[Capability]:
    """``transport.planned_capabilities(options, chip)``; the static set for a class without it.

    The runner asks through this function so that a transport class written
    before per-chip capabilities existed still plans as it always did.
    """
    planned = getattr(transport, "planned_capabilities", None)
    if planned is None:
        return frozenset(transport.capabilities)
    return frozenset(planned(options, chip))
