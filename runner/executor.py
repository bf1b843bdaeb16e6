"""Executing a plan: devices scheduled on a bounded pool of worker threads.

A device is the unit of scheduling (:class:`~runner.device_session.DeviceSession`
runs its tasks in order over one session). A device starts when every device
in its ``after`` ended OK and its exclusive resource (a bus, a probe) is free;
ready devices start in plan order, at most ``max_parallel`` at once.

A failed device fails alone unless ``fail_fast`` (then nothing new starts and
the rest are SKIPPED); devices after a failed one end UPSTREAM_FAILED,
transitively. Cancellation (the ``cancel`` event, Ctrl-C, SIGTERM) stops
scheduling, lets running devices stop at their next progress report and close
their sessions, and returns an interrupted :class:`RunResult` (exit code 130).
Ctrl-C and SIGTERM cancel from the first instant of :func:`execute` to its
last, so a signal never leaves a log without its ``run.finished``.

The environment failing under a run (the audit log's disk full, the ``.kept``
backup or a counter's state file unwritable) stops it the same way, and the
result says why (``stopped_by``, exit code 3): the log is a valid prefix, and a
device whose outcome the log could not record is not reported ok. A worker
never dies silently: anything it raises becomes its device's failed result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import platform
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

import runner
from runner import events as ev
from runner.audit.chain import FORMAT
from runner.audit.seal import RunSeal, Sealing
from runner.device_session import DeviceSession, RunContext, error_fields
from runner.errors import PlanError
from runner.linklocks import LinkLocks
from runner.logging import AuditLog, JsonlFileSink, RecordOutput, log_path, new_run_id
from runner.plan import DevicePlan, DeviceResult, Outcome, Plan, RunResult, StepResult
from runner.recovery import run_step
from runner.tracelog import Tracing
from runner.wiring import HardwareControl
from transports.base import simulated_endpoints
from transports.endpoints import HARDWARE, Endpoints
from transports.registry import load_transport

__all__ = ["Dispatch", "Gate", "execute", "run_device", "tool_version"]

#: Whether a device held back by someone else may start: ``None`` not yet, ``"go"``
#: yes, any other text names the failed device it waited for (it ends upstream-failed).
Gate = Callable[[str], "str | None"]
#: Runs the plan's devices elsewhere (on stations) instead of the local scheduler:
#: returns each device's result and whether the run was interrupted.
Dispatch = Callable[[Plan, RunContext], "tuple[dict[str, DeviceResult], bool]"]

_POLL_S = 0.1
#: Errors that stop the whole run: a file the run keeps cannot be written.
_STOPPING = frozenset({"StorageFailed", "AuditWriteFailed"})


def tool_version() -> str:
    # The package's own constant (the packaging tests hold pyproject.toml to it): asking
    # importlib.metadata instead costs ~15 ms of imports before the first byte.
    return runner.__version__


def _operator() -> str:
    override = os.environ.get("FLASHRUNNER_OPERATOR")
    if override:
        return override
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _hardware_control(plan: Plan, endpoints: Endpoints) -> HardwareControl | None:
    """Hub ports, sysfs and GPIO for the plan's wired devices (``None`` when none is)."""
    if not any(device.wiring is not None for device in plan.devices):
        return None
    return HardwareControl.of(endpoints.host_control(), plan.power)


@contextmanager
def _signals_cancel(cancel: threading.Event) -> Iterator[None]:
    """SIGTERM and Ctrl-C cancel the run while it lasts (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        cancel.set()

    previous = {number: signal.signal(number, handler)
                for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before)


class _Stop:
    """The first environment failure of a run (thread-safe); it cancels the run."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel
        self.reason: str | None = None
        self._lock = threading.Lock()

    def environment(self, error: BaseException) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = str(error)
        self.cancel.set()


