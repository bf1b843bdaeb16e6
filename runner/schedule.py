"""Ordering devices: dependency cycles, stages, and the simulated schedule.

The compiler uses these on its :class:`~runner.plan.DevicePlan` s; they only
look at a device's name, ``after`` edges, exclusive ``resource`` and estimate.

* :func:`find_cycle` names a dependency cycle (``a → b → a``: ``a`` comes after
  ``b``, which comes after ``a``).
* :func:`build_stages` is the reading aid of ``flashrunner plan``: topological
  layers, each split so that no stage holds two devices on one resource.
* :func:`simulate_schedule` replays the executor's policy with the estimates
  (``max_parallel`` workers, one device per resource at a time, ``after``
  edges, ready devices started in manifest order) and yields the makespan and
  the chain of devices that decided it: the critical path.
"""

from __future__ import annotations

import graphlib
import heapq
import math
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from runner.plan import Stage

__all__ = ["Schedulable", "Timeline", "build_stages", "find_cycle", "simulate_schedule"]


class Schedulable(Protocol):
    """What scheduling needs to know about a device (a DevicePlan fits)."""

    @property
    def device(self) -> str: ...

    @property
    def after(self) -> tuple[str, ...]: ...

    @property
    def resource(self) -> str: ...

    @property
    def estimate_s(self) -> float: ...


def find_cycle(after: Mapping[str, Sequence[str]]) -> tuple[str, ...] | None:
    """A dependency cycle in ``after`` (name → names it comes after), or None.

    The cycle reads in the ``after`` direction and closes on its first name:
    ``("a", "b", "a")`` means a comes after b, and b after a. Names that are
    not keys are ignored (the caller reports unknown names).
    """
    graph = _Graph(list(after), after.values())
    if sum(len(layer) for layer in graph.layers()) == len(graph.names):
        return None
    # Only a manifest with a cycle pays for graphlib, which names one.
    named = {name: [d for d in deps if d in after] for name, deps in after.items()}
    try:
        graphlib.TopologicalSorter(named).prepare()
    except graphlib.CycleError as error:
        # graphlib lists each node before the nodes that come after it; reverse it.
        return tuple(reversed(error.args[1]))
    return None   # pragma: no cover - the layers found a cycle graphlib does not


class _Graph:
    """Devices as indices, ``after`` edges in flat integer arrays (a 50,000-device
    line costs a few bytes per edge, not an object per device)."""

    def __init__(self, names: Sequence[str], afters: Iterable[Sequence[str]]) -> None:
        self.names = names
        self.index = {name: i for i, name in enumerate(names)}
        #: What device i comes after: ``targets[starts[i]:starts[i + 1]]`` (known, once).
        self.starts = array("i", [0])
        self.targets = array("i")
        for deps in afters:
            first = len(self.targets)
            for name in deps:
                j = self.index.get(name)
                if j is not None and j not in self.targets[first:]:
                    self.targets.append(j)
            self.starts.append(len(self.targets))
        # The reverse edges: who comes after device j.
        counts = array("i", bytes(4 * (len(names) + 1)))
        for j in self.targets:
            counts[j + 1] += 1
        for i in range(len(names)):
            counts[i + 1] += counts[i]
        self.rstarts = array("i", counts)
        self.rtargets = array("i", bytes(4 * len(self.targets)))
        for i in range(len(names)):
            for j in self.targets[self.starts[i]:self.starts[i + 1]]:
                self.rtargets[counts[j]] = i
                counts[j] += 1

    def waits_for(self, i: int) -> array[int]:
        return self.targets[self.starts[i]:self.starts[i + 1]]

    def dependents(self, j: int) -> array[int]:
        return self.rtargets[self.rstarts[j]:self.rstarts[j + 1]]

    def waiting(self) -> array[int]:
        """How many devices each device waits for."""
        return array("i", (self.starts[i + 1] - self.starts[i] for i in range(len(self.names))))

    def layers(self) -> Iterator[list[int]]:
        """Topological layers, each in manifest order (a cycle's devices never come)."""
        waiting = self.waiting()
        layer = [i for i in range(len(self.names)) if waiting[i] == 0]
        while layer:
            yield layer
            ready: list[int] = []
            for j in layer:
                for i in self.dependents(j):
                    waiting[i] -= 1
                    if waiting[i] == 0:
                        ready.append(i)
            layer = sorted(ready)


def build_stages(devices: Sequence[Schedulable]) -> tuple[Stage, ...]:
    """Topological layers in manifest order, split so resources are never shared.

    Within one layer the k-th device (in manifest order) of each resource goes
    to the layer's k-th stage, so a stage holds at most one device per
    resource and a device's stage comes after those of every device it waits for.
    ``after`` names not among ``devices`` are ignored.
    """
    graph = _Graph([d.device for d in devices], (d.after for d in devices))
    stages: list[Stage] = []
    for layer in graph.layers():
        per_resource: dict[str, int] = {}
        rows: list[list[str]] = []
        for i in layer:
            resource = devices[i].resource
            slot = per_resource.get(resource, 0)
            per_resource[resource] = slot + 1
            if slot == len(rows):
                rows.append([])
            rows[slot].append(devices[i].device)
        for row in rows:
            stages.append(Stage(index=len(stages), devices=tuple(row)))
    return tuple(stages)


