"""Manifest + chip facts → :class:`~runner.plan.Plan`. Pure: no I/O beyond reading images.

For each selected device (manifest order) the compiler looks up the chip, the
link's transport class and its exclusive resource, lays the device's images
out in flash once (:mod:`runner.layout`) and turns the recipe into tasks
``<device>/<index>-<kind>``: a connect task first, then one per step.
Estimates come from the link's :class:`~transports.base.SpeedModel` and the
chip's :class:`~transports.chips.FlashTiming`; :mod:`runner.schedule` turns
them into stages, a makespan and the critical path. Steps are checked against
what the link will offer *for this chip and these options*
(:mod:`runner.capabilities`): a verify ``auto`` is estimated as the checksum or
the read-back the run will do, a reset without a mode is the link's natural one.

Two choices worth knowing:

* ``erase: {scope: none}`` produces no task (the flash is known to be erased),
  and neither does ``scope: used`` on a recipe that writes nothing (with a
  warning): an :class:`~runner.plan.EraseAction` always erases something.
* ``only=`` compiles exactly the devices named. A selected device whose
  ``after`` names a device left out does not wait for it (the operator asked
  for exactly these); the plan says so in a warning and lists the others in
  :attr:`~runner.plan.Plan.not_selected`.

A task's ``bytes`` are the bytes it moves or compares: a write's padded data,
a verify's compared range (by checksum or read-back), an option-bytes step's
option block; connect, erase and reset move none. A verify before any write
compares nothing (an empty memory map) and is warned about.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from runner.capabilities import (
    RESET_NEEDS,
    device_capabilities,
    instead,
    missing,
    natural_reset,
    verify_via,
)
from runner.errors import PlanError
from runner.gcpause import collector_paused
from runner.images import LoadedImage, load_image
from runner.layout import Layout, layout_images, sector_warnings, verify_layout
from runner.memmap import MemoryMap
from runner.model import (
    NOWHERE,
    Device,
    EraseScope,
    EraseStep,
    LinkSpec,
    Location,
    Manifest,
    OptionBytesStep,
    ReadStep,
    Recipe,
    RecoveryPolicy,
    ResetStep,
    Step,
    UnitDataStep,
    VerifyMethod,
    VerifyStep,
    Wiring,
    WriteStep,
    frozen_map,
)
from runner.plan import (
    ConnectAction,
    DevicePlan,
    DeviceTasks,
    EraseAction,
    ImageUse,
    OptionBytesAction,
    Plan,
    ReadAction,
    ResetAction,
    TaskAction,
    TaskGroup,
    TaskKind,
    TaskTemplate,
    UnitDataAction,
    VerifyAction,
    WriteAction,
)
from runner.preserve import PreserveRange
from runner.schedule import build_stages, find_cycle, simulate_schedule
from runner.unitdata import rehearsal_source
from runner.wiring import resolve_wiring
from transports.base import (
    Capability,
    OptionBytesChange,
    ResetMode,
    SpeedModel,
    TransportClass,
    simulated_endpoints,
)
from transports.chips import Chip, ChipDatabase, chip_database
from transports.registry import load_transport

__all__ = ["OPTION_BYTES_S", "RESET_S", "compile_plan", "natural_reset", "verify_via"]

#: Estimate for a reset (the chip's own start-up; links add little).
RESET_S = 0.1
#: Estimate for programming the option bytes and reloading them.
OPTION_BYTES_S = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class _Link:
    """What one device's link offers: the kind's whole set and this chip's share of it."""

    kind: str
    part: str
    offered: frozenset[Capability]
    every: frozenset[Capability]


