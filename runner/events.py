"""The event catalogue: every event a run emits, its fields, and the sinks that receive them.

The executor reports what happens as ``emit(event, **fields)`` calls on an
:class:`EventSink`. The audit log (:mod:`runner.logging`) checks each against
its definition here (:data:`EVENT_TYPES`), turns it into one JSON record with
``ts``, ``seq``, ``run_id`` and ``prev`` (the hash chain) and hands that same
record to every sink: the log file, ``--json`` on stdout and the console
(:mod:`runner.console`). Field values are JSON-ready: addresses are ``0x``
strings, durations integer milliseconds, sizes bytes.

Each event is defined once, as an :class:`EventType`: the fields it must carry
and the ones it may carry, each with its JSON type. ``schemas/audit-log.schema.json``
is generated from these definitions (``python3 -m runner.audit.schema``), and a
test keeps the two equal. Emitting an unknown event, leaving out a required
field or adding an undeclared one is an :class:`EventContractError` when the
contract is enforced (always in the test suite, or with
``FLASHRUNNER_STRICT_EVENTS=1``); otherwise the record is written as it is, with a
``contract_error`` field that says what is wrong, so a run never loses a record.

Fields common to device and step events: ``device`` (manifest name),
``transport`` (the link's manifest name), ``kind`` (the link kind). Step events
add ``step`` (the task id, ``<device>/<index>-<kind>``) and ``action`` (the
task kind: ``connect``, ``erase``, ``write``, ``verify``, ``option-bytes``,
``reset``, …). Error fields, wherever an error is reported: ``error_type``,
``error_category``, ``error_categories``, ``error`` (the message with its hint)
and ``hint``, with ``traceback`` for an internal error.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "COLLECT_FINISHED",
    "COLLECT_STARTED",
    "DEVICE_FINISHED",
    "DEVICE_IDENTIFIED",
    "DEVICE_SKIPPED",
    "DEVICE_STARTED",
    "ENVELOPE",
    "EVENTS",
    "EVENT_TYPES",
    "HARDWARE_GPIO",
    "HARDWARE_POWER",
    "LINK_FALLBACK",
    "LINK_WAITING",
    "PLAN_WARNING",
    "RUN_FINISHED",
    "RUN_INTERRUPTED",
    "RUN_STARTED",
    "SESSION_CLOSE_FAILED",
    "SLOT_QUARANTINED",
    "STATION_CONNECTED",
    "STATION_CONNECTION_LOST",
    "STATION_FAILED",
    "STATION_GATE_OPENED",
    "STATION_LOST",
    "STATION_RECONNECTED",
    "STATION_STAGED",
    "STATION_STARTED",
    "STEP_FINISHED",
    "STEP_PROGRESS",
    "STEP_RECOVERY",
    "STEP_RETRIED",
    "STEP_STARTED",
    "CapturingSink",
    "EventContractError",
    "EventSink",
    "EventType",
    "FanOutSink",
    "NullSink",
    "contract_problems",
    "strict_events",
]

RUN_STARTED = "run.started"
PLAN_WARNING = "plan.warning"
DEVICE_STARTED = "device.started"
DEVICE_IDENTIFIED = "device.identified"
DEVICE_FINISHED = "device.finished"
DEVICE_SKIPPED = "device.skipped"
LINK_WAITING = "link.waiting"
LINK_FALLBACK = "link.fallback"
STEP_STARTED = "step.started"
STEP_PROGRESS = "step.progress"
STEP_RETRIED = "step.retried"
STEP_RECOVERY = "step.recovery"
STEP_FINISHED = "step.finished"
SESSION_CLOSE_FAILED = "session.close-failed"
RUN_INTERRUPTED = "run.interrupted"
RUN_FINISHED = "run.finished"
HARDWARE_POWER = "hardware.power"
HARDWARE_GPIO = "hardware.gpio"
SLOT_QUARANTINED = "slot.quarantined"
STATION_CONNECTED = "station.connected"
STATION_STAGED = "station.staged"
STATION_STARTED = "station.started"
STATION_GATE_OPENED = "station.gate-opened"
STATION_FAILED = "station.failed"
STATION_CONNECTION_LOST = "station.connection-lost"
STATION_RECONNECTED = "station.reconnected"
STATION_LOST = "station.lost"
COLLECT_STARTED = "collect.started"
COLLECT_FINISHED = "collect.finished"

# ------------------------------------------------------------------------------ field types

_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer", "minimum": 0}
_NUM: dict[str, Any] = {"type": "number", "minimum": 0}
_BOOL: dict[str, Any] = {"type": "boolean"}
_SHA256: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_HEX_ADDRESS: dict[str, Any] = {"type": "string", "pattern": "^0x[0-9A-Fa-f]+$"}
_RANGES: dict[str, Any] = {"type": "array", "items": {
    "type": "array", "prefixItems": [_HEX_ADDRESS, _HEX_ADDRESS], "items": False,
    "minItems": 2}}
_STR_LIST: dict[str, Any] = {"type": "array", "items": _STR}
_OUTCOME_RUN: dict[str, Any] = {"enum": ["ok", "failed", "interrupted"]}
_OUTCOME_ANY: dict[str, Any] = {
    "enum": ["ok", "failed", "interrupted", "skipped", "upstream-failed", "unknown"]}
#: A device's end: as a run's, or ``unknown`` when its station was lost mid-run.
_OUTCOME_DEVICE: dict[str, Any] = {"enum": ["ok", "failed", "interrupted", "unknown"]}
_NULLABLE_STR: dict[str, Any] = {"type": ["string", "null"]}
_OBJECT: dict[str, Any] = {"type": "object"}
_ANY: dict[str, Any] = {}


def _enum(*values: str) -> dict[str, Any]:
    return {"enum": list(values)}


#: Fields every record has, whatever its event (added by the audit log, not the emitter).
ENVELOPE: dict[str, dict[str, Any]] = {
    "ts": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
           "description": "UTC time the record was written, ISO-8601 with milliseconds"},
    "seq": {"type": "integer", "minimum": 1,
            "description": "1, 2, 3, … in file order; one numbering per log"},
    "run_id": {"type": "string", "minLength": 1},
    "event": {"type": "string"},
    "prev": {**_SHA256, "description": "SHA-256 (hex) of the previous line's exact bytes "
                                       "(for the first record: of 'flashrunner-audit/2\\n' "
                                       "followed by the run id)"},
    "station": {"type": "string", "minLength": 1,
                "description": "the station whose record this is (absent: the host's own)"},
    "origin": {"type": "object", "additionalProperties": False,
               "required": ["station", "run_id", "seq", "ts"],
               "properties": {"station": _STR, "run_id": _STR, "seq": _INT, "ts": _STR,
                              "line_sha256": _SHA256},
               "description": "a record merged from a station's log: where it came from, "
                              "with the station's own seq and ts"},
    "contract_error": {"type": "string",
                       "description": "the record does not match its event's definition"},
}

#: The device fields (present on every device and step event).
_DEVICE = {"device": _STR, "transport": _STR, "kind": _STR}
_STEP = {**_DEVICE, "step": _STR, "action": _STR}
#: Error fields, wherever an error is reported (all optional).
_ERROR = {
    "error_type": _STR, "error_category": _STR, "error_categories": _STR_LIST, "error": _STR,
    "hint": _STR, "traceback": _STR, "command": _STR, "reply": _STR, "address": _STR,
    "expected": _STR, "actual": _STR,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class EventType:
    """One event's definition: when it is emitted, what it must and may carry.

    ``open`` events may carry further fields (a chip's identity details differ
    per link kind); every other field of a record must be declared here.
    """

    name: str
    doc: str
    required: Mapping[str, Mapping[str, Any]]
    optional: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    open: bool = False

    def problems(self, fields: Mapping[str, Any]) -> list[str]:
        """What is wrong with ``fields`` (the emitter's, envelope excluded) for this event."""
        found: list[str] = []
        missing = [name for name in self.required if name not in fields]
        if missing:
            found.append(f"{self.name} lacks required field(s) {', '.join(missing)}")
        if not self.open:
            unknown = [name for name in fields
                       if name not in self.required and name not in self.optional
                       and name not in ENVELOPE]
            if unknown:
                found.append(f"{self.name} has undeclared field(s) {', '.join(unknown)}: "
                             f"declare them in runner/events.py and regenerate the schema "
                             f"(python3 -m runner.audit.schema)")
        return found


_RUN_STARTED = EventType(
    name=RUN_STARTED, doc="The run begins: what runs, where, by whom.",
    required={"manifest": _STR, "manifest_path": _STR, "manifest_sha256": _SHA256,
              "tool_version": _STR, "host": _STR, "operator": _STR, "python": _STR,
              "simulate": _BOOL,
              "images": {"type": "object", "additionalProperties": _SHA256,
                         "description": "image name -> sha256"},
              "devices": _INT, "max_parallel": _INT, "fail_fast": _BOOL, "estimate_s": _NUM,
              "format": {"const": "flashrunner-audit/2",
                         "description": "the log format: records chained by prev"}},
    optional={"ledger": {
        "type": "object", "additionalProperties": False,
        "required": ["file", "seq", "entry"],
        "properties": {"file": _STR, "seq": _INT, "entry": _SHA256},
        "description": "the ledger this run is entered in: its file, and the number and "
                       "SHA-256 of the run's run.started entry there"},
              "sign_key": {**_NULLABLE_STR,
                           "description": "the keyid the attestation is signed with, null "
                                          "when the run is not signed"},
              "workers": {**_INT, "description": "the worker processes a rehearsal's devices "
                                                 "run in (absent: this process)"}},
)
_PLAN_WARNING = EventType(
    name=PLAN_WARNING,
    doc="A warning the compiler attached to the plan, or a step not done as planned "
        "(with the device fields, step, action, planned and method).",
    required={"message": _STR},
    optional={**_STEP, "planned": _STR, "method": _STR},
)
_DEVICE_STARTED = EventType(
    name=DEVICE_STARTED, doc="A device's session is about to open.",
    required={**_DEVICE, "chip": _STR, "resource": _STR, "steps": _INT, "estimate_s": _NUM},
)
_DEVICE_IDENTIFIED = EventType(
    name=DEVICE_IDENTIFIED,
    doc="The chip answered and matches the manifest: its identity (dev_id, uid, "
        "flash_size, rdp_level, probe, … differ per link kind).",
    required={**_DEVICE, "chip": _STR, "expected_part": _STR, "expected_dev_id": _STR,
              "dev_id": _STR},
    optional={"uid": _STR, "rev_id": _STR, "flash_size": _INT, "rdp_level": _INT,
              "bootloader_version": _STR, "probe": _STR},
    open=True,
)
_DEVICE_FINISHED = EventType(
    name=DEVICE_FINISHED, doc="A device ended after running.",
    required={**_DEVICE, "outcome": _OUTCOME_DEVICE, "duration_ms": _INT, "bytes": _INT},
    optional={**_ERROR, "reason": _STR},
)
_DEVICE_SKIPPED = EventType(
    name=DEVICE_SKIPPED, doc="A device never started (fail-fast, interrupted, or after a "
                             "failed device).",
    required={**_DEVICE, "outcome": _enum("skipped", "upstream-failed"), "reason": _STR},
)
_LINK_WAITING = EventType(
    name=LINK_WAITING, doc="Another run holds the device's link; this one waits for it.",
    required={**_DEVICE, "resource": _STR,
              "held_by": {"type": "object", "description": "what the holder wrote: run_id, "
                                                           "device, operator, host, pid, since"}},
)
_LINK_FALLBACK = EventType(
    name=LINK_FALLBACK,
    doc="A device's session left a faster path for a slower, safe one (the RAM flash loader "
        "for the register path, the on-target CRC for read-back): feature, instead, reason; "
        "the console prints message as a warning.",
    required={**_DEVICE, "feature": _STR, "instead": _STR, "reason": _STR, "message": _STR},
    optional={"step": _STR, "action": _STR},
)
_STEP_STARTED = EventType(
    name=STEP_STARTED, doc="A step begins.",
    required={**_STEP, "bytes": _INT, "estimate_s": _NUM},
)
_STEP_PROGRESS = EventType(
    name=STEP_PROGRESS, doc="Throttled progress of a step (at most every 0.25 s or 10 %).",
    required={**_STEP, "done": _INT, "total": _INT, "percent": _NUM},
)
_STEP_RETRIED = EventType(
    name=STEP_RETRIED, doc="A failed attempt will be retried.",
    required={**_STEP, "attempt": _INT, "max": _INT, "delay_s": _NUM, "policy": _STR},
    optional=_ERROR,
)
#: What a hardware recovery action reports: the port or lines it used and how.
_HARDWARE = {
    "hub": _STR, "port": {"type": ["integer", "string"]}, "method": _STR,
    "fallback_reason": _STR, "peer": _STR, "power_good_s": _NUM, "target": _STR,
    "off_s": _NUM, "adapter": _STR, "mask": _STR, "argv": _STR_LIST, "line": _STR,
    "pulse_ms": _NUM, "boot0": _STR, "nrst": _STR, "port_path": _STR}
_HARDWARE_POWER = EventType(
    name=HARDWARE_POWER, doc="A power port was switched (by a recovery action).",
    required={**_DEVICE, "switch": _enum("off", "on"), "target": _STR},
    optional={name: kind for name, kind in _HARDWARE.items() if name != "target"},
)
_HARDWARE_GPIO = EventType(
    name=HARDWARE_GPIO, doc="A BOOT0 or NRST GPIO line changed (active = asserted).",
    required={**_DEVICE, "line_role": _enum("nrst", "boot0"), "active": _BOOL, "line": _STR,
              "t_ms": _NUM},
)
_SLOT_QUARANTINED = EventType(
    name=SLOT_QUARANTINED, doc="A slot (link) failed devices in a row and is out of service "
                               "for the rest of the run.",
    required={"slot": _STR, "failures": _INT, "devices": _STR_LIST},
)
_STEP_RECOVERY = EventType(
    name=STEP_RECOVERY, doc="A recovery action ran before a retry.",
    required={**_DEVICE, "step": _STR, "attempt": _INT,
              "recovery": _STR, "outcome": _enum("ok", "failed", "unsupported"),
              "policy": _STR},
    optional={**_ERROR, "action": _STR, "mode": _STR, "ranges": _RANGES, "blocks": _INT,
              "rewritten_bytes": _INT, **_HARDWARE},
)
_IMAGES_WRITTEN: dict[str, Any] = {"type": "array", "items": {
    "type": "object", "additionalProperties": False, "required": ["name", "sha256"],
    "properties": {"name": _STR, "sha256": _SHA256, "ranges": _RANGES}}}
_STEP_FINISHED = EventType(
    name=STEP_FINISHED,
    doc="A step ended; what it did depends on its action (erase: scope, blocks, "
        "preserved; write: images, and with skip-unchanged units, units_skipped, "
        "units_rewritten, skipped, rewritten, bytes_written; unit-data: unit_value; "
        "verify: method, sha256, units, units_proven_by_write; read: file, format, sha256; "
        "option-bytes: rdp_level, fields; reset: mode).",
    required={**_STEP, "outcome": _OUTCOME_RUN, "duration_ms": _INT, "bytes": _INT,
              "attempts": _INT},
    optional={
        **_ERROR, "ranges": _RANGES, "scope": _STR, "blocks": _INT,
        "preserved": _RANGES, "preserved_bytes": _INT, "preserved_sha256": _SHA256,
        "preserved_file": _STR, "kept_bytes": _INT, "images": _IMAGES_WRITTEN,
        "size": _INT, "unit_value": _ANY, "unit_source": _STR, "unit_bytes": _STR,
        "method": _STR, "planned_method": _STR, "sha256": _SHA256,
        "rdp_level": {"type": ["integer", "null"]}, "fields": _OBJECT, "mode": _STR,
        "units": _INT, "skip_unchanged": _BOOL, "compare_method": _STR,
        "units_skipped": _INT, "units_rewritten": _INT, "skipped": _RANGES,
        "rewritten": _RANGES, "bytes_written": _INT, "file": _STR, "format": _STR,
        "units_proven_by_write": _INT,
    },
)
_SESSION_CLOSE_FAILED = EventType(
    name=SESSION_CLOSE_FAILED, doc="Closing a device's session failed (its outcome stands).",
    required=_DEVICE, optional=_ERROR,
)
_RUN_INTERRUPTED = EventType(
    name=RUN_INTERRUPTED, doc="The run was interrupted (Ctrl-C, SIGTERM, a cancel request).",
    required={"reason": _STR, "running": _STR_LIST},
)
_DEVICE_SUMMARY: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["device", "outcome"],
    "properties": {"device": _STR, "outcome": _OUTCOME_ANY, "duration_ms": _INT,
                   "bytes": _INT, "error": _NULLABLE_STR, "error_category": _NULLABLE_STR,
                   "reason": _NULLABLE_STR}}
