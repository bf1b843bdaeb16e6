"""The event catalogue: every event a run emits, and the sinks that receive them.

The executor reports what happens as ``emit(event, **fields)`` calls on an
:class:`EventSink`. The audit log (:mod:`runner.logging`) turns each into one
JSON record and adds ``ts``, ``seq`` and ``run_id``; the console
(:mod:`runner.console`) renders them for people. Field values are JSON-ready:
addresses are ``0x`` strings, durations integer milliseconds, sizes bytes.

Fields common to device and step events: ``device`` (manifest name),
``transport`` (the link's manifest name), ``kind`` (the link kind). Step events
add ``step`` (the task id, ``<device>/<index>-<kind>``) and ``action`` (the
task kind: ``connect``, ``erase``, ``write``, ``verify``, ``option-bytes``,
``reset``). Error fields, wherever an error is reported: ``error_type``,
``error_category``, ``error_categories``, ``error`` (the message with its hint)
and ``hint``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "DEVICE_FINISHED",
    "DEVICE_IDENTIFIED",
    "DEVICE_SKIPPED",
    "DEVICE_STARTED",
    "EVENTS",
    "LINK_WAITING",
    "PLAN_WARNING",
    "RUN_FINISHED",
    "RUN_INTERRUPTED",
    "RUN_STARTED",
    "SESSION_CLOSE_FAILED",
    "STEP_FINISHED",
    "STEP_PROGRESS",
    "STEP_RECOVERY",
    "STEP_RETRIED",
    "STEP_STARTED",
    "CapturingSink",
    "EventSink",
    "FanOutSink",
    "NullSink",
]

#: The run begins. Fields: ``manifest`` (name), ``manifest_path``, ``manifest_sha256``,
#: ``tool_version``, ``host``, ``operator``, ``python``, ``simulate``, ``images``
#: (name → sha256), ``devices`` (count), ``max_parallel``, ``fail_fast``, ``estimate_s``.
RUN_STARTED = "run.started"
#: A warning the compiler attached to the plan. Fields: ``message``. Also emitted
#: during a run when a step could not be done as planned (a session offering other
#: capabilities than the chip database led the plan to expect), with device fields,
#: ``step``, ``action``, ``planned`` and ``method`` (what was done).
PLAN_WARNING = "plan.warning"
#: A device's session is about to open. Fields: ``device``, ``transport``, ``kind``,
#: ``chip`` (part), ``resource``, ``steps`` (count), ``estimate_s``.
DEVICE_STARTED = "device.started"
#: The chip answered and matches the manifest. Fields: ``device``, ``transport``,
#: ``kind``, ``chip`` (the manifest's part), ``expected_part``, ``expected_dev_id``,
#: then :meth:`ChipIdentity.log_fields` (``dev_id``, ``uid``, ``flash_size``,
#: ``rdp_level``, ``probe``, …).
DEVICE_IDENTIFIED = "device.identified"
#: A device ended after running. Fields: ``device``, ``transport``, ``kind``,
#: ``outcome`` (ok / failed / interrupted), ``duration_ms``, ``bytes``, error fields
#: when it failed (and ``traceback`` for an internal error).
DEVICE_FINISHED = "device.finished"
#: A device never started. Fields: ``device``, ``transport``, ``kind``, ``outcome``
#: (skipped / upstream-failed), ``reason`` (``fail-fast``, ``interrupted``,
#: ``<device> failed``).
DEVICE_SKIPPED = "device.skipped"
#: Another run holds the device's link; this one waits for it. Fields: device fields,
#: ``resource``, ``held_by`` (what the holder wrote: ``run_id``, ``device``, ``operator``,
#: ``host``, ``pid``, ``since``).
LINK_WAITING = "link.waiting"
#: A step begins. Fields: device fields, ``step``, ``action``, ``bytes`` (planned),
#: ``estimate_s``, ``attempt``.
STEP_STARTED = "step.started"
#: Throttled progress of a step (at most every 0.25 s or 10 %). Fields: device
#: fields, ``step``, ``action``, ``done``, ``total`` (bytes or erase units), ``percent``.
STEP_PROGRESS = "step.progress"
#: A failed attempt will be retried. Fields: device fields, ``step``, ``action``,
#: ``attempt`` (the retry number, 1-based), ``max`` (the policy's retries),
#: ``delay_s``, ``policy``, error fields of the failure.
STEP_RETRIED = "step.retried"
#: A recovery action was taken before a retry. Fields: device fields, ``step``,
#: ``attempt``, ``recovery`` (``reconnect``, ``reset``, ``re-erase``), ``outcome``
#: (ok / failed), error fields when it failed; ``re-erase`` adds ``ranges``.
STEP_RECOVERY = "step.recovery"
#: A step ended. Fields: device fields, ``step``, ``action``, ``outcome``,
#: ``duration_ms``, ``bytes``, ``attempts``, ``ranges`` (address ranges as 0x
#: strings), for writes ``images`` (name, sha256, ranges), for verifies ``method``
#: (``checksum``, ``readback``, ``checksum+readback``) and ``planned_method`` when the
#: plan expected another;
#: error fields (and ``traceback`` for internal errors) when it failed.
STEP_FINISHED = "step.finished"
#: Closing a device's session failed (the device's outcome stands). Fields: device
#: fields, error fields.
SESSION_CLOSE_FAILED = "session.close-failed"
#: The run was interrupted (Ctrl-C, SIGTERM, a cancel request). Fields: ``reason``,
#: ``running`` (devices that were stopped).
RUN_INTERRUPTED = "run.interrupted"
#: The run ended. Fields: ``devices`` (per device: ``device``, ``outcome``,
#: ``duration_ms``, ``bytes``, ``error``, ``reason``), ``counts`` (outcome → n),
#: ``duration_ms``, ``exit_code``, ``interrupted``.
RUN_FINISHED = "run.finished"

#: Every event name, in the order a run emits them.
EVENTS: tuple[str, ...] = (
    RUN_STARTED, PLAN_WARNING, LINK_WAITING, DEVICE_STARTED, DEVICE_IDENTIFIED, STEP_STARTED,
    STEP_PROGRESS, STEP_RETRIED, STEP_RECOVERY, STEP_FINISHED, DEVICE_FINISHED, DEVICE_SKIPPED,
    SESSION_CLOSE_FAILED, RUN_INTERRUPTED, RUN_FINISHED,
)


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
