"""The plan: what a run will do, as values.

:func:`runner.compiler.compile_plan` turns a :class:`~runner.model.Manifest`
into a :class:`Plan`: per device a chain of :class:`Task` s (connect/identify,
then the recipe's steps), across devices the ``after`` edges, and for each
device the physical resource its link holds exclusively. The executor runs a
plan; ``flashrunner plan`` renders one (:mod:`runner.render`).

A device is the unit of scheduling: its tasks run in order over one open
transport session. The DAG between devices comes from ``after`` edges; the
exclusive resources serialise devices sharing a bus or probe.

Results are values too (:class:`Outcome`, :class:`StepResult`,
:class:`DeviceResult`, :class:`RunResult`): exceptions are for "cannot
continue", a failed step is an outcome.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from runner.memmap import MemoryMap
from runner.model import (
    NOWHERE,
    EraseScope,
    Execution,
    Location,
    LogSpec,
    PowerSupply,
    RecoveryPolicy,
    SimulationSpec,
    VerifyMethod,
    Wiring,
    frozen_map,
)
from runner.preserve import PreserveRange
from runner.unitdata import UnitSource
from transports.base import OptionBytesChange, ResetMode
from transports.chips import Chip, FlashBlock

__all__ = [
    "ConnectAction",
    "DevicePlan",
    "DeviceResult",
    "DeviceTasks",
    "EraseAction",
    "ImageUse",
    "OptionBytesAction",
    "Outcome",
    "Plan",
    "ReadAction",
    "ResetAction",
    "RunResult",
    "Stage",
    "StepResult",
    "Task",
    "TaskAction",
    "TaskGroup",
    "TaskKind",
    "TaskTemplate",
    "UnitDataAction",
    "VerifyAction",
    "WriteAction",
]


class TaskKind(enum.Enum):
    CONNECT = "connect"
    ERASE = "erase"
    WRITE = "write"
    VERIFY = "verify"
    OPTION_BYTES = "option-bytes"
    RESET = "reset"
    UNIT_DATA = "unit-data"
    READ = "read"


# ----------------------------------------------------------------------------- actions
# What a task does, with everything the executor needs and nothing it must look up.


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectAction:
    """Open the session, identify the chip, check it is the manifest's chip."""

    expected_dev_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EraseAction:
    """Erase ``blocks`` (empty with ``scope`` MASS: the whole flash).

    ``preserve``: bytes of those blocks to read before erasing (``preserve: true``
    images in partly filled sectors); the next write puts them back.
    """

    scope: EraseScope
    blocks: tuple[FlashBlock, ...] = ()
    preserve: tuple[PreserveRange, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageUse:
    """An image as written by a task: its name, file digest and where it lands."""

    name: str
    sha256: str
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteAction:
    """Program ``memory`` (already padded to the write unit).

    ``keep``: preserved ranges whose bytes, read before the erase, this write
    lays over its padding and writes back.
    """

    memory: MemoryMap
    images: tuple[ImageUse, ...]
    keep: tuple[PreserveRange, ...] = ()
    #: Compare each of ``units`` first; erase and rewrite whole only those that differ
    #: (``keep`` then names the preserved bytes inside ``units``, read by this write).
    skip_unchanged: bool = False
    units: tuple[FlashBlock, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyAction:
    """Compare flash with ``memory`` (everything the device's write steps wrote, or
    with ``images`` the named images alone: a verify on its own)."""

    method: VerifyMethod
    memory: MemoryMap
    images: tuple[ImageUse, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionBytesAction:
    change: OptionBytesChange


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetAction:
    mode: ResetMode


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadAction:
    """Read ``size`` bytes at ``address`` and save them to ``path`` (``{device}`` expanded).

    ``format`` is ``bin`` or ``hex`` (resolved from the suffix by the compiler).
    """

    path: Path
    address: int
    size: int
    format: str
    overwrite: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitDataAction:
    """Compute a per-unit value after identify (:mod:`runner.unitdata`) and write it.

    ``size`` is the value's length; it is written padded to the write unit.
    ``keep``: as for :class:`WriteAction`, when no image write follows the erase.
    """

    address: int
    size: int
    source: UnitSource
    keep: tuple[PreserveRange, ...] = ()


TaskAction = ConnectAction | EraseAction | WriteAction | VerifyAction | OptionBytesAction \
    | ResetAction | UnitDataAction | ReadAction


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """One step of one device.

    Attributes:
        id: ``<device>/<index>-<kind>``, unique in the plan and stable across runs.
        bytes: bytes moved over the link (written, read back, …).
        estimate_s: expected duration from the link's speed model and the chip's timings.
        recovery: the policy in force for this task (``None``: fail at once).
    """

    id: str
    device: str
    index: int
    kind: TaskKind
    action: TaskAction
    bytes: int = 0
    estimate_s: float = 0.0
    recovery: RecoveryPolicy | None = None
    location: Location = NOWHERE

    @property
    def label(self) -> str:
        return f"{self.index}-{self.kind.value}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskTemplate:
    """One task as compiled for every device alike (same recipe, chip, link and policy).

    ``location`` ``None``: the device's own (the connect task has no step).
    """

    index: int
    kind: TaskKind
    action: TaskAction
    bytes: int = 0
    estimate_s: float = 0.0
    recovery: RecoveryPolicy | None = None
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class TaskGroup:
    """The templates of devices alike, with their totals (computed once)."""

    templates: tuple[TaskTemplate, ...]
    estimate_s: float
    bytes: int

    @classmethod
    def of(cls, templates: tuple[TaskTemplate, ...]) -> TaskGroup:
        return cls(templates, sum(t.estimate_s for t in templates),
                   sum(t.bytes for t in templates))


class DeviceTasks(Sequence[Task]):
    """A device's tasks, made from its group's shared templates when read.

    A line of 50,000 devices alike keeps one small object per device here
    instead of a tuple of tasks each; reading gives equal :class:`Task` values.
    """

    __slots__ = ("device", "group", "location")

    def __init__(self, device: str, location: Location, group: TaskGroup) -> None:
        self.device = device
        self.location = location
        self.group = group

    def _task(self, template: TaskTemplate) -> Task:
        return Task(id=f"{self.device}/{template.index}-{template.kind.value}",
                    device=self.device, index=template.index, kind=template.kind,
                    action=template.action, bytes=template.bytes,
                    estimate_s=template.estimate_s, recovery=template.recovery,
                    location=template.location or self.location)

    def __len__(self) -> int:
        return len(self.group.templates)

    @overload
    def __getitem__(self, index: int) -> Task: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Task, ...]: ...

    def __getitem__(self, index: int | slice) -> Task | tuple[Task, ...]:
        if isinstance(index, slice):
            return tuple(self._task(t) for t in self.group.templates[index])
        return self._task(self.group.templates[index])

    def __iter__(self) -> Iterator[Task]:
        return (self._task(template) for template in self.group.templates)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DeviceTasks):
            return (self.device, self.location, self.group) \
                == (other.device, other.location, other.group) or tuple(self) == tuple(other)
        return isinstance(other, (tuple, list)) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


@dataclass(frozen=True, slots=True, kw_only=True)
class DevicePlan:
    """Everything about one device's part of the run."""

    device: str
    chip: Chip
    link: str
    kind: str
    resource: str
    options: Mapping[str, Any] = field(default_factory=frozen_map)
    #: A tuple, or (compiled) :class:`DeviceTasks` made from templates shared with others.
    tasks: Sequence[Task] = ()
    after: tuple[str, ...] = ()
    memory: MemoryMap = field(default_factory=MemoryMap)
    images: tuple[ImageUse, ...] = ()
    location: Location = NOWHERE
    #: Power and BOOT0/NRST lines the recovery actions use (``auto`` resolved).
    wiring: Wiring | None = None

    @property
    def estimate_s(self) -> float:
        if isinstance(self.tasks, DeviceTasks):
            return self.tasks.group.estimate_s
        return sum(task.estimate_s for task in self.tasks)

    @property
    def bytes(self) -> int:
        if isinstance(self.tasks, DeviceTasks):
            return self.tasks.group.bytes
        return sum(task.bytes for task in self.tasks)


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """Devices that can run side by side once earlier stages are done.

    Stages are a reading aid (``flashrunner plan``): the executor starts a
    device as soon as its own dependencies and resource allow.
    """

    index: int
    devices: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A compiled manifest."""

    name: str
    manifest_path: Path
    manifest_sha256: str
    simulate: bool
    simulation: SimulationSpec
    execution: Execution
    log: LogSpec
    devices: tuple[DevicePlan, ...]
    stages: tuple[Stage, ...]
    critical_path: tuple[str, ...]
    estimate_s: float
    image_digests: Mapping[str, str] = field(default_factory=frozen_map)
    warnings: tuple[str, ...] = ()
    #: Manifest devices left out by ``only=`` (``--only``), in manifest order.
    not_selected: tuple[str, ...] = ()
    #: ``power:`` supplies the devices' wiring names.
    power: Mapping[str, PowerSupply] = field(default_factory=frozen_map)

    def device(self, name: str) -> DevicePlan:
        for device in self.devices:
            if device.device == name:
                return device
        raise KeyError(name)

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(task for device in self.devices for task in device.tasks)


# ----------------------------------------------------------------------------- results


class Outcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"                   # not run: --only, or fail-fast stopped the run
    UPSTREAM_FAILED = "upstream-failed"   # a device it comes after failed
    INTERRUPTED = "interrupted"
    #: The outcome never reached the host (a station lost mid-run); never counted as ok.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    task: str
    kind: TaskKind
    outcome: Outcome
    duration_s: float = 0.0
    attempts: int = 1
    bytes: int = 0
    error: str | None = None
    error_type: str | None = None
    error_category: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceResult:
    device: str
    outcome: Outcome
    steps: tuple[StepResult, ...] = ()
    duration_s: float = 0.0
    identity: Mapping[str, Any] = field(default_factory=frozen_map)
    error: str | None = None
    error_type: str | None = None
    error_category: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    run_id: str
    plan: Plan
    devices: tuple[DeviceResult, ...]
    duration_s: float
    interrupted: bool = False
    log_file: Path | None = None
    #: The environment failure that stopped the run (the audit log's disk full, …).
    stopped_by: str | None = None

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.stopped_by is None \
            and all(d.outcome is Outcome.OK for d in self.devices if d.reason != "not selected")

    @property
    def environment_failures(self) -> tuple[str, ...]:
        """Devices that could not start: the machine lacks something (libusb, a permission)."""
        return tuple(d.device for d in self.devices
                     if d.outcome is Outcome.FAILED and d.error_category == "environment")

    @property
    def flash_failures(self) -> tuple[str, ...]:
        """Devices that failed for any other reason (the link, the chip, a verify)."""
        return tuple(d.device for d in self.devices
                     if d.outcome is Outcome.FAILED and d.error_category != "environment")

    @property
    def exit_code(self) -> int:
        """0 all ok, 1 a device failed, 3 only the environment failed (or it stopped the
        run), 130 interrupted.

        A run whose every failure is an environment problem (no libusb, no
        permission on a port, a missing package) exits 3; a mix with flash
        failures exits 1 (README "Exit codes"). A run the environment stopped (the
        audit log's disk full) exits 3 whatever else happened.
        """
        if self.stopped_by is not None:
            return 3
        if self.interrupted:
            return 130
        if self.ok:
            return 0
        return 3 if self.environment_failures and not self.flash_failures else 1

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for device in self.devices:
            counts[device.outcome.value] = counts.get(device.outcome.value, 0) + 1
        return counts