def run_device(session: DeviceSession) -> DeviceResult:
    """Run a device's tasks in order until one does not end OK; always close the session."""
    plan, context = session.plan, session.context
    started = time.monotonic()
    session.emit(ev.DEVICE_STARTED, chip=plan.chip.part, resource=plan.resource,
                 steps=len(plan.tasks), estimate_s=round(plan.estimate_s, 3))
    steps: list[StepResult] = []
    outcome = Outcome.OK
    failure: dict[str, Any] = {}
    try:
        for task in plan.tasks:
            if context.cancel.is_set():
                outcome = Outcome.INTERRUPTED
                break
            result, error = run_step(session, task)
            steps.append(result)
            if result.outcome is not Outcome.OK:
                outcome = result.outcome
                failure = error_fields(error) if error is not None else {}
                break
    finally:
        session.close()
        session.release_hardware()
    duration = time.monotonic() - started
    nbytes = sum(step.bytes for step in steps)
    session.emit(ev.DEVICE_FINISHED, failure, outcome=outcome.value,
                 duration_ms=round(duration * 1000), bytes=nbytes)
    return DeviceResult(
        device=plan.device, outcome=outcome, steps=tuple(steps), duration_s=duration,
        identity=session.identity.log_fields() if session.identity else {},
        error=failure.get("error"), error_type=failure.get("error_type"),
        error_category=failure.get("error_category"),
        reason="interrupted" if outcome is Outcome.INTERRUPTED else None)


#: Error categories that say the slot (link, fixture) failed rather than the chip.
_LINK_CATEGORIES = frozenset({"connect", "link-lost", "timeout", "fault", "hardware-control"})


