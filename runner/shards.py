"""A large rehearsal shared among worker processes, so it keeps pace with the line.

One interpreter runs one thread at a time: a rehearsal of many simulated
devices is bound by one core (the drivers and their simulated far ends all
hold the same interpreter lock), and falls behind the real run it stands for.
Where the rehearsal is the process's own (it built its simulated world), the
host has more than one core and the line is large, the devices are split
into groups that share nothing (no link, no ``after`` edge, no wiring), and
each group runs in a worker process forked from this one: it has the
compiled plan and the simulated world already, and runs its devices with the
same scheduler. Its records come back over a pipe and are emitted here, into
the one audit log, console and ``--json`` stream, in the order they arrive;
the log reads as if one process had run the line.

A worker stops on SIGTERM or Ctrl-C like the run itself (its devices stop at
their next progress report); the host forwards its own cancel to every
worker. A worker that ends without its results (killed, crashed) fails every
device it had not finished, named, and never reports one ok. See
docs/architecture.md, "Rehearsals on more than one core".
"""

from __future__ import annotations

import io
import os
import pickle
import selectors
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from types import FrameType, MappingProxyType
from typing import Any, Protocol

from runner import events as ev
from runner.device_session import RunContext
from runner.logging import AuditLog
from runner.model import frozen_map
from runner.plan import DevicePlan, DeviceResult, Outcome, Plan

__all__ = ["Scheduler", "SchedulerFactory", "WorkerLoss", "groups_of", "processes_for",
           "run_in_workers", "shares_of"]

#: Link kinds whose simulated far end the world makes when a session first opens it
#: (transports/sim/endpoints.py: a USB backend, a serial URL handler, an I2C bus
#: object, a virtual CAN node and its thread, a memory), so a worker makes its own
#: after the fork: every built-in kind. A plugin's far end may be made otherwise
#: (before the fork, or served from this process), so a line with one stays here.
_PORTABLE_KINDS = frozenset({"stlink", "dfu", "i2c", "sim", "uart", "can"})
#: A line smaller than this runs in one process: a worker's fork and the hand-over
#: of its records cost more than a few devices save.
MIN_DEVICES_PER_WORKER = 16
#: Two workers per core: a worker's devices still share one interpreter lock, and
#: the fewer threads queue for it, the sooner one waking from a simulated wait gets
#: it; the kernel shares cores among processes more evenly than one interpreter
#: hands its lock round (64 ST-Link devices on two cores: 1.37-1.40 T with four
#: workers, 1.39-1.58 T with two).
WORKERS_PER_CORE = 2
_HEADER = 4


def processes_for(plan: Plan, *, cores: int | None = None) -> int:
    """How many worker processes a rehearsal of ``plan`` runs its devices in (1: this one)."""
    wanted = plan.simulation.processes
    if wanted == 1 or not hasattr(os, "fork"):
        return 1
    if not all(device.kind in _PORTABLE_KINDS for device in plan.devices):
        return 1
    if plan.execution.fail_fast:
        return 1  # one device's failure stops the others: one scheduler decides
    groups = len(groups_of(plan.devices))
    if wanted is not None:
        return max(1, min(wanted, groups))
    available = cores if cores is not None else _cores()
    if available < 2:
        return 1  # one core: the host's share of the records would only be added
    by_size = len(plan.devices) // MIN_DEVICES_PER_WORKER
    return max(1, min(WORKERS_PER_CORE * available, by_size, groups,
                      plan.execution.max_parallel))


def _cores() -> int:
    """The cores this process may run on (its affinity where the OS has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def groups_of(devices: Sequence[DevicePlan]) -> list[list[DevicePlan]]:
    """Devices that share a resource, an ``after`` edge or wiring stay together (plan order)."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def join(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    names = {device.device for device in devices}
    for device in devices:
        node = f"device:{device.device}"
        join(node, f"resource:{device.resource}")
        for upstream in device.after:
            if upstream in names:
                join(node, f"device:{upstream}")
        if device.wiring is not None:
            join(node, "wiring")  # hub ports and GPIO lines are the host's, shared
    groups: dict[str, list[DevicePlan]] = {}
    for device in devices:
        groups.setdefault(find(f"device:{device.device}"), []).append(device)
    return list(groups.values())


def _balanced(devices: Sequence[DevicePlan], count: int) -> list[list[DevicePlan]]:
    """``devices``' groups dealt into ``count`` shards of about equal estimated time, each
    shard in plan order."""
    groups = groups_of(devices)
    shards: list[list[DevicePlan]] = [[] for _ in range(count)]
    load = [0.0] * count
    for group in sorted(groups, key=lambda g: -sum(d.estimate_s for d in g)):
        index = load.index(min(load))
        shards[index].extend(group)
        load[index] += sum(d.estimate_s for d in group) or len(group)
    order = {device.device: i for i, device in enumerate(devices)}
    return [sorted(shard, key=lambda d: order[d.device]) for shard in shards if shard]