def compile_plan(manifest: Manifest, *, chips: ChipDatabase | None = None,
                 only: Sequence[str] | None = None, simulate: bool | None = None,
                 max_parallel: int | None = None) -> Plan:
    """Compile ``manifest`` into a :class:`Plan`.

    Args:
        chips: the chip database (default: the shipped one).
        only: compile just these devices; ``after`` edges to devices left out
            are dropped (those devices run without waiting).
        simulate: overrides the manifest's ``simulate`` (CLI ``--simulate``).
        max_parallel: overrides ``execution.max-parallel`` (CLI ``--max-parallel``).

    Raises:
        PlanError: anything that makes a plan impossible (a dependency cycle, an
            unknown chip, device or image, a step the link cannot do, images
            that overlap or fall outside flash).
        ImageError: an image cannot be read or its pin differs.
    """
    with collector_paused():
        return _compile(manifest, chips=chips, only=only, simulate=simulate,
                        max_parallel=max_parallel)


def _compile(manifest: Manifest, *, chips: ChipDatabase | None,
             only: Sequence[str] | None, simulate: bool | None,
             max_parallel: int | None) -> Plan:
    execution = manifest.execution
    if max_parallel is not None:
        execution = replace(execution, max_parallel=max_parallel)
    if execution.max_parallel < 1:
        raise PlanError(f"max-parallel must be at least 1, not {execution.max_parallel}",
                        hint="give how many devices may be flashed at once")
    _check_after(manifest)
    selected = _select(manifest, only)
    is_simulated = manifest.simulate if simulate is None else simulate
    every = len(selected) == len(manifest.devices)
    compiler = _Compiler(manifest, chips if chips is not None else chip_database(),
                         None if every else frozenset(selected), rehearsal=is_simulated)
    devices = tuple(compiler.device(manifest.devices[name]) for name in selected)
    del selected
    timeline = simulate_schedule(devices, execution.max_parallel)
    makespan, on_path = timeline.makespan, timeline.critical
    del timeline   # its tables are as long as the line: gone before the stages are built
    deciding = set(on_path)
    by_name = {device.device: device for device in devices if device.device in deciding}
    critical = tuple(task.id for name in on_path for task in by_name[name].tasks)
    warnings = (*manifest.warnings, *compiler.warnings(simulated=is_simulated))
    return Plan(
        name=manifest.name, manifest_path=manifest.path, manifest_sha256=manifest.sha256,
        simulate=is_simulated, simulation=manifest.simulation, execution=execution,
        log=manifest.log, devices=devices, stages=build_stages(devices),
        critical_path=critical, estimate_s=makespan,
        image_digests=frozen_map({name: compiler.images[name].sha256
                                  for name in manifest.images if name in compiler.images}),
        warnings=warnings,
        not_selected=() if every else
        tuple(name for name in manifest.devices
              if compiler.selected is not None and name not in compiler.selected),
        power=manifest.power,
    )


def _where(location: Location) -> str:
    return "" if location == NOWHERE else f"{location}: "


def _check_after(manifest: Manifest) -> None:
    for device in manifest.devices.values():
        for name in device.after:
            if name not in manifest.devices:
                raise PlanError(
                    f"{_where(device.location)}device {device.name} comes after {name!r}, "
                    f"which is not a device", hint=f"use one of {', '.join(manifest.devices)}")
    cycle = find_cycle({name: d.after for name, d in manifest.devices.items()})
    if cycle:
        raise PlanError(f"devices wait for each other in a cycle: {' → '.join(cycle)}",
                        hint="remove one of these `after` entries")