class _Scheduler:
    """Starts devices as their dependencies and resources allow; collects results."""

    def __init__(self, plan: Plan, context: RunContext, gate: Gate | None = None,
                 stop: _Stop | None = None) -> None:
        self.plan = plan
        self.context = context
        self.gate = gate
        self.stop = stop
        self.held: set[str] = set()
        self.results: dict[str, DeviceResult] = {}
        self.running: dict[str, threading.Thread] = {}
        self.busy: set[str] = set()
        self.done: queue.Queue[DeviceResult] = queue.Queue()
        self.stopping_reason: str | None = None
        self.names = {device.device for device in plan.devices}
        #: Per slot (a link's resource): the devices that failed on it in a row with link
        #: errors, and the slots taken out of service (``execution.quarantine-after``).
        self.streaks: dict[str, list[str]] = {}
        self.quarantined: set[str] = set()

    @property
    def stopped_by(self) -> str | None:
        """The environment failure that stopped this scheduler's devices, if one did."""
        return self.stop.reason if self.stop is not None else None

    def emit(self, event: str, **fields: Any) -> None:
        self.context.events.emit(event, **fields)

    def _worker(self, device: DevicePlan, release: threading.Event) -> None:
        release.wait()
        result = DeviceResult(device=device.device, outcome=Outcome.FAILED,
                              error="internal error: the device's worker stopped",
                              error_category="internal")
        try:
            try:
                with self._link_locked(device):
                    result = run_device(DeviceSession(device, self.context))
            except BaseException as error:  # a bug in the runner itself: keep the pool alive
                fields = error_fields(error)
                result = DeviceResult(device=device.device, outcome=Outcome.FAILED,
                                      error=fields["error"], error_type=fields["error_type"],
                                      error_category=fields["error_category"])
                self.emit(ev.DEVICE_FINISHED, device=device.device, transport=device.link,
                          kind=device.kind, outcome=Outcome.FAILED.value, duration_ms=0,
                          bytes=0, **fields)
        except BaseException as error:  # even reporting failed: the result still counts
            if self.stop is not None and isinstance(error, OSError):
                self.stop.environment(error)
        finally:
            if self.stop is not None and self.stop.reason is not None:
                result = _unrecorded(result, self.stop.reason)
            self.done.put(result)

    def _link_locked(self, device: DevicePlan) -> contextlib.AbstractContextManager[object]:
        locks = self.context.locks
        if locks is None:
            return contextlib.nullcontext()

        def waiting(holder: dict[str, Any]) -> None:
            self.emit(ev.LINK_WAITING, device=device.device, transport=device.link,
                      kind=device.kind, resource=device.resource, held_by=holder)

        return locks.hold(device.resource, device=device.device, waiting=waiting)

    def _skip(self, device: DevicePlan, outcome: Outcome, reason: str) -> None:
        self.results[device.device] = DeviceResult(device=device.device, outcome=outcome,
                                                   reason=reason)
        self.emit(ev.DEVICE_SKIPPED, device=device.device, transport=device.link,
                  kind=device.kind, outcome=outcome.value, reason=reason)

    def _upstream_failure(self, device: DevicePlan) -> str | None:
        """The failed device this one depends on (transitively), if any."""
        for name in device.after:
            result = self.results.get(name)
            if result is None:
                continue
            if result.outcome is Outcome.FAILED:
                return name
            if result.outcome is Outcome.UPSTREAM_FAILED:
                return (result.reason or "").removesuffix(" failed") or name
        return None

    def _schedule(self) -> None:
        """Start or settle every device that can be, in plan order.

        The workers started here wait for ``release`` until every one is
        started: a worker already at work would compete with this thread for
        the interpreter, and each start would wait its turn, so a large line
        would begin over a third of a second instead of at once.
        """
        release = threading.Event()
        try:
            self._start_ready(release)
        finally:
            release.set()

    def _start_ready(self, release: threading.Event) -> None:
        progressed = True
        while progressed:
            progressed = False
            for device in self.plan.devices:
                name = device.device
                if name in self.results or name in self.running:
                    continue
                culprit = self._upstream_failure(device)
                if culprit is not None:
                    self._skip(device, Outcome.UPSTREAM_FAILED, f"{culprit} failed")
                    progressed = True
                    continue
                if self.stopping_reason is not None:
                    continue
                if device.resource in self.quarantined:
                    self._skip(device, Outcome.SKIPPED, f"slot {device.resource} is "
                                                        f"quarantined")
                    progressed = True
                    continue
                waiting = [n for n in device.after if n in self.names
                           and (n not in self.results
                                or self.results[n].outcome is not Outcome.OK)]
                if waiting:
                    continue
                opened = self.gate(name) if self.gate is not None else "go"
                if opened is None:
                    self.held.add(name)
                    continue
                self.held.discard(name)
                if opened != "go":
                    self._skip(device, Outcome.UPSTREAM_FAILED, f"{opened} failed")
                    progressed = True
                    continue
                if device.resource in self.busy \
                        or len(self.running) >= max(1, self.plan.execution.max_parallel):
                    continue
                self.busy.add(device.resource)
                thread = threading.Thread(target=self._worker, args=(device, release),
                                          name=f"flashrunner-{name}", daemon=True)
                self.running[name] = thread
                thread.start()

    def _settle(self, result: DeviceResult) -> None:
        self.running.pop(result.device).join()
        resource = self.plan.device(result.device).resource
        self.busy.discard(resource)
        self.results[result.device] = result
        self._count_slot(resource, result)
        if result.error_type in _STOPPING and self.stop is not None:
            self.stop.environment(RuntimeError(result.error or "the environment failed"))
        if result.outcome is Outcome.FAILED and self.plan.execution.fail_fast \
                and self.stopping_reason is None:
            self.stopping_reason = "fail-fast"

    def _count_slot(self, slot: str, result: DeviceResult) -> None:
        """A slot that failed ``quarantine-after`` devices in a row on link errors is retired.

        A broken fixture (a dead hub port, a cable) then does not eat a tray of boards;
        any other outcome on the slot starts the count again.
        """
        limit = self.plan.execution.quarantine_after
        if limit is None:
            return
        streak = self.streaks.setdefault(slot, [])
        if result.outcome is Outcome.FAILED and result.error_category in _LINK_CATEGORIES:
            streak.append(result.device)
        else:
            streak.clear()
        if len(streak) >= limit and slot not in self.quarantined:
            self.quarantined.add(slot)
            self.emit(ev.SLOT_QUARANTINED, slot=slot, failures=len(streak),
                      devices=list(streak))

    def _interrupt(self, reason: str) -> None:
        if self.stopping_reason not in ("interrupted", "stopped"):
            stopped = self.stop is not None and self.stop.reason is not None
            self.stopping_reason = "stopped" if stopped else "interrupted"
            self.context.cancel.set()
            if stopped and self.stop is not None:
                reason = f"stopped: {self.stop.reason}"
            self.emit(ev.RUN_INTERRUPTED, reason=reason, running=sorted(self.running))

    def run(self) -> bool:
        """Run every device; True when the run was interrupted."""
        cancel = self.context.cancel
        while True:
            try:
                if cancel.is_set():
                    self._interrupt("cancelled")
                self._schedule()
                if not self.running and (not self.held or self.stopping_reason is not None):
                    break
                try:
                    self._settle(self.done.get(timeout=_POLL_S))
                except queue.Empty:
                    continue
            except KeyboardInterrupt:
                self._interrupt("keyboard interrupt")
        reason = self.stopping_reason or "not runnable"
        for device in self.plan.devices:
            if device.device not in self.results:
                culprit = self._upstream_failure(device)
                if culprit is not None:
                    self._skip(device, Outcome.UPSTREAM_FAILED, f"{culprit} failed")
                else:
                    self._skip(device, Outcome.SKIPPED, reason)
        return self.stopping_reason in ("interrupted", "stopped")


