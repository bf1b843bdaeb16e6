"""The validated manifest as frozen values.

:func:`runner.manifest.load_manifest` builds these after the schema and the
semantic checks passed, so code downstream can trust every reference: a
device's link, recipe and recovery policy exist, its images fit its chip.

Mappings are read-only (``MappingProxyType``) and keep manifest order; lists
are tuples. Every element remembers where it was written (:class:`Location`)
so that later stages (the compiler) can still report file:line:column.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from transports.faults import Fault

if TYPE_CHECKING:
    from runner.unitdata import UnitSource

__all__ = [
    "NOWHERE",
    "Device",
    "DeviceLink",
    "EraseScope",
    "EraseStep",
    "Execution",
    "GpioLine",
    "ImageSpec",
    "LinkSpec",
    "Location",
    "LogSpec",
    "Manifest",
    "OptionBytesStep",
    "PowerRef",
    "PowerSupply",
    "ReadStep",
    "Recipe",
    "RecoveryPolicy",
    "ResetStep",
    "SimulatedDevice",
    "SimulationSpec",
    "StationSpec",
    "Step",
    "UnitDataStep",
    "VerifyMethod",
    "VerifyStep",
    "Wiring",
    "WriteStep",
    "frozen_map",
]


def frozen_map(data: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only, order-keeping copy of ``data``."""
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    """Where something was written: ``file:line:column`` (1-based)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NOWHERE = Location(file="<built>", line=0, column=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageSpec:
    """A firmware image: ``images.<name>``.

    ``address`` is required for raw binaries and optional (an override of the
    load address of the first segment) for no other format. ``sha256`` pins
    the file's content: a mismatch refuses the run.
    """

    name: str
    path: Path
    format: str = "auto"
    address: int | None = None
    sha256: str | None = None
    preserve: bool = False
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSpec:
    """A physical link: ``transports.<name>`` (a probe, a port, a bus)."""

    name: str
    kind: str
    options: Mapping[str, Any] = field(default_factory=frozen_map)
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class StationSpec:
    """A flash station: ``stations.<name>``, a Linux host reached over SSH.

    ``links`` are the transports attached to it; a device using one of them
    names the station (``station:``) and is flashed there by the station's own
    flashrunner (:mod:`runner.stations`). Host keys are always checked against
    ``known_hosts``.
    """

    name: str
    hosts: tuple[str, ...]
    user: str
    identity_file: Path
    known_hosts: Path
    links: tuple[str, ...]
    port: int = 22
    flashrunner: str = "flashrunner"
    max_parallel: int = 4
    connect_timeout: float = 10.0
    inactivity_timeout: float = 30.0
    reconnect: int = 3
    work_dir: str = ".flashrunner"
    link_lock: str = "wait"
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceLink:
    """A device's use of a link, with device-level settings (an I2C address, a CAN node)."""

    link: str
    options: Mapping[str, Any] = field(default_factory=frozen_map)


class EraseScope(enum.Enum):
    MASS = "mass"   # the whole flash
    USED = "used"   # exactly the pages/sectors the images touch
    NONE = "none"   # the flash is known to be erased


class VerifyMethod(enum.Enum):
    AUTO = "auto"          # on-target checksum when the link offers one, else read-back
    CHECKSUM = "checksum"  # on-target checksum; an error if the link has none
    READBACK = "readback"  # read everything back and compare


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One step of a recipe. ``recovery`` overrides the device's policy for this step."""

    kind: ClassVar[str] = "step"
    location: Location = NOWHERE
    recovery: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EraseStep(Step):
    kind: ClassVar[str] = "erase"
    scope: EraseScope = EraseScope.USED


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteStep(Step):
    """Program ``images``. ``skip_unchanged`` compares each erase unit first and
    erases and rewrites only the units whose contents would change."""

    kind: ClassVar[str] = "write"
    images: tuple[str, ...] = ()
    skip_unchanged: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyStep(Step):
    """Compare flash with what the recipe wrote so far, or, with ``images``, with
    those images alone (a verify on its own: nothing is written)."""

    kind: ClassVar[str] = "verify"
    method: VerifyMethod = VerifyMethod.AUTO
    images: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionBytesStep(Step):
    """Set option bytes. ``rdp: 2`` (and permanent protection) need ``confirm: irreversible``."""

    kind: ClassVar[str] = "option-bytes"
    rdp: int | None = None
    fields: Mapping[str, int] = field(default_factory=frozen_map)
    confirm: str | None = None

    @property
    def irreversible(self) -> bool:
        return self.rdp == 2


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetStep(Step):
    """Leave the chip running. ``mode`` None lets the link choose its natural way."""

    kind: ClassVar[str] = "reset"
    mode: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadStep(Step):
    """Save a region of flash to a file (before a risky change, or to read a board out).

    ``path`` may hold ``{device}``; ``address``/``size`` None mean the whole
    flash (from the address to its end). ``format`` is ``bin`` or ``hex``
    (Intel HEX, which keeps the address); ``auto`` goes by the file's suffix.
    An existing file is kept unless ``overwrite`` is set.
    """

    kind: ClassVar[str] = "read"
    path: Path = Path()
    address: int | None = None
    size: int | None = None
    format: str = "auto"
    overwrite: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitDataStep(Step):
    """Write a value computed per unit (a serial, a UID derivative, a CSV row) at ``address``.

    ``source`` is one of :data:`runner.unitdata.UnitSource`; ``size`` the bytes
    the value takes (known before any value is computed). ``preserve`` keeps the
    rest of the erase unit the field is in, as ``preserve: true`` on an image does.
    """

    kind: ClassVar[str] = "unit-data"
    address: int = 0
    size: int = 0
    source: UnitSource | None = None
    preserve: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipe:
    name: str
    steps: tuple[Step, ...]
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveryPolicy:
    """``recovery.<name>``: what to do when a step fails.

    A failing step whose error category is in ``on`` is retried up to
    ``retries`` times, waiting ``backoff * backoff_factor**attempt`` seconds
    (capped at ``max_backoff``); before each retry the policy walks its
    ``actions`` in turn (``reconnect``, ``reset``, …).
    """

    name: str
    retries: int = 0
    backoff: float = 0.0
    backoff_factor: float = 2.0
    max_backoff: float = 30.0
    on: frozenset[str] = frozenset()
    actions: tuple[str, ...] = ()
    location: Location = NOWHERE

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return float(min(self.max_backoff, self.backoff * self.backoff_factor ** (attempt - 1)))


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerSupply:
    """``power.<name>``: a USB hub that switches port power, or a command-driven adapter."""

    name: str
    kind: str  # usb-hub | command
    hub: str | None = None
    ganged: bool = False
    off: tuple[str, ...] = ()
    on: tuple[str, ...] = ()
    state: tuple[str, ...] = ()
    timeout_s: float = 10.0
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerRef:
    """One port of a supply; ``supply`` ``None`` means ``auto`` (the link's own port)."""

    supply: str | None = None
    port: int | str = 0

    @property
    def auto(self) -> bool:
        return self.supply is None


