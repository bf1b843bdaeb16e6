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
"""

from __future__ import annotations

import contextlib
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
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import FrameType
from typing import Any

import runner
from runner import events as ev
from runner.audit.chain import FORMAT
from runner.audit.seal import RunSeal, Sealing
from runner.device_session import DeviceSession, RunContext, error_fields
from runner.linklocks import LinkLocks
from runner.logging import AuditLog, JsonlFileSink, RecordOutput, log_path, new_run_id
from runner.plan import DevicePlan, DeviceResult, Outcome, Plan, RunResult, StepResult
from runner.recovery import run_step
from runner.wiring import HardwareControl
from transports.power.sysfs import HostSysfs
from transports.sim.control import sim_hardware
from transports.sim.faults import Fault
from transports.sim.world import DeviceProfile, SimulationWorld

__all__ = ["Dispatch", "Gate", "execute", "run_device", "simulation_world", "tool_version"]

#: Whether a device held back by someone else may start: ``None`` not yet, ``"go"``
#: yes, any other text names the failed device it waited for (it ends upstream-failed).
Gate = Callable[[str], "str | None"]
#: Runs the plan's devices elsewhere (on stations) instead of the local scheduler:
#: returns each device's result and whether the run was interrupted.
Dispatch = Callable[[RunContext], "tuple[dict[str, DeviceResult], bool]"]

_POLL_S = 0.1


def tool_version() -> str:
    try:
        return version("flashrunner")
    except PackageNotFoundError:
        return runner.__version__


def _operator() -> str:
    override = os.environ.get("FLASHRUNNER_OPERATOR")
    if override:
        return override
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def simulation_world(plan: Plan) -> SimulationWorld:
    """The world a simulated run of ``plan`` needs: its time scale, seed and profiles."""
    spec = plan.simulation
    profiles = {
        name: DeviceProfile(rdp_level=device.rdp, fill=device.fill, quirks=dict(device.quirks),
                            faults=tuple(Fault.from_mapping(f) for f in device.faults))
        for name, device in spec.devices.items()
    }
    return SimulationWorld(time_scale=spec.time_scale, seed=spec.seed or plan.manifest_sha256,
                           profiles=profiles)


def hardware_control(plan: Plan, world: SimulationWorld | None) -> HardwareControl | None:
    """Hub ports, sysfs and GPIO for the plan's wired devices: the host's, or simulated.

    In a rehearsal the hubs and GPIO chips the wiring names are simulated, each
    device's NRST/BOOT0 lines are wired to its simulated board, and hubs take the
    settings of ``simulation.hubs``.
    """
    wired = [device for device in plan.devices if device.wiring is not None]
    if not wired:
        return None
    if world is None or not plan.simulate:
        return HardwareControl(usb_backend=None, sysfs=HostSysfs(), supplies=plan.power)
    sim = sim_hardware(world)
    hubs = {supply.hub for supply in plan.power.values() if supply.hub}
    for device in wired:
        assert device.wiring is not None
        for ref in (device.wiring.power, device.wiring.probe_power):
            if ref is not None and ref.supply and ref.supply.startswith("@"):
                hubs.add(ref.supply[1:])
        for role, line in (("nrst", device.wiring.nrst), ("boot0", device.wiring.boot0)):
            if line is not None:
                sim.pin(device.device, role, chip=line.chip, line=line.line,
                        active_low=line.active_low)
    for path in sorted(hubs):
        sim.hub(path, plan.simulation.hubs.get(path))
    return HardwareControl(usb_backend=sim.backend, sysfs=sim.sysfs, gpio=sim.gpio,
                           sleep=sim.clock.advance, monotonic=lambda: sim.clock.elapsed,
                           supplies=plan.power)


def _needs_world(plan: Plan) -> bool:
    return plan.simulate or any(device.kind == "sim" for device in plan.devices)


@contextmanager
def _sigterm_sets(cancel: threading.Event) -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while the run lasts (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        cancel.set()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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

    def __init__(self, plan: Plan, context: RunContext, gate: Gate | None = None) -> None:
        self.plan = plan
        self.context = context
        self.gate = gate
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

    def emit(self, event: str, **fields: Any) -> None:
        self.context.events.emit(event, **fields)

    def _worker(self, device: DevicePlan) -> None:
        try:
            with self._link_locked(device):
                result = run_device(DeviceSession(device, self.context))
        except BaseException as error:  # a bug in the runner itself: keep the pool alive
            fields = error_fields(error)
            self.emit(ev.DEVICE_FINISHED, device=device.device, transport=device.link,
                      kind=device.kind, outcome=Outcome.FAILED.value, duration_ms=0, bytes=0,
                      **fields)
            result = DeviceResult(device=device.device, outcome=Outcome.FAILED,
                                  error=fields["error"], error_type=fields["error_type"],
                                  error_category=fields["error_category"])
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
        """Start or settle every device that can be, in plan order."""
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
                thread = threading.Thread(target=self._worker, args=(device,),
                                          name=f"flashrunner-{name}", daemon=True)
                self.running[name] = thread
                thread.start()

    def _settle(self, result: DeviceResult) -> None:
        self.running.pop(result.device).join()
        resource = self.plan.device(result.device).resource
        self.busy.discard(resource)
        self.results[result.device] = result
        self._count_slot(resource, result)
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
        if self.stopping_reason != "interrupted":
            self.stopping_reason = "interrupted"
            self.context.cancel.set()
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
        return self.stopping_reason == "interrupted"


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


def execute(plan: Plan, *, events: ev.EventSink | None = None,
            outputs: Sequence[RecordOutput] = (),
            world: SimulationWorld | None = None, cancel: threading.Event | None = None,
            run_id: str | None = None, locks: LinkLocks | None = None,
            gate: Gate | None = None, dispatch: Dispatch | None = None,
            sealing: Sealing | None = None) -> RunResult:
    """Run ``plan``; report through one audit stream.

    Every record is written to the plan's log file (if it names one) and to
    ``outputs`` (e.g. ``--json`` on stdout) as the same line, and handed to
    ``events`` (e.g. the console) with the same ``seq`` and ``ts``.

    ``locks`` takes a per-link OS lock while each device runs; ``gate`` holds
    devices back until it opens them; ``dispatch`` runs the devices elsewhere
    (on stations) in place of the local scheduler. A run that writes a log
    file leaves its attestation beside it, signed with ``sealing``'s key if it
    has one, and is entered in ``sealing``'s ledger (:mod:`runner.audit.seal`).

    Raises:
        EnvironmentProblem: the log file cannot be created (or already exists), or
            the ledger cannot be written.
    """
    now = datetime.now(timezone.utc)
    run_id = run_id or new_run_id(now)
    cancel = cancel or threading.Event()
    log_file: Path | None = None
    files: list[RecordOutput] = []
    if plan.log.file:
        log_file = log_path(plan.log.file, name=plan.name, run_id=run_id, now=now)
        files.append(JsonlFileSink(log_file))
    audit = AuditLog(run_id, [*files, *outputs],
                     listeners=[events] if events is not None else [])
    sink: ev.EventSink = audit
    seal = RunSeal(sealing or Sealing(), run_id=run_id, log_file=log_file) \
        if log_file is not None else None
    started_fields = _run_started(plan)
    try:
        if seal is not None:
            started_fields.update(seal.started_fields(host=started_fields["host"]))
    except BaseException:
        audit.close()
        if log_file is not None:
            log_file.unlink(missing_ok=True)  # still empty: nothing ran
        raise
    own_world = world is None and dispatch is None and _needs_world(plan)
    if own_world:
        world = simulation_world(plan)
    started = time.monotonic()
    try:
        sink.emit(ev.RUN_STARTED, run_id=run_id, **started_fields)
        for warning in plan.warnings:
            sink.emit(ev.PLAN_WARNING, message=warning)
        kept_dir = log_file.with_name(log_file.name + ".kept") if log_file else None
        context = RunContext(events=sink, cancel=cancel, world=world, run_id=run_id,
                             kept_dir=kept_dir, locks=locks,
                             hardware=hardware_control(plan, world))
        with _sigterm_sets(cancel):
            if dispatch is not None:
                results, interrupted = dispatch(context)
            else:
                scheduler = _Scheduler(plan, context, gate)
                interrupted = scheduler.run()
                results = scheduler.results
        devices = tuple(results[d.device] for d in plan.devices)
        result = RunResult(run_id=run_id, plan=plan, devices=devices,
                           duration_s=time.monotonic() - started, interrupted=interrupted,
                           log_file=log_file)
        sink.emit(ev.RUN_FINISHED, run_id=run_id,
                  devices=[_device_summary(d) for d in devices], counts=result.counts(),
                  duration_ms=round(result.duration_s * 1000), exit_code=result.exit_code,
                  interrupted=interrupted,
                  **(seal.finished_fields() if seal is not None else {}))
        audit.close()
        if seal is not None:
            seal.seal(head=audit.head, lines=audit.seq, exit_code=result.exit_code)
        return result
    finally:
        if own_world and world is not None:
            world.close()
        audit.close()