def _run_in_workers(plan: Plan, context: RunContext, processes: int,
                    stop: _Stop) -> tuple[dict[str, DeviceResult], bool]:
    """The devices in forked workers, each with this scheduler over its share."""
    from runner.shards import run_in_workers

    results, interrupted = run_in_workers(
        plan, context, processes,
        scheduler=lambda mine, theirs: _Scheduler(mine, theirs, None, _Stop(theirs.cancel)),
        stop=stop)
    if stop.reason is not None:
        results = {name: _unrecorded(result, stop.reason) for name, result in results.items()}
    return results, interrupted


def _unrecorded(result: DeviceResult, reason: str) -> DeviceResult:
    """A device whose outcome the log may not hold (it failed under the run) is not ok."""
    if result.outcome is not Outcome.OK:
        return result
    return DeviceResult(device=result.device, outcome=Outcome.FAILED, steps=result.steps,
                        duration_s=result.duration_s, identity=result.identity,
                        error=f"its outcome could not be recorded: {reason}",
                        error_category="environment")


def _run_started(plan: Plan) -> dict[str, Any]:
    return {
        "manifest": plan.name, "manifest_path": str(plan.manifest_path),
        "manifest_sha256": plan.manifest_sha256, "tool_version": tool_version(),
        "host": socket.gethostname(), "operator": _operator(),
        "python": platform.python_version(), "simulate": plan.simulate,
        "images": dict(plan.image_digests), "devices": len(plan.devices),
        "max_parallel": plan.execution.max_parallel, "fail_fast": plan.execution.fail_fast,
        "estimate_s": round(plan.estimate_s, 3), "format": FORMAT,
    }


def _device_summary(result: DeviceResult) -> dict[str, Any]:
    return {"device": result.device, "outcome": result.outcome.value,
            "duration_ms": round(result.duration_s * 1000),
            "bytes": sum(step.bytes for step in result.steps),
            "error": result.error, "error_category": result.error_category,
            "reason": result.reason}


def execute(plan: Plan, *, endpoints: Endpoints = HARDWARE,
            events: ev.EventSink | None = None, outputs: Sequence[RecordOutput] = (),
            cancel: threading.Event | None = None,
            run_id: str | None = None, locks: LinkLocks | None = None,
            gate: Gate | None = None, dispatch: Dispatch | None = None,
            sealing: Sealing | None = None, tracing: Tracing | None = None,
            processes: int = 1) -> RunResult:
    """Run ``plan``; report through one audit stream.

    Every record is written to the plan's log file (if it names one) and to
    ``outputs`` (e.g. ``--json`` on stdout) as the same line, and handed to
    ``events`` (e.g. the console) with the same ``seq`` and ``ts``.

    Every session opens its far end through ``endpoints``, which whoever
    composes the run provides (:func:`runner.launch.execute` builds the
    simulated ones of a rehearsal). ``locks`` takes a per-link OS lock while
    each device runs; ``gate`` holds devices back until it opens them;
    ``dispatch`` runs the devices elsewhere (on stations) in place of the
    local scheduler. ``tracing`` hands each session its protocol trace (``-v``).
    ``processes`` above 1 runs the devices in that many worker processes forked
    from this one (:mod:`runner.shards`; only for far ends they can take along,
    and not with ``dispatch``, ``gate`` or ``tracing``).
    A run that writes a log
    file leaves its attestation beside it, signed with ``sealing``'s key if it
    has one, and is entered in ``sealing``'s ledger (:mod:`runner.audit.seal`).

    Raises:
        PlanError: a simulated plan was handed the hardware endpoints.
        EnvironmentProblem: the log file cannot be created (or already exists), or
            the ledger cannot be written.
    """
    if plan.simulate and endpoints is HARDWARE and dispatch is None:
        # A rehearsal must never reach real hardware, whoever composed it.
        raise PlanError(f"plan {plan.name} is simulated but was given the hardware endpoints",
                        hint="run it with runner.execute (runner.launch), which builds the "
                             "simulated ones")
    if plan.simulate:
        _refuse_unsimulatable(plan)
    cancel = cancel or threading.Event()
    with _signals_cancel(cancel):
        return _execute(plan, endpoints=endpoints, events=events, outputs=outputs,
                        cancel=cancel, run_id=run_id, locks=locks, gate=gate,
                        dispatch=dispatch, sealing=sealing, tracing=tracing,
                        processes=processes)