class _Times(Mapping[str, float]):
    """Seconds by device name, kept in an array (NaN: the device never started)."""

    def __init__(self, index: Mapping[str, int], seconds: array[float]) -> None:
        self._index = index
        self._seconds = seconds

    def __getitem__(self, name: str) -> float:
        value = self._seconds[self._index[name]]
        if math.isnan(value):
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name, i in self._index.items() if not math.isnan(self._seconds[i]))

    def __len__(self) -> int:
        return sum(1 for value in self._seconds if not math.isnan(value))


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """The outcome of :func:`simulate_schedule` (seconds from the start)."""

    starts: Mapping[str, float]
    ends: Mapping[str, float]
    makespan: float
    #: Devices whose chain decided the makespan, first to last.
    critical: tuple[str, ...]


def simulate_schedule(devices: Sequence[Schedulable], max_parallel: int) -> Timeline:
    """Replay the executor's policy with each device's estimate.

    A device starts when every device it comes after has ended, its resource
    is free and fewer than ``max_parallel`` devices run; among such devices
    the earliest in manifest order starts first. Each start remembers which
    ending released it (a device it waits for, else one on its resource, else
    any worker), and the critical path follows those links back from the
    device that ends last.
    """
    if max_parallel < 1:
        raise ValueError("max_parallel must be at least 1")
    count = len(devices)
    graph = _Graph([d.device for d in devices], (d.after for d in devices))
    waiting = graph.waiting()
    resource_ids: dict[str, int] = {}
    resource_of = array("i", (resource_ids.setdefault(d.resource, len(resource_ids))
                              for d in devices))
    queues: list[list[int]] = [[] for _ in resource_ids]   # ready devices by order
    free_heads: list[tuple[int, int]] = []   # (order, resource), validated lazily
    busy = bytearray(len(resource_ids))
    running: list[tuple[float, int]] = []
    nan = float("nan")
    starts = array("d", [nan]) * count
    ends = array("d", [nan]) * count
    cause = array("i", [-1]) * count

    def make_ready(index: int) -> None:
        resource = resource_of[index]
        heapq.heappush(queues[resource], index)
        if not busy[resource]:
            heapq.heappush(free_heads, (queues[resource][0], resource))

    for index in range(count):
        if waiting[index] == 0:
            make_ready(index)

    now = 0.0
    just_ended: list[int] = []
    ended_at: dict[int, int] = {}      # of just_ended: device -> its place
    first_on: dict[int, int] = {}      # of just_ended: resource -> the first there
    while True:
        while free_heads and len(running) < max_parallel:
            head, resource = heapq.heappop(free_heads)
            queue = queues[resource]
            if busy[resource] or not queue or queue[0] != head:
                continue
            index = heapq.heappop(queue)
            busy[resource] = 1
            starts[index] = now
            heapq.heappush(running, (now + devices[index].estimate_s, index))
            cause[index] = _release(index, just_ended, ended_at, first_on, graph,
                                    resource_of)
        if not running:
            break
        now, ended = heapq.heappop(running)
        just_ended = [ended]
        while running and running[0][0] == now:
            just_ended.append(heapq.heappop(running)[1])
        ended_at = {device: place for place, device in enumerate(just_ended)}
        first_on = {}
        for ended in just_ended:
            first_on.setdefault(resource_of[ended], ended)
        for ended in just_ended:
            ends[ended] = now
            resource = resource_of[ended]
            busy[resource] = 0
            if queues[resource]:
                heapq.heappush(free_heads, (queues[resource][0], resource))
            for dependent in graph.dependents(ended):
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    make_ready(dependent)

    finished = [i for i in range(count) if not math.isnan(ends[i])]
    makespan = max((ends[i] for i in finished), default=0.0)
    chain: list[str] = []
    last = max(finished, key=lambda i: (ends[i], -i), default=-1)
    while last >= 0:
        chain.append(devices[last].device)
        last = cause[last]
    return Timeline(starts=_Times(graph.index, starts), ends=_Times(graph.index, ends),
                    makespan=makespan, critical=tuple(reversed(chain)))


def _release(index: int, just_ended: Sequence[int], ended_at: Mapping[int, int],
             first_on: Mapping[int, int], graph: _Graph, resource_of: array[int]) -> int:
    """Which of the devices that just ended let device ``index`` start (-1 at time 0):
    the first of them it waits for, else the first on its resource, else the first.

    Lookups, not scans of ``just_ended``: a wave of equal estimates ends together,
    and each device of the next wave asks."""
    if not just_ended:
        return -1
    waited = [ended for ended in graph.waits_for(index) if ended in ended_at]
    if waited:
        return min(waited, key=ended_at.__getitem__)
    return first_on.get(resource_of[index], just_ended[0])
