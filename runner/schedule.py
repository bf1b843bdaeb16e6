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
from collections.abc import Mapping, Sequence
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
    graph = {name: [d for d in deps if d in after] for name, deps in after.items()}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        # graphlib lists each node before the nodes that come after it; reverse it.
        return tuple(reversed(error.args[1]))
    return None


def build_stages(devices: Sequence[Schedulable]) -> tuple[Stage, ...]:
    """Topological layers in manifest order, split so resources are never shared.

    Within one layer the k-th device (in manifest order) of each resource goes
    to the layer's k-th stage, so a stage holds at most one device per
    resource and a device's stage comes after those of every device it waits for.
    ``after`` names not among ``devices`` are ignored.
    """
    order = {d.device: i for i, d in enumerate(devices)}
    by_name = {d.device: d for d in devices}
    sorter = graphlib.TopologicalSorter(
        {d.device: [a for a in d.after if a in order] for d in devices})
    sorter.prepare()
    stages: list[Stage] = []
    while sorter.is_active():
        layer = sorted(sorter.get_ready(), key=order.__getitem__)
        per_resource: dict[str, int] = {}
        rows: list[list[str]] = []
        for name in layer:
            slot = per_resource.get(by_name[name].resource, 0)
            per_resource[by_name[name].resource] = slot + 1
            if slot == len(rows):
                rows.append([])
            rows[slot].append(name)
        for row in rows:
            stages.append(Stage(index=len(stages), devices=tuple(row)))
        sorter.done(*layer)
    return tuple(stages)


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
    order = {d.device: i for i, d in enumerate(devices)}
    waiting = {d.device: sum(1 for a in set(d.after) if a in order) for d in devices}
    dependents: dict[str, list[str]] = {d.device: [] for d in devices}
    for d in devices:
        for a in set(d.after):
            if a in order:
                dependents[a].append(d.device)
    queues: dict[str, list[int]] = {}      # resource → ready devices by order
    free_heads: list[tuple[int, str]] = []  # (order, resource), validated lazily
    busy: set[str] = set()
    running: list[tuple[float, int, str]] = []
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    cause: dict[str, str | None] = {}

    def make_ready(index: int) -> None:
        resource = devices[index].resource
        heapq.heappush(queues.setdefault(resource, []), index)
        if resource not in busy:
            heapq.heappush(free_heads, (queues[resource][0], resource))

    for name, count in waiting.items():
        if count == 0:
            make_ready(order[name])

    now = 0.0
    just_ended: list[str] = []
    while True:
        while free_heads and len(running) < max_parallel:
            head, resource = heapq.heappop(free_heads)
            queue = queues.get(resource)
            if resource in busy or not queue or queue[0] != head:
                continue
            index = heapq.heappop(queue)
            device = devices[index]
            busy.add(resource)
            starts[device.device] = now
            heapq.heappush(running, (now + device.estimate_s, index, device.device))
            cause[device.device] = _release(device, just_ended, by_order=devices, order=order)
        if not running:
            break
        now, _, name = heapq.heappop(running)
        just_ended = [name]
        while running and running[0][0] == now:
            just_ended.append(heapq.heappop(running)[2])
        for ended in just_ended:
            ends[ended] = now
            resource = devices[order[ended]].resource
            busy.discard(resource)
            if queues.get(resource):
                heapq.heappush(free_heads, (queues[resource][0], resource))
            for dependent in dependents[ended]:
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    make_ready(order[dependent])

    makespan = max(ends.values(), default=0.0)
    chain: list[str] = []
    last = max(ends, key=lambda n: (ends[n], -order[n]), default=None)
    while last is not None:
        chain.append(last)
        last = cause[last]
    return Timeline(starts=starts, ends=ends, makespan=makespan,
                    critical=tuple(reversed(chain)))


def _release(device: Schedulable, just_ended: Sequence[str], *,
             by_order: Sequence[Schedulable], order: Mapping[str, int]) -> str | None:
    """Which of the devices that just ended let ``device`` start (None at time 0)."""
    if not just_ended:
        return None
    for name in just_ended:
        if name in device.after:
            return name
    for name in just_ended:
        if by_order[order[name]].resource == device.resource:
            return name
    return just_ended[0]