def shares_of(sizes: Sequence[int], limit: int) -> list[int]:
    """``max-parallel`` split over workers of ``sizes`` devices: in proportion, at least
    one each, never more than a worker's devices, and no more than ``limit`` in all
    (unless there are more workers than that)."""
    if limit >= sum(sizes):
        return list(sizes)
    shares = [max(1, limit * size // sum(sizes)) for size in sizes]
    left = limit - sum(shares)
    for index in sorted(range(len(sizes)), key=lambda i: sizes[i] - shares[i], reverse=True):
        if left <= 0:
            break
        if shares[index] < sizes[index]:
            shares[index] += 1
            left -= 1
    return shares


class Scheduler(Protocol):
    """What a worker runs its share with (the executor's scheduler)."""

    results: dict[str, DeviceResult]

    def run(self) -> bool: ...

    @property
    def stopped_by(self) -> str | None:
        """The environment failure that stopped it (a kept backup that could not be saved)."""


class RunStop(Protocol):
    """The run's stop: the first environment failure, which cancels the whole run."""

    @property
    def reason(self) -> str | None: ...

    def environment(self, error: BaseException) -> None: ...


SchedulerFactory = Callable[[Plan, RunContext], Scheduler]


class WorkerLoss(Exception):
    """A worker process ended without handing back its devices' results."""


@dataclass(slots=True)
class _Worker:
    """A forked worker as the host follows it (runtime state, not the model)."""

    pid: int
    fd: int
    devices: tuple[str, ...]
    #: its pipe is closed / it has been reaped: its fd and pid may be another's now
    closed: bool = False
    reaped: bool = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def reap(self) -> int:
        """Wait for the worker to end; its wait status."""
        _, status = os.waitpid(self.pid, 0)
        self.reaped = True
        return status


class _PipeSink:
    """A worker's event sink: records pickled and handed to the host's pipe.

    The devices' threads only queue their frames; one writer thread sends
    them, as many as are waiting in one write. A device then never waits on
    the pipe, nor for the interpreter lock back after a write released it.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._frames: list[bytes] = []
        self._closed = False
        self._ready = threading.Condition()
        self._writer = threading.Thread(target=self._write_frames, name="worker-records",
                                        daemon=True)
        self._writer.start()

    def emit(self, event: str, **fields: Any) -> None:
        # JSON-ready fields: the plain pickler takes them
        self._queue(pickle.dumps(("event", event, fields), protocol=pickle.HIGHEST_PROTOCOL))

    def send(self, message: object) -> None:
        """Any message, the model's read-only mappings included."""
        out = io.BytesIO()
        _ModelPickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
        self._queue(out.getvalue())

    def _queue(self, data: bytes) -> None:
        with self._ready:
            self._frames.append(len(data).to_bytes(_HEADER, "little"))
            self._frames.append(data)
            self._ready.notify()

    def close(self) -> None:
        """Send everything queued, then end the writer."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._writer.join()

    def _write_frames(self) -> None:
        while True:
            with self._ready:
                while not self._frames and not self._closed:
                    self._ready.wait()
                frames, self._frames = self._frames, []
                closing = self._closed
            view = memoryview(b"".join(frames))
            while view:
                view = view[os.write(self._fd, view):]
            if closing and not frames:
                return


class _ModelPickler(pickle.Pickler):
    """Pickles a read-only mapping (:func:`runner.model.frozen_map`) as one again."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, MappingProxyType):
            return frozen_map, (dict(obj),)
        return NotImplemented


def run_in_workers(plan: Plan, context: RunContext, count: int, *,
                   scheduler: SchedulerFactory, stop: RunStop,
                   ) -> tuple[dict[str, DeviceResult], bool]:
    """Run ``plan``'s devices in ``count`` forked workers; (results, interrupted).

    ``scheduler(plan, context)`` builds the scheduler a worker runs its share
    with (the executor's own). ``stop`` is the run's: an environment failure in
    a worker stops the whole run through it, as it would in one process.
    """
    shards = _balanced(plan.devices, count)
    shares = shares_of([len(shard) for shard in shards], plan.execution.max_parallel)
    workers: list[_Worker] = []
    try:
        for shard, share in zip(shards, shares, strict=True):
            workers.append(_fork(plan, context, shard, share, scheduler))
        return _follow(plan, context, workers, stop)
    except BaseException:
        _stop_all(workers)  # the host cannot follow them any more: none is left behind
        raise


def _stop_all(workers: list[_Worker]) -> None:
    """End every worker still running and reap it (the host is giving up on them)."""
    for worker in workers:
        if not worker.reaped:
            with suppress(OSError):
                os.kill(worker.pid, signal.SIGKILL)
        with suppress(OSError):
            worker.close()
        if not worker.reaped:
            with suppress(ChildProcessError):
                worker.reap()


def _fork(plan: Plan, context: RunContext, shard: list[DevicePlan], share: int,
          scheduler: SchedulerFactory) -> _Worker:
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12 warns on forking a process with threads (here the console's):
        # the worker touches none of their state, only its own pipe and devices.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the worker: never returns
        status = 1
        try:
            os.close(read_end)
            _die_with_host()
            status = _work(plan, context, shard, share, scheduler, write_end)
        except BaseException:  # a bug: said on stderr; the host fails the devices
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(status)
    os.close(write_end)
    return _Worker(pid=pid, fd=read_end, devices=tuple(d.device for d in shard))


def _die_with_host() -> None:
    """Linux: the worker gets SIGTERM if the host process dies first."""
    with suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _work(plan: Plan, context: RunContext, shard: list[DevicePlan], share: int,
          scheduler: SchedulerFactory, fd: int) -> int:
    cancel = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        cancel.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, handler)
    if context.cancel.is_set():  # a signal that came before this handler, to the host's
        cancel.set()
    sink = _PipeSink(fd)
    mine = replace(plan, devices=tuple(shard),
                   execution=replace(plan.execution, max_parallel=share))
    work = scheduler(mine, replace(context, events=sink, cancel=cancel))
    try:
        interrupted = work.run()
        sink.send(("results", work.results, interrupted, work.stopped_by))
    finally:
        sink.close()
    return 0


def _follow(plan: Plan, context: RunContext, workers: list[_Worker],
            stop: RunStop) -> tuple[dict[str, DeviceResult], bool]:
    results: dict[str, DeviceResult] = {}
    interrupted = False
    cancel_sent = False
    started: set[str] = set()
    finished: set[str] = set()

    def cancel_all() -> None:
        """Once: ``run.interrupted`` for the whole run, and every worker told to stop."""
        nonlocal cancel_sent
        if cancel_sent or not context.cancel.is_set():
            return
        cancel_sent = True
        why = stop.reason
        context.events.emit(ev.RUN_INTERRUPTED, reason=f"stopped: {why}" if why else
                            "cancelled", running=sorted(started - finished))
        for worker in workers:
            with suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)

    with selectors.DefaultSelector() as selector:
        buffers: dict[int, bytearray] = {}
        for worker in workers:
            selector.register(worker.fd, selectors.EVENT_READ, worker)
            buffers[worker.fd] = bytearray()
        open_workers = len(workers)
        while open_workers:
            cancel_all()
            for key, _ in selector.select(timeout=0.1):
                worker = key.data
                chunk = os.read(worker.fd, 1 << 16)
                if not chunk:
                    selector.unregister(worker.fd)
                    open_workers -= 1
                    continue
                buffer = buffers[worker.fd]
                buffer += chunk
                records: list[tuple[str, dict[str, Any]]] = []
                for message in _messages(buffer):
                    kind = message[0]
                    if kind == "event":
                        _, event, fields = message
                        if event == ev.RUN_INTERRUPTED:
                            continue  # the host says it once, for the whole run
                        if event == ev.DEVICE_STARTED:
                            started.add(fields["device"])
                        elif event == ev.DEVICE_FINISHED:
                            finished.add(fields["device"])
                        records.append((event, fields))
                    elif kind == "results":
                        _, theirs, was_interrupted, stopped_by = message
                        results.update(theirs)
                        interrupted = interrupted or was_interrupted
                        if stopped_by is not None:
                            stop.environment(RuntimeError(stopped_by))
                _emit_all(context.events, records)
        cancel_all()  # a stop the last worker to end brought
    for worker in workers:
        worker.close()
        status = worker.reap()
        if any(name not in results for name in worker.devices):
            _fail_unfinished(plan, context, worker, results, _ended(status))
    if cancel_sent:
        interrupted = True
    return results, interrupted


def _emit_all(sink: ev.EventSink, records: list[tuple[str, dict[str, Any]]]) -> None:
    """What one read brought, into the run's log as one batch (one write per output)."""
    if isinstance(sink, AuditLog):
        sink.emit_all(records)
        return
    for event, fields in records:
        sink.emit(event, **fields)


def _messages(buffer: bytearray) -> Iterator[Any]:
    while len(buffer) >= _HEADER:
        size = int.from_bytes(buffer[:_HEADER], "little")
        if len(buffer) < _HEADER + size:
            return
        message = pickle.loads(buffer[_HEADER:_HEADER + size])
        del buffer[:_HEADER + size]
        yield message


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _fail_unfinished(plan: Plan, context: RunContext, worker: _Worker,
                     results: dict[str, DeviceResult], how: str) -> None:
    """A lost worker's unfinished devices fail: whether they began is not known here
    (their last records may have died with the worker), so none is called skipped."""
    for name in worker.devices:
        if name in results:
            continue
        device = plan.device(name)
        why = f"the worker process running it ended ({how}) before its outcome was known"
        results[name] = DeviceResult(device=name, outcome=Outcome.FAILED, error=why,
                                     error_type=WorkerLoss.__name__, error_category="internal")
        context.events.emit(ev.DEVICE_FINISHED, device=name, transport=device.link,
                            kind=device.kind, outcome=Outcome.FAILED.value, duration_ms=0,
                            bytes=0, error=why, error_type=WorkerLoss.__name__,
                            error_category="internal")