def _select(manifest: Manifest, only: Sequence[str] | None) -> list[str]:
    if only is None:
        return list(manifest.devices)
    if isinstance(only, str):
        only = [only]
    unknown = [name for name in only if name not in manifest.devices]
    if unknown or not only:
        what = f"unknown device {', '.join(map(repr, unknown))}" if unknown \
            else "no device selected"
        raise PlanError(what, hint=f"choose among {', '.join(manifest.devices) or 'none'}")
    wanted = set(only)
    return [name for name in manifest.devices if name in wanted]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Prepared:
    """A recipe step made into an action, with what its estimate depends on."""

    kind: TaskKind
    action: TaskAction
    step: Step | None
    bytes: int = 0
    chip_s: float = 0.0        # chip-side time: erase, program
    erase_units: int = 0       # erase commands sent (link overhead each)
    wire: str = ""             # "write", "read", "checksum", "connect" or ""

    def estimate(self, speed: SpeedModel) -> float:
        seconds = self.chip_s + self.erase_units * speed.erase_overhead_s
        if self.wire == "connect":
            seconds += speed.connect_s
        elif self.wire == "write":
            seconds += self.bytes / speed.write_bytes_per_s
        elif self.wire == "read":
            seconds += self.bytes / speed.read_bytes_per_s
        elif self.wire == "checksum":
            seconds += self.bytes / (speed.checksum_bytes_per_s or speed.read_bytes_per_s)
        return seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class _Alike:
    """What devices alike share in the plan (see :meth:`_Compiler.device`)."""

    options: Mapping[str, Any]
    resource: str
    group: TaskGroup
    layout: Layout
    notes: tuple[str, ...]
    wiring: Wiring | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Recipe:
    """A recipe prepared for one part and link kind: its steps and its warnings."""

    items: tuple[_Prepared, ...]
    notes: tuple[str, ...]