@dataclass(frozen=True, slots=True, kw_only=True)
class GpioLine:
    """A BOOT0 or NRST line: chip by label or path, line by name or offset."""

    chip: str
    line: str | int
    active_low: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Wiring:
    """``devices.<name>.wiring``: power and pins the recovery actions can use."""

    power: PowerRef | None = None
    probe_power: PowerRef | None = None
    nrst: GpioLine | None = None
    boot0: GpioLine | None = None
    off_time_s: float = 1.0
    location: Location = NOWHERE

    def offers(self, action: str) -> bool:
        """Whether the recovery action ``action`` can run on this wiring."""
        return {"nrst-pulse": self.nrst is not None,
                "boot-entry": self.nrst is not None and self.boot0 is not None,
                "power-cycle": self.power is not None,
                "probe-power-cycle": self.probe_power is not None}.get(action, True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """``devices.<name>``: one chip on one link, flashed by one recipe."""

    name: str
    chip: str
    link: DeviceLink
    recipe: str
    recovery: str | None = None
    after: tuple[str, ...] = ()
    #: The station holding the link (``None``: a link of this host).
    station: str | None = None
    wiring: Wiring = field(default_factory=Wiring)
    location: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    max_parallel: int = 8
    fail_fast: bool = False
    #: Take a slot out of service after this many devices in a row failed on it with
    #: link errors (``None``: never).
    quarantine_after: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSpec:
    """``log.file`` is a template: ``{name}``, ``{run_id}``, ``{date}``, ``{time}``.

    ``sign_key`` is the PEM Ed25519 key that signs the run's attestation.
    """

    file: str | None = None
    sign_key: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedDevice:
    """``simulation.devices.<name>``: how a simulated chip starts (RDP, faults, quirks)."""

    rdp: int = 0
    faults: tuple[Fault, ...] = ()
    fill: int | None = None
    quirks: Mapping[str, Any] = field(default_factory=frozen_map)


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationSpec:
    """``simulation``: settings used only when the manifest runs simulated."""

    time_scale: float = 1.0
    seed: str | None = None
    devices: Mapping[str, SimulatedDevice] = field(default_factory=frozen_map)
    #: ``simulation.hubs``: how simulated hubs behave, by port path.
    hubs: Mapping[str, Mapping[str, Any]] = field(default_factory=frozen_map)
    #: ``simulation.serial``/``i2c``/``can``: the host's simulated adapters, by kind and name.
    adapters: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=frozen_map)
    #: ``simulation.processes``: how many processes share the devices (``None``: two per
    #: core for a large line, :mod:`runner.shards`; 1: this process alone).
    processes: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """A whole validated manifest (with its includes merged in).

    ``path`` is the top file; ``files`` every file read, in order; ``sha256``
    the digest of the top file's bytes followed by each include's (what
    ``run.started`` records).
    """

    version: int
    name: str
    path: Path
    sha256: str
    files: tuple[Path, ...]
    description: str = ""
    simulate: bool = False
    simulation: SimulationSpec = field(default_factory=SimulationSpec)
    images: Mapping[str, ImageSpec] = field(default_factory=frozen_map)
    links: Mapping[str, LinkSpec] = field(default_factory=frozen_map)
    stations: Mapping[str, StationSpec] = field(default_factory=frozen_map)
    power: Mapping[str, PowerSupply] = field(default_factory=frozen_map)
    recipes: Mapping[str, Recipe] = field(default_factory=frozen_map)
    recovery: Mapping[str, RecoveryPolicy] = field(default_factory=frozen_map)
    devices: Mapping[str, Device] = field(default_factory=frozen_map)
    execution: Execution = field(default_factory=Execution)
    log: LogSpec = field(default_factory=LogSpec)
    #: Located warnings (``file:line:col: …``): valid, but probably not meant.
    warnings: tuple[str, ...] = ()

    def recipe_for(self, device: Device) -> Recipe:
        return self.recipes[device.recipe]

    def recovery_for(self, device: Device, step: Step | None = None) -> RecoveryPolicy | None:
        """The policy in force for ``step`` of ``device``: step, then device, then ``default``."""
        name = (step.recovery if step is not None and step.recovery else None) \
            or device.recovery or ("default" if "default" in self.recovery else None)
        return self.recovery.get(name) if name else None