_RUN_FINISHED = EventType(
    name=RUN_FINISHED, doc="The run ended: every device's outcome.",
    required={"devices": {"type": "array", "items": _DEVICE_SUMMARY},
              "counts": {"type": "object", "additionalProperties": _INT},
              "duration_ms": _INT, "exit_code": _INT, "interrupted": _BOOL},
    optional={"attestation": {
        "type": "object", "additionalProperties": False, "required": ["file", "signed"],
        "properties": {"file": _STR, "signed": _BOOL, "keyid": _STR, "reason": _STR},
        "description": "where the run's in-toto attestation is written, and whether it is "
                       "signed"}},
)

# Events of a run on stations (runner.stations); each carries ``station``.
_INT_OR_NULL: dict[str, Any] = {"type": ["integer", "null"]}
_STATION_EVENTS = (
    EventType(name=STATION_CONNECTED, doc="The host reached a station and trusts its key.",
              required={"host": _STR, "port": _INT, "user": _STR,
                        "host_key": _NULLABLE_STR}),
    EventType(name=STATION_STAGED, doc="The station's files are in its cache by digest.",
              required={"files": _INT, "sent": _INT, "bytes": _INT, "cache": _STR,
                        "manifest_sha256": _SHA256}),
    EventType(name=STATION_STARTED, doc="The station's run is running, detached.",
              required={"run_dir": _NULLABLE_STR, "pid": _INT_OR_NULL,
                        "resumed": {"type": ["boolean", "null"]}}),
    EventType(name=STATION_GATE_OPENED,
              doc="A device waiting for devices of other stations was let go (gate: go) "
                  "or told which of them failed.",
              required={"device": _STR, "gate": _STR}),
    EventType(name=STATION_FAILED, doc="A station could not be used; its devices fail.",
              required={}, optional={**_ERROR, "files": _STR_LIST}),
    EventType(name=STATION_CONNECTION_LOST,
              doc="The connection to a station dropped or went silent.",
              required={"error": _STR, "attempt": _INT, "after_seq": _INT}),
    EventType(name=STATION_RECONNECTED,
              doc="The host is back in touch and follows the run after after_seq.",
              required={"attempt": _INT, "after_seq": _INT}),
    EventType(name=STATION_LOST, doc="No contact with a station could be regained; its "
                                       "unfinished devices are unknown.",
              required={"after_seq": _INT, "devices": _STR_LIST}),
    EventType(name=COLLECT_STARTED,
              doc="`flashrunner collect`: fetching the outcomes a run lost from stations.",
              required={"of_run": _STR, "log": _STR, "stations": _OBJECT, "at": _STR}),
    EventType(name=COLLECT_FINISHED, doc="What collect knows now, per device.",
              required={"of_run": _STR, "outcomes": _OBJECT}),
)