class _Compiler:
    """One compilation: caches images, transport classes and laid-out recipes."""

    def __init__(self, manifest: Manifest, chips: ChipDatabase,
                 selected: frozenset[str] | None, *, rehearsal: bool = False) -> None:
        self.manifest = manifest
        self.chips = chips
        #: The devices compiled (``None``: all of them).
        self.selected = selected
        #: A simulated run draws serials and CSV rows from rehearsal state files.
        self.rehearsal = rehearsal
        self.images: dict[str, LoadedImage] = {}
        self._classes: dict[str, TransportClass] = {}
        self._layouts: dict[tuple[object, ...], Layout] = {}
        self._verify_maps: dict[tuple[object, ...], tuple[MemoryMap, tuple[ImageUse, ...]]] = {}
        self._recipes: dict[tuple[str, str, _Link], _Recipe] = {}
        self._notes: dict[str, list[str]] = {}   # warning → devices it concerns
        self._sim_links: set[str] = set()
        self._alike: dict[tuple[object, ...], _Alike] = {}

    # ------------------------------------------------------------------ per device

    def device(self, device: Device) -> DevicePlan:
        manifest = self.manifest
        at = _where(device.location)
        try:
            chip = self.chips.part(device.chip)
        except KeyError as error:
            raise PlanError(f"{at}device {device.name}: unknown chip {error.args[0]}",
                            hint="`flashrunner chips` lists the supported parts") from error
        link = manifest.links.get(device.link.link)
        if link is None:
            raise PlanError(f"{at}device {device.name} uses link {device.link.link!r}, "
                            f"which is not defined",
                            hint=f"use one of {', '.join(manifest.links) or 'none'}")
        recipe = manifest.recipes.get(device.recipe)
        if recipe is None:
            raise PlanError(f"{at}device {device.name} uses recipe {device.recipe!r}, "
                            f"which is not defined",
                            hint=f"use one of {', '.join(manifest.recipes) or 'none'}")
        cls = self._class(link.kind)
        if self.rehearsal and not simulated_endpoints(cls):
            raise PlanError(f"{_where(link.location) or at}link {link.name} (used by device "
                            f"{device.name}) is of kind {link.kind}, which cannot be "
                            f"simulated: a rehearsal would reach real hardware",
                            hint="run it without --simulate / simulate: true, or rehearse "
                                 "with a link kind that supports simulation")
        if link.kind == "sim":
            self._sim_links.add(link.name)
        # A line's devices alike (same link settings, station, chip, recipe, policy and
        # wiring) share everything but their name: computed once per combination.
        key = None if device.link.options else \
            (link.name, device.station, chip.part, recipe.name, device.recovery, device.wiring)
        alike = self._alike.get(key) if key is not None else None
        if alike is None:
            alike = self._alike_devices(device, link, cls, chip, recipe)
            if key is not None:
                self._alike[key] = alike
        for message in alike.notes:
            self._note(message, device.name)
        after = device.after
        if self.selected is not None and any(name not in self.selected for name in after):
            after = tuple(name for name in device.after if name in self.selected)
            for name in device.after:
                if name not in self.selected:
                    self._note(f"comes after {name}, which is not selected: it starts "
                               f"without waiting", device.name)
        return DevicePlan(device=device.name, chip=chip, link=link.name, kind=link.kind,
                          resource=alike.resource, options=alike.options,
                          tasks=DeviceTasks(device.name, device.location, alike.group),
                          after=after, memory=alike.layout.memory, images=alike.layout.uses,
                          location=device.location, wiring=alike.wiring)

    def _alike_devices(self, device: Device, link: LinkSpec, cls: TransportClass, chip: Chip,
                       recipe: Recipe) -> _Alike:
        options = frozen_map({**link.options, **device.link.options}) \
            if device.link.options else link.options
        speed = cls.speed_model(options, chip)
        offers = _Link(kind=link.kind, part=chip.part,
                       offered=device_capabilities(cls, options, chip),
                       every=frozenset(cls.capabilities))
        prepared = self._prepare(recipe, chip, offers, device)
        layout = self._layout(recipe, chip, device)
        group = TaskGroup.of(tuple(
            TaskTemplate(index=index, kind=item.kind, action=item.action, bytes=item.bytes,
                         estimate_s=item.estimate(speed),
                         recovery=self._recovery(device, item.step),
                         location=item.step.location if item.step else None)
            for index, item in enumerate(prepared.items)))
        resource = cls.resource_key(link.name, options)
        if device.station is not None:   # a probe is exclusive on the station holding it
            resource = f"{device.station}/{resource}"
        return _Alike(options=options, resource=resource, group=group, layout=layout,
                      notes=prepared.notes, wiring=resolve_wiring(device.wiring, options))

    def _class(self, kind: str) -> TransportClass:
        if kind not in self._classes:
            self._classes[kind] = load_transport(kind)
        return self._classes[kind]

    def _recovery(self, device: Device, step: Step | None) -> RecoveryPolicy | None:
        for name in (step.recovery if step else None, device.recovery):
            if name and name not in self.manifest.recovery:
                raise PlanError(f"device {device.name}: recovery policy {name!r} is not "
                                f"defined", hint=f"use one of "
                                f"{', '.join(self.manifest.recovery) or 'none'}")
        policy = self.manifest.recovery_for(device, step)
        if policy is None or not any("|" in action for action in policy.actions):
            return policy
        # ``a|b``: the first action this device is wired for (validation made sure one is).
        chosen = tuple(next((choice for choice in action.split("|")
                             if device.wiring.offers(choice)), action.split("|")[-1])
                       for action in policy.actions)
        return replace(policy, actions=chosen)

    def _note(self, message: str, device: str) -> None:
        self._notes.setdefault(message, []).append(device)

    def warnings(self, *, simulated: bool) -> tuple[str, ...]:
        out = [f"{_names(devices)}: {message}" for message, devices in self._notes.items()]
        if not simulated:
            out.extend(f"link {name} is of kind sim, which only exists in simulation; "
                       f"run with --simulate" for name in sorted(self._sim_links))
        return tuple(out)

    # ------------------------------------------------------------------ images

    def _image(self, name: str, device: Device) -> LoadedImage:
        if name not in self.images:
            spec = self.manifest.images.get(name)
            if spec is None:
                raise PlanError(f"device {device.name} writes image {name!r}, which is not "
                                f"defined", hint=f"use one of "
                                f"{', '.join(self.manifest.images) or 'none'}")
            self.images[name] = load_image(spec)
        return self.images[name]

    def _layout(self, recipe: Recipe, chip: Chip, device: Device) -> Layout:
        writes = tuple(step.images for step in recipe.steps if isinstance(step, WriteStep))
        fields = tuple((step.address, step.size, step.preserve) for step in recipe.steps
                       if isinstance(step, UnitDataStep))
        key = (writes, fields, chip.part)
        if key not in self._layouts:
            loaded = tuple(tuple(self._image(name, device) for name in names)
                           for names in writes)
            self._layouts[key] = layout_images(loaded, chip, device=device.name,
                                               fields=fields)
        return self._layouts[key]

    def _verify_images(self, names: tuple[str, ...], chip: Chip,
                       device: Device) -> tuple[MemoryMap, tuple[ImageUse, ...]]:
        key = (names, chip.part)
        if key not in self._verify_maps:
            loaded = tuple(self._image(name, device) for name in names)
            self._verify_maps[key] = verify_layout(loaded, chip, device=device.name)
        return self._verify_maps[key]

    # ------------------------------------------------------------------ steps

    def _prepare(self, recipe: Recipe, chip: Chip, link: _Link, device: Device) -> _Recipe:
        key = (recipe.name, chip.part, link)
        if key not in self._recipes:
            self._recipes[key] = self._prepare_recipe(recipe, chip, link, device)
        return self._recipes[key]

    def _prepare_recipe(self, recipe: Recipe, chip: Chip, link: _Link,
                        device: Device) -> _Recipe:
        layout = self._layout(recipe, chip, device)
        items = [_Prepared(kind=TaskKind.CONNECT, step=None, wire="connect",
                           action=ConnectAction(expected_dev_id=chip.dev_id))]
        notes: list[str] = []
        writes_done = 0
        units_done = 0
        keep: tuple[PreserveRange, ...] = ()
        kept_verified = 0                 # kept bytes a verify compares besides the images
        unit_carrier: int | None = None   # the first unit-data task after a preserving erase
        # Erase units that skip-unchanged writes own: they erase (only) what differs.
        skipping = _skip_units(recipe, layout, device)
        for step in recipe.steps:
            where = f"{_where(step.location)}device {device.name}, recipe {recipe.name}: " \
                    f"{step.kind}"
            item: _Prepared | None
            if isinstance(step, EraseStep):
                item = _erase(step, layout, chip, link, where)
                spans = tuple(span for span in layout.preserve
                              if span.block.index not in skipping)
                if step.scope is EraseScope.USED:
                    notes.extend(sector_warnings(layout))
                    if item is None:
                        notes.append(f"recipe {recipe.name}: erase has nothing to erase "
                                     f"(no image is written)")
                    elif skipping:
                        item = _leave_to_skipping(item, chip, skipping)
                    if item is not None and spans:
                        item, keep = _preserving(item, spans, link, where), spans
                        kept_verified = sum(span.length for span in keep)
                elif step.scope is EraseScope.MASS and layout.preserve:
                    notes.append(f"recipe {recipe.name}: a mass erase keeps nothing; "
                                 f"`preserve: true` has no effect")
                if step.scope is EraseScope.MASS and skipping:
                    notes.append(f"recipe {recipe.name}: a mass erase before a skip-unchanged "
                                 f"write leaves nothing unchanged to skip")
            elif isinstance(step, WriteStep) and step.skip_unchanged:
                item = _skipping_write(step, layout, writes_done, chip, link, where)
                if item.action.keep:   # type: ignore[union-attr]
                    kept_verified += item.bytes - layout.steps[writes_done].size
                writes_done += 1
            elif isinstance(step, WriteStep):
                _need(link, where, step.kind, Capability.WRITE)
                memory = layout.steps[writes_done]
                kept = sum(span.length for span in keep)
                item = _Prepared(
                    kind=TaskKind.WRITE, step=step, bytes=memory.size + kept, wire="write",
                    chip_s=chip.timing.program_seconds(memory.size + kept,
                                                       chip.flash.write_unit),
                    action=WriteAction(memory=memory, images=layout.step_uses[writes_done],
                                       keep=keep))
                writes_done += 1
                keep = ()
            elif isinstance(step, UnitDataStep):
                _need(link, where, step.kind, Capability.WRITE)
                if step.source is None:
                    raise PlanError(f"{where}: the step has no value source")
                start, end = layout.fields[units_done]
                item = _Prepared(
                    kind=TaskKind.UNIT_DATA, step=step, bytes=end - start, wire="write",
                    chip_s=chip.timing.program_seconds(end - start, chip.flash.write_unit),
                    action=UnitDataAction(
                        address=step.address, size=step.size,
                        source=rehearsal_source(step.source) if self.rehearsal
                        else step.source))
                units_done += 1
                if keep and unit_carrier is None:
                    unit_carrier = len(items)
            elif isinstance(step, VerifyStep) and step.images:
                memory, uses = self._verify_images(step.images, chip, device)
                item = _verify(step, memory, link, where, images=uses)
            elif isinstance(step, VerifyStep):
                item = _verify(step, layout.prefix(writes_done), link, where)
                if kept_verified and item.bytes:
                    # The run compares the whole of each preserved sector.
                    item = replace(item, bytes=item.bytes + kept_verified)
                if not item.bytes and not units_done:
                    notes.append(f"recipe {recipe.name}: verify comes before any write and "
                                 f"has nothing to compare")
            elif isinstance(step, OptionBytesStep):
                item = _option_bytes(step, chip, link, where)
            elif isinstance(step, ResetStep):
                item = _reset(step, link, where)
            elif isinstance(step, ReadStep):
                item = _read(step, chip, link, where)
            else:
                raise PlanError(f"{where}: unknown step kind")
            if item is not None:
                items.append(item)
        if keep and unit_carrier is not None:
            # No image is written after the erase: the first unit-data step puts the kept
            # bytes back (they never share a write unit with its field).
            carrier = items[unit_carrier]
            assert isinstance(carrier.action, UnitDataAction)
            kept = sum(span.length for span in keep)
            items[unit_carrier] = replace(carrier, bytes=carrier.bytes + kept,
                                          action=replace(carrier.action, keep=keep))
        elif keep:
            raise PlanError(f"device {device.name}, recipe {recipe.name}: the erase keeps the "
                            f"bytes around preserved data, but no write step follows to put "
                            f"them back", hint="write the images after the erase")
        return _Recipe(items=tuple(items), notes=tuple(dict.fromkeys(notes)))