def _refuse_unsimulatable(plan: Plan) -> None:
    """A rehearsal never opens a kind that cannot be simulated (the compiler refuses one
    too; this holds for a plan built or changed by hand)."""
    for device in plan.devices:
        if not simulated_endpoints(load_transport(device.kind)):
            raise PlanError(f"plan {plan.name} is simulated, but link {device.link} of "
                            f"device {device.device} is of kind {device.kind}, which cannot "
                            f"be simulated; nothing was run",
                            hint="run it without --simulate / simulate: true")


def _execute(plan: Plan, *, endpoints: Endpoints, events: ev.EventSink | None,
             outputs: Sequence[RecordOutput], cancel: threading.Event, run_id: str | None,
             locks: LinkLocks | None, gate: Gate | None, dispatch: Dispatch | None,
             sealing: Sealing | None, tracing: Tracing | None = None,
             processes: int = 1) -> RunResult:
    now = datetime.now(timezone.utc)
    run_id = run_id or new_run_id(now)
    stop = _Stop(cancel)
    log_file: Path | None = None
    files: list[RecordOutput] = []
    if plan.log.file:
        log_file = log_path(plan.log.file, name=plan.name, run_id=run_id, now=now)
        files.append(JsonlFileSink(log_file))
    audit = AuditLog(run_id, [*files, *outputs],
                     listeners=[events] if events is not None else [],
                     on_failure=stop.environment)
    sink: ev.EventSink = audit
    seal = RunSeal(sealing or Sealing(), run_id=run_id, log_file=log_file) \
        if log_file is not None else None
    started_fields = _run_started(plan)
    # Workers run the local scheduler with nothing the host decides per device, and a
    # session's protocol trace (-v) is written from this process only.
    workers = processes if dispatch is None and gate is None and tracing is None else 1
    if workers > 1:
        started_fields["workers"] = workers
    try:
        if seal is not None:
            started_fields.update(seal.started_fields(host=started_fields["host"]))
    except BaseException:
        audit.close()
        if log_file is not None:
            log_file.unlink(missing_ok=True)  # still empty: nothing ran
        raise
    started = time.monotonic()
    try:
        sink.emit(ev.RUN_STARTED, run_id=run_id, **started_fields)
        for warning in plan.warnings:
            sink.emit(ev.PLAN_WARNING, message=warning)
        kept_dir = log_file.with_name(log_file.name + ".kept") if log_file else None
        context = RunContext(events=sink, cancel=cancel, endpoints=endpoints, run_id=run_id,
                             kept_dir=kept_dir, locks=locks, tracing=tracing,
                             hardware=_hardware_control(plan, endpoints))
        if dispatch is not None:
            results, interrupted = dispatch(plan, context)
        elif workers > 1:
            results, interrupted = _run_in_workers(plan, context, workers, stop)
        else:
            scheduler = _Scheduler(plan, context, gate, stop)
            interrupted = scheduler.run()
            results = scheduler.results
        devices = tuple(results[d.device] for d in plan.devices)
        result = RunResult(run_id=run_id, plan=plan, devices=devices,
                           duration_s=time.monotonic() - started, interrupted=interrupted,
                           log_file=log_file, stopped_by=stop.reason)
        sink.emit(ev.RUN_FINISHED, run_id=run_id,
                  devices=[_device_summary(d) for d in devices], counts=result.counts(),
                  duration_ms=round(result.duration_s * 1000), exit_code=result.exit_code,
                  interrupted=interrupted,
                  **(seal.finished_fields() if seal is not None else {}))
        audit.close()
        if stop.reason is not None:
            # run.finished itself may be what the log could not take: no seal over it.
            return dataclasses.replace(result, stopped_by=stop.reason)
        if seal is not None:
            seal.seal(head=audit.head, lines=audit.seq, exit_code=result.exit_code)
        return result
    finally:
        audit.close()