#: Every event, by name, in the order a run emits them.
EVENT_TYPES: dict[str, EventType] = {event.name: event for event in (
    _RUN_STARTED, _PLAN_WARNING, _LINK_WAITING, _DEVICE_STARTED, _LINK_FALLBACK,
    _DEVICE_IDENTIFIED, _STEP_STARTED,
    _STEP_PROGRESS, _STEP_RETRIED, _STEP_RECOVERY, _STEP_FINISHED, _DEVICE_FINISHED,
    _DEVICE_SKIPPED, _SESSION_CLOSE_FAILED, _HARDWARE_POWER, _HARDWARE_GPIO, _SLOT_QUARANTINED,
    _RUN_INTERRUPTED, _RUN_FINISHED, *_STATION_EVENTS)}

#: Every event name, in the order a run emits them.
EVENTS: tuple[str, ...] = tuple(EVENT_TYPES)


class EventContractError(Exception):
    """An event was emitted that its definition does not allow (a bug in the emitter)."""


def strict_events() -> bool:
    """Whether a contract problem raises (``FLASHRUNNER_STRICT_EVENTS=1``; the tests set it)."""
    return os.environ.get("FLASHRUNNER_STRICT_EVENTS", "") not in ("", "0")


def contract_problems(event: str, fields: Mapping[str, Any]) -> list[str]:
    """What is wrong with emitting ``event`` with ``fields``; empty when nothing is."""
    definition = EVENT_TYPES.get(event)
    if definition is None:
        return [f"unknown event {event!r}: define it in runner/events.py (EVENT_TYPES)"]
    return definition.problems(fields)


@runtime_checkable
class EventSink(Protocol):
    """Receives events. Called from worker threads: implementations must be thread-safe."""

    def emit(self, event: str, **fields: Any) -> None:
        """Handle one event (``fields`` are JSON-ready values)."""


class NullSink:
    """Discards every event."""

    def emit(self, event: str, **fields: Any) -> None:
        pass


class FanOutSink:
    """Passes every event to each of ``sinks``, in order."""

    def __init__(self, sinks: Iterable[EventSink]) -> None:
        self.sinks = tuple(sinks)

    def emit(self, event: str, **fields: Any) -> None:
        for sink in self.sinks:
            sink.emit(event, **fields)


class CapturingSink:
    """Keeps every event as ``(event, fields)``, for tests."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        with self._lock:
            self.events.append((event, dict(fields)))

    def named(self, event: str) -> list[dict[str, Any]]:
        """The fields of every ``event`` captured, in order."""
        with self._lock:
            return [fields for name, fields in self.events if name == event]

    def names(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self.events]