def _preserving(item: _Prepared, spans: tuple[PreserveRange, ...], link: _Link,
                where: str) -> _Prepared:
    """The erase task, reading first what ``preserve: true`` keeps."""
    _need(link, where, "erase", Capability.READ)
    assert isinstance(item.action, EraseAction)
    kept = sum(span.length for span in spans)
    return replace(item, bytes=kept, wire="read", action=replace(item.action, preserve=spans))


def _skip_units(recipe: Recipe, layout: Layout, device: Device) -> frozenset[int]:
    """Indexes of the erase units that skip-unchanged writes own.

    A skip-unchanged write decides per erase unit and rewrites a differing unit
    whole, so it must be the only step that puts bytes into its units: another
    write step or a unit-data field there would be lost or wrongly compared.
    """
    flash = layout.chip.flash
    writes = [step for step in recipe.steps if isinstance(step, WriteStep)]
    owners: dict[int, str] = {}
    skipping: set[int] = set()
    for number, (step, memory) in enumerate(zip(writes, layout.steps, strict=True), 1):
        for block in memory.blocks(flash):
            owners.setdefault(block.index, f"write step {number}")
            if step.skip_unchanged:
                skipping.add(block.index)
    for start, end in layout.fields:
        for block in flash.blocks_covering(start, end - start):
            owners.setdefault(block.index, f"the unit-data field at 0x{start:08X}")
    for number, (step, memory) in enumerate(zip(writes, layout.steps, strict=True), 1):
        blocks = memory.blocks(flash)
        for other_number, other in enumerate(layout.steps, 1):
            if other_number == number or not (step.skip_unchanged
                                              or writes[other_number - 1].skip_unchanged):
                continue
            shared = {b.index for b in blocks} & {b.index for b in other.blocks(flash)}
            if shared:
                block = flash.blocks[min(shared)]
                raise PlanError(
                    f"{_where(step.location)}device {device.name}, recipe {recipe.name}: "
                    f"write steps {min(number, other_number)} and {max(number, other_number)} "
                    f"both program the erase unit at 0x{block.address:08X}, and one of them "
                    f"skips unchanged units", hint="write these images in one step, or drop "
                    "skip-unchanged: it rewrites a changed unit whole")
        if not step.skip_unchanged:
            continue
        for start, end in layout.fields:
            covered = {b.index for b in flash.blocks_covering(start, end - start)}
            if covered & {b.index for b in blocks}:
                raise PlanError(
                    f"{_where(step.location)}device {device.name}, recipe {recipe.name}: the "
                    f"unit-data field at 0x{start:08X} shares an erase unit with a "
                    f"skip-unchanged write", hint="move the field to its own page or sector")
    return frozenset(skipping)


