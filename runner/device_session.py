"""One device's transport session and the tasks carried out over it.

:class:`DeviceSession` opens the link, connects and identifies the chip
(refusing another chip than the manifest's before anything is written) and
performs each task once (:meth:`DeviceSession.perform`); retries are
:func:`runner.recovery.run_step`'s, the order of tasks
:func:`runner.executor.run_device`'s. Recovery actions act on it: reconnect,
reset, and re-erasing what a partial write left behind.

A verify whose session turned out to offer other capabilities than the plan
counted on (a ROM older or newer than the chip database says) reports it: its
``step.finished`` carries ``planned_method`` next to the ``method`` actually
used, and a ``plan.warning`` names the device and step.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import events as ev
from runner.capabilities import planned_for, verify_via
from runner.errors import ChipMismatch, Interrupted, RunnerError, error_categories
from runner.linklocks import LinkLocks
from runner.memmap import MemoryMap, Segment
from runner.model import EraseScope, VerifyMethod
from runner.plan import (
    ConnectAction,
    DevicePlan,
    EraseAction,
    OptionBytesAction,
    ReadAction,
    ResetAction,
    Task,
    UnitDataAction,
    VerifyAction,
    WriteAction,
)
from runner.readout import expand_read_path, save_region
from runner.tracelog import Tracing
from runner.unchanged import compare_units, rewrite_units
from runner.unitrun import UnitState
from runner.verify import unit_pieces, verify_memory
from runner.wiring import DeviceHardware, HardwareControl
from transports.base import MASS_ERASE, ChipIdentity, LinkRequest, Progress, Transport
from transports.chips import FlashBlock
from transports.endpoints import HARDWARE, Endpoints
from transports.errors import HardwareControlError
from transports.registry import load_transport
from transports.trace import NO_TRACE

#: Links that reach the chip through its ROM bootloader (BOOT0 high selects it).
_ROM_LINKS = frozenset({"dfu", "uart", "i2c", "can"})

__all__ = ["DeviceSession", "RunContext", "StepProgress", "error_fields", "hex_ranges"]


@dataclass(slots=True, kw_only=True)
class RunContext:
    """What every device of a run shares."""

    events: ev.EventSink
    cancel: threading.Event
    #: Where every session opens its far end: the hardware, or a rehearsal's simulators.
    endpoints: Endpoints = HARDWARE
    progress_interval_s: float = 0.25
    run_id: str = ""
    #: Where bytes read before a preserving erase are saved (beside the audit log).
    kept_dir: Path | None = None
    #: Per-link OS locks taken while a device runs (``None``: no locking).
    locks: LinkLocks | None = None
    #: Hub ports, sysfs and GPIO for the recovery actions (``None``: none on this run).
    hardware: HardwareControl | None = None
    #: Where sessions report their protocol commands (``-v``); ``None``: nowhere.
    tracing: Tracing | None = None


def hex_ranges(ranges: tuple[tuple[int, int], ...]) -> list[list[str]]:
    """Address ranges as ``[["0x08000000", "0x08001000"], …]`` (end exclusive)."""
    return [[f"0x{start:08X}", f"0x{end:08X}"] for start, end in ranges]


def error_fields(error: BaseException) -> dict[str, Any]:
    """The audit fields of any error; the traceback only for errors that are bugs."""
    if isinstance(error, RunnerError):
        data = dict(error.fields())
        data["error_categories"] = sorted(error_categories(error))
        if error.hint:
            data["hint"] = error.hint
        return data
    return {"error_type": type(error).__name__, "error_category": "internal",
            "error_categories": ["internal"], "error": f"internal error: {error}",
            "traceback": "".join(traceback.format_exception(error))}


def _unit_ranges(units: tuple[FlashBlock, ...]) -> list[list[str]]:
    return hex_ranges(tuple((unit.address, unit.end) for unit in units))


class StepProgress:
    """A step's progress callback: throttled ``step.progress`` events, cancel-aware.

    Raises :class:`Interrupted` at the next report once the run is cancelled,
    which is how a long write stops between chunks.
    """

    def __init__(self, context: RunContext, fields: dict[str, Any], total: int) -> None:
        self.context = context
        self.fields = fields
        self.total = total
        self.done = 0
        self._last_time = time.monotonic()
        self._last_done = 0

    def shifted(self, base: int) -> Progress:
        """A transport :data:`Progress` for a part starting ``base`` units into the step."""
        return lambda done, _total: self(base + done)

    def __call__(self, done: int) -> None:
        if self.context.cancel.is_set():
            raise Interrupted("the run was interrupted")
        self.done = done
        now = time.monotonic()
        step = max(1, self.total // 10)
        finished = self.total > 0 and done >= self.total
        if (now - self._last_time >= self.context.progress_interval_s
                or done - self._last_done >= step or finished) and done != self._last_done:
            self._last_time, self._last_done = now, done
            percent = round(100 * done / self.total, 1) if self.total else 100.0
            self.context.events.emit(ev.STEP_PROGRESS, **self.fields, done=done,
                                     total=self.total, percent=percent)


class DeviceSession:
    """Runs one device's tasks over one transport session."""

    def __init__(self, plan: DevicePlan, context: RunContext) -> None:
        self.plan = plan
        self.context = context
        self.transport: Transport | None = None
        self.identity: ChipIdentity | None = None
        self.connected = False
        #: Segments earlier write tasks of this device programmed (for re-erase recovery).
        self.written: list[Segment] = []
        #: Erase units a skip-unchanged write compared equal and left untouched, with the
        #: method (``checksum``/``readback``); cleared by any task or recovery but a verify.
        self.proven: dict[tuple[int, int], str] = {}
        #: Why the session left a faster path (``link.fallback``), and whether the link's
        #: on-target checksum may still decide comparisons (not once it failed or was
        #: proven wrong; a verify planned by checksum then reads back).
        self.fallbacks: list[str] = []
        self.checksums_trusted = True
        #: Bytes kept across a preserving erase, and per-unit values written.
        self.units = UnitState(plan.chip.flash)
        self._hardware: DeviceHardware | None = None

    def hardware(self) -> DeviceHardware:
        """The device's power ports and BOOT0/NRST lines (opened on first use)."""
        if self._hardware is None:
            if self.plan.wiring is None or self.context.hardware is None:
                raise HardwareControlError(f"{self.plan.device} has no wiring for hardware "
                                           f"control", hint="add wiring: to the device")

            def report(what: str, fields: Mapping[str, Any]) -> None:
                self.emit(ev.HARDWARE_GPIO if what == "gpio" else ev.HARDWARE_POWER, dict(fields))

            self._hardware = DeviceHardware(self.context.hardware, self.plan.device,
                                            self.plan.wiring, report,
                                            rom_link=self.plan.kind in _ROM_LINKS)
        return self._hardware

    def release_hardware(self) -> None:
        """Hand the device's GPIO lines back (the end of its session, however it ended)."""
        hardware, self._hardware = self._hardware, None
        if hardware is not None:
            hardware.close()

    @property
    def fields(self) -> dict[str, Any]:
        return {"device": self.plan.device, "transport": self.plan.link, "kind": self.plan.kind}

    def emit(self, event: str, *parts: dict[str, Any], **fields: Any) -> None:
        """Emit with the device fields; later ``parts`` and ``fields`` win on a clash."""
        record = dict(self.fields)
        for part in parts:
            record.update(part)
        record.update(fields)
        self.context.events.emit(event, **record)

    # ------------------------------------------------------------------ the session

    def open(self) -> Transport:
        if self.transport is None:
            klass = load_transport(self.plan.kind)
            self.transport = klass.open(LinkRequest(
                device=self.plan.device, link=self.plan.link, kind=self.plan.kind,
                options=self.plan.options, chip=self.plan.chip,
                endpoints=self.context.endpoints,
                trace=self.context.tracing.trace_for(self.plan.device, self.plan.link,
                                                     self.plan.kind)
                if self.context.tracing is not None else NO_TRACE,
                fallback=self._fell_back))
        return self.transport

    def _fell_back(self, feature: str, instead: str, why: str) -> None:
        """The transport left a faster path: log it and warn; distrust what it decided."""
        self.fallbacks.append(why)
        if instead == "read-back":
            self.checksums_trusted = False
            for unit in [unit for unit, how in self.proven.items() if how == "checksum"]:
                del self.proven[unit]   # the final verify must not rest on it
        self.emit(ev.LINK_FALLBACK, feature=feature, instead=instead, reason=why,
                  message=f"{self.plan.device}: {feature} is not used, {instead} "
                          f"instead: {why}")

    def _checksum_disproved(self, piece: Segment) -> None:
        self._fell_back("the on-target checksum", "read-back",
                        f"its checksum of 0x{piece.address:08X}..0x{piece.end:08X} disagreed "
                        f"with the flash, which read back as the image")

    def connect(self, expected_dev_id: int | None = None) -> ChipIdentity:
        """Connect and identify; the chip must be the manifest's (and the same one as before)."""
        transport = self.open()
        transport.connect()
        self.connected = True
        identity = transport.identify()
        expected = self.plan.chip.dev_id if expected_dev_id is None else expected_dev_id
        if identity.dev_id != expected:
            raise ChipMismatch(
                f"{self.plan.device}: expected {self.plan.chip.part} (DEV_ID 0x{expected:03X}) "
                f"on link {self.plan.link} but found DEV_ID 0x{identity.dev_id:03X}; "
                f"nothing was written",
                hint="check which board sits in this fixture, or correct the device's chip in "
                     "the manifest", transport=self.plan.link, device=self.plan.device)
        if self.identity is not None and self.identity.uid and identity.uid \
                and identity.uid != self.identity.uid:
            raise ChipMismatch(
                f"{self.plan.device}: the chip changed during the session (UID "
                f"{self.identity.uid} before, {identity.uid} now)",
                hint="a board was swapped mid-run; run again on the new board",
                transport=self.plan.link, device=self.plan.device)
        first = self.identity is None
        self.identity = identity
        if first:
            self.emit(ev.DEVICE_IDENTIFIED, identity.log_fields(), chip=self.plan.chip.part,
                      expected_part=self.plan.chip.part, expected_dev_id=f"0x{expected:03X}")
        return identity

    def ensure_connected(self) -> Transport:
        if not self.connected:
            self.connect()
        assert self.transport is not None
        return self.transport

    def close(self) -> None:
        transport, self.transport, self.connected = self.transport, None, False
        if transport is not None:
            try:
                transport.close()
            except Exception as error:  # closing must never hide the run's outcome
                self.emit(ev.SESSION_CLOSE_FAILED, error_fields(error))

    # ------------------------------------------------------------------ tasks

    def perform(self, task: Task) -> dict[str, Any]:
        """Carry out ``task`` once; return extra fields for ``step.finished``."""
        action = task.action
        fields = {**self.fields, "step": task.id, "action": task.kind.value}
        if isinstance(action, ConnectAction):
            self.connect(action.expected_dev_id)
            return {}
        transport = self.ensure_connected()
        if not isinstance(action, VerifyAction):
            self.proven.clear()   # anything that may change flash voids earlier comparisons
        if isinstance(action, EraseAction):
            if action.scope is EraseScope.NONE:
                return {"scope": action.scope.value}
            blocks = MASS_ERASE if action.scope is EraseScope.MASS else action.blocks
            backup = self._kept_backup()
            kept = self.units.read_kept(transport, action.preserve, backup) \
                if action.preserve else {}
            tracker = StepProgress(self.context, fields, max(1, len(blocks)))
            transport.erase(blocks, lambda done, _total: tracker(done))
            ranges = tuple((b.address, b.address + b.size) for b in action.blocks)
            return {"scope": action.scope.value, "blocks": len(action.blocks),
                    "ranges": hex_ranges(ranges), **kept}
        if isinstance(action, WriteAction) and action.skip_unchanged:
            return self._write_changed(transport, action, fields)
        if isinstance(action, WriteAction):
            memory = self.units.write_map(action)
            self._program(transport, memory, fields)
            self.units.wrote(action)
            extra = {"kept_bytes": memory.size - action.memory.size} if action.keep else {}
            return {"ranges": hex_ranges(memory.ranges), **extra, "images": [
                {"name": image.name, "sha256": image.sha256,
                 "ranges": hex_ranges(image.ranges)} for image in action.images]}
        if isinstance(action, UnitDataAction):
            value, segment = self.units.unit_value(
                task.id, action, device=self.plan.device, run_id=self.context.run_id,
                uid=self.identity.uid if self.identity else "")
            memory = self.units.write_map(action, MemoryMap((segment,)))
            self._program(transport, memory, fields)
            self.units.value_written(segment)
            self.units.wrote(action)
            extra = {"kept_bytes": memory.size - len(segment)} if action.keep else {}
            return {"address": f"0x{action.address:08X}", "size": action.size,
                    "unit_value": value.value, "unit_source": value.source,
                    "unit_bytes": value.data.hex(), **extra}
        if isinstance(action, VerifyAction):
            if not action.images:   # a verify of named images compares those alone
                action = self.units.verify_action(action)
            if action.method is VerifyMethod.CHECKSUM and not self.checksums_trusted:
                # Planned by checksum, but it failed this session (already warned): read back.
                action = dataclasses.replace(action, method=VerifyMethod.AUTO)
            tracker = StepProgress(self.context, fields, action.memory.size)
            flash = self.plan.chip.flash
            method = verify_memory(transport, action, erased=flash.erased,
                                   link=self.plan.link, device=self.plan.device,
                                   advance=tracker, geometry=flash, proven=self.proven,
                                   checksums=self.checksums_trusted,
                                   disproved=self._checksum_disproved)
            compared = {"units_proven_by_write": sum(
                1 for piece in unit_pieces(action.memory, flash)
                if any(a <= piece.address and piece.end <= b for a, b in self.proven))} \
                if self.proven else {}
            images = {"images": [{"name": image.name, "sha256": image.sha256}
                                 for image in action.images]} if action.images else {}
            return {"method": method, **self._verify_against_plan(task, action, method),
                    "ranges": hex_ranges(action.memory.ranges),
                    "units": len(unit_pieces(action.memory, flash)), **compared, **images,
                    "sha256": action.memory.sha256()}
        if isinstance(action, OptionBytesAction):
            transport.write_option_bytes(action.change)
            return {"rdp_level": action.change.rdp_level, "fields": dict(action.change.fields)}
        if isinstance(action, ResetAction):
            transport.reset(action.mode)
            return {"mode": action.mode.value}
        if isinstance(action, ReadAction):
            return self._read(transport, action, fields)
        raise TypeError(f"unknown task action {type(action).__name__}")

    def _read(self, transport: Transport, action: ReadAction,
              fields: dict[str, Any]) -> dict[str, Any]:
        """Read the region and save it; the file's digest goes into the audit log."""
        import hashlib

        path = expand_read_path(action.path, device=self.plan.device)
        if path.exists() and not action.overwrite:  # refuse before spending the link's time
            save_region(path, action.address, b"", format=action.format)
        tracker = StepProgress(self.context, fields, action.size)
        data = transport.read(action.address, action.size, lambda done, _total: tracker(done))
        save_region(path, action.address, data, format=action.format,
                    overwrite=action.overwrite)
        return {"file": str(path), "format": action.format,
                "ranges": hex_ranges(((action.address, action.address + len(data)),)),
                "sha256": hashlib.sha256(data).hexdigest()}

    def _kept_backup(self) -> Path | None:
        """Where kept bytes are saved before an erase (beside the audit log), if anywhere."""
        kept_dir = self.context.kept_dir
        return kept_dir / f"{self.plan.device}.hex" if kept_dir is not None else None

    def _write_changed(self, transport: Transport, action: WriteAction,
                       fields: dict[str, Any]) -> dict[str, Any]:
        """A skip-unchanged write: compare each erase unit, rewrite whole those that differ.

        The preserved bytes of its units are read (and saved) first: they are part
        of what each unit must hold.
        """
        kept: dict[str, Any] = {}
        if action.keep:
            kept = self.units.read_kept(transport, action.keep, self._kept_backup())
        memory = self.units.write_map(action)
        comparison = compare_units(transport, memory, action.units,
                                   erased=self.plan.chip.flash.erased,
                                   checksums=self.checksums_trusted)
        tracker = StepProgress(self.context, fields, memory.size)
        written = rewrite_units(transport, memory, comparison, tracker)
        self.written.extend(memory)
        self.proven.update(((unit.address, unit.end), comparison.method)
                           for unit in comparison.same)
        self.units.wrote(action)
        extra = {"kept_bytes": memory.size - action.memory.size} if action.keep else {}
        return {"ranges": hex_ranges(memory.ranges), **extra, **kept,
                "skip_unchanged": True, "compare_method": comparison.method,
                "units": len(action.units), "units_skipped": len(comparison.same),
                "units_rewritten": len(comparison.differ),
                "skipped": _unit_ranges(comparison.same),
                "rewritten": _unit_ranges(comparison.differ), "bytes_written": written,
                "images": [{"name": image.name, "sha256": image.sha256,
                            "ranges": hex_ranges(image.ranges)} for image in action.images]}

    def _program(self, transport: Transport, memory: MemoryMap, fields: dict[str, Any]) -> None:
        """Write every segment of ``memory``, reporting progress; remember what was written."""
        tracker = StepProgress(self.context, fields, memory.size)
        done = 0
        for segment in memory:
            transport.write(segment.address, segment.data, tracker.shifted(done))
            done += len(segment)
        self.written.extend(memory)

    def _verify_against_plan(self, task: Task, action: VerifyAction,
                             method: str) -> dict[str, Any]:
        """``planned_method`` (and a warning) when the verify was not done as planned."""
        planned = verify_via(action.method, planned_for(self.plan))
        if method.partition("+")[0] == planned:
            return {}
        part = self.plan.chip.part
        offered = "no" if planned == "checksum" else "an"
        why = f"its on-target checksum fell back: {self.fallbacks[-1]}" if self.fallbacks \
            and planned == "checksum" else \
            f"its {self.plan.kind} session offered {offered} on-target checksum, contrary " \
            f"to the chip database's entry for {part}"
        self.emit(ev.PLAN_WARNING, step=task.id, action=task.kind.value, planned=planned,
                  method=method, message=f"{task.id} was planned as {planned} but done as "
                                         f"{method}: {why}")
        return {"planned_method": planned}