def _leave_to_skipping(item: _Prepared, chip: Chip, skipping: frozenset[int]) -> _Prepared | None:
    """``erase: {scope: used}`` without the units a skip-unchanged write erases itself."""
    assert isinstance(item.action, EraseAction)
    blocks = tuple(block for block in item.action.blocks if block.index not in skipping)
    if not blocks:
        return None
    return replace(item, erase_units=len(blocks),
                   chip_s=sum(chip.timing.erase_seconds(block.size) for block in blocks),
                   action=replace(item.action, blocks=blocks))


def _skipping_write(step: WriteStep, layout: Layout, index: int, chip: Chip, link: _Link,
                    where: str) -> _Prepared:
    """A write that compares its erase units first and rewrites only those that differ.

    It reads the preserved bytes of its units itself (they are part of what a
    unit must hold) and is estimated as if every unit differs.
    """
    _need(link, where, step.kind, Capability.WRITE)
    _need(link, where, step.kind, Capability.ERASE_PAGES)
    _need(link, where, step.kind, Capability.CHECKSUM, Capability.READ)
    memory = layout.steps[index]
    units = memory.blocks(chip.flash)
    owned = {block.index for block in units}
    keep = tuple(span for span in layout.preserve if span.block.index in owned)
    if keep:
        _need(link, where, step.kind, Capability.READ)
    kept = sum(span.length for span in keep)
    return _Prepared(
        kind=TaskKind.WRITE, step=step, bytes=memory.size + kept, wire="write",
        erase_units=len(units),
        chip_s=chip.timing.program_seconds(memory.size + kept, chip.flash.write_unit)
        + sum(chip.timing.erase_seconds(block.size) for block in units),
        action=WriteAction(memory=memory, images=layout.step_uses[index], keep=keep,
                           skip_unchanged=True, units=units))


def _names(devices: Sequence[str]) -> str:
    if len(devices) <= 4:
        return ", ".join(devices)
    return f"{', '.join(devices[:3])} and {len(devices) - 3} more devices"


def _need(link: _Link, where: str, step: str, *any_of: Capability) -> None:
    if not link.offered.intersection(any_of):
        needed = " or ".join(c.value for c in any_of)
        who = missing(link.kind, link.part, link.every, any_of)
        raise PlanError(f"{where}: {who} cannot do this (it needs {needed})",
                        hint=instead(step, link.offered))


def _erase(step: EraseStep, layout: Layout, chip: Chip, link: _Link,
           where: str) -> _Prepared | None:
    if step.scope is EraseScope.NONE:
        return None
    if step.scope is EraseScope.MASS:
        _need(link, where, step.kind, Capability.ERASE_MASS)
        return _Prepared(kind=TaskKind.ERASE, step=step, erase_units=1,
                         chip_s=chip.timing.mass_erase_ms / 1000,
                         action=EraseAction(scope=EraseScope.MASS))
    _need(link, where, step.kind, Capability.ERASE_PAGES)
    if not layout.blocks:
        return None
    return _Prepared(kind=TaskKind.ERASE, step=step, erase_units=len(layout.blocks),
                     chip_s=layout.erase_seconds,
                     action=EraseAction(scope=EraseScope.USED, blocks=layout.blocks))


def _verify(step: VerifyStep, memory: MemoryMap, link: _Link, where: str,
            images: tuple[ImageUse, ...] = ()) -> _Prepared:
    if step.method is VerifyMethod.CHECKSUM:
        _need(link, where, step.kind, Capability.CHECKSUM)
    elif step.method is VerifyMethod.READBACK:
        _need(link, where, step.kind, Capability.READ)
    else:
        _need(link, where, step.kind, Capability.CHECKSUM, Capability.READ)
    via = verify_via(step.method, link.offered)
    return _Prepared(kind=TaskKind.VERIFY, step=step, bytes=memory.size,
                     wire="checksum" if via == "checksum" else "read",
                     action=VerifyAction(method=step.method, memory=memory, images=images))


def _option_bytes(step: OptionBytesStep, chip: Chip, link: _Link, where: str) -> _Prepared:
    if step.rdp == 0 and not step.fields:
        _need(link, where, step.kind, Capability.OPTION_BYTES, Capability.READ_UNPROTECT)
    else:
        _need(link, where, step.kind, Capability.OPTION_BYTES)
    if step.rdp is not None and step.rdp not in (0, 1, 2):
        raise PlanError(f"{where}: rdp must be 0, 1 or 2, not {step.rdp}")
    if step.rdp == 2 and not chip.option_bytes.has_level2:
        raise PlanError(f"{where}: {chip.part} has no readout protection level 2",
                        hint="use rdp: 1")
    confirmed = step.confirm == "irreversible"
    if step.irreversible and not confirmed:
        raise PlanError(f"{where}: rdp 2 locks the chip for ever and must be confirmed",
                        hint="add `confirm: irreversible` to the step if this is meant")
    # Leaving RDP level 1 mass-erases the flash (RM0008 §2.6, RM0090 §3.7.3).
    erase_s = chip.timing.mass_erase_ms / 1000 if step.rdp == 0 else 0.0
    change = OptionBytesChange(rdp_level=step.rdp, fields=dict(step.fields),
                               confirmed_irreversible=confirmed)
    return _Prepared(kind=TaskKind.OPTION_BYTES, step=step, bytes=chip.option_bytes.size,
                     chip_s=OPTION_BYTES_S + erase_s, action=OptionBytesAction(change=change))


#: File suffixes a read step saves as Intel HEX; anything else is a raw binary.
HEX_SUFFIXES = frozenset({".hex", ".ihex", ".ihx"})


def _read(step: ReadStep, chip: Chip, link: _Link, where: str) -> _Prepared:
    """Save a flash region to a file: the whole flash unless the step narrows it."""
    _need(link, where, step.kind, Capability.READ)
    flash = chip.flash
    address = flash.base if step.address is None else step.address
    size = flash.end - address if step.size is None else step.size
    if not flash.base <= address < flash.end or size <= 0 or address + size > flash.end:
        raise PlanError(f"{where}: 0x{address:08X}+{size} is outside {chip.part}'s flash "
                        f"(0x{flash.base:08X}..0x{flash.end:08X})",
                        hint="give an address and size inside the flash, or neither for all "
                             "of it")
    kind = step.format
    if kind == "auto":
        kind = "hex" if step.path.suffix.lower() in HEX_SUFFIXES else "bin"
    return _Prepared(kind=TaskKind.READ, step=step, bytes=size, wire="read",
                     action=ReadAction(path=step.path, address=address, size=size, format=kind,
                                       overwrite=step.overwrite))


def _reset(step: ResetStep, link: _Link, where: str) -> _Prepared:
    if step.mode is None:
        mode = natural_reset(link.offered)
        if mode is None:
            raise PlanError(f"{where}: a {link.kind} link has no way to reset the chip",
                            hint="drop the reset step")
    else:
        try:
            mode = ResetMode(step.mode)
        except ValueError as error:
            raise PlanError(f"{where}: unknown reset mode {step.mode!r}",
                            hint=f"use one of {', '.join(m.value for m in ResetMode)}")\
                from error
        _need(link, where, step.kind, *RESET_NEEDS[mode])
    return _Prepared(kind=TaskKind.RESET, step=step, chip_s=RESET_S,
                     action=ResetAction(mode=mode))

