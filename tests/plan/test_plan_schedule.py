"""Scheduling on its own: cycles, stages and the simulated run, on plain jobs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from runner.schedule import build_stages, find_cycle, simulate_schedule


@dataclass(frozen=True)
class Job:
    device: str
    estimate_s: float
    resource: str = ""
    after: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.resource:
            object.__setattr__(self, "resource", f"own:{self.device}")


def test_find_cycle_reads_in_the_after_direction():
    assert find_cycle({"a": ("b",), "b": ("c",), "c": ("a",)}) in (
        ("a", "b", "c", "a"), ("b", "c", "a", "b"), ("c", "a", "b", "c"))


def test_find_cycle_is_none_for_a_dag_and_ignores_unknown_names():
    assert find_cycle({"a": ("b", "zz"), "b": ()}) is None


def test_stages_are_layers_in_manifest_order():
    jobs = [Job("c", 1, after=("a",)), Job("a", 1), Job("b", 1)]
    assert [s.devices for s in build_stages(jobs)] == [("a", "b"), ("c",)]


def test_stages_split_a_layer_by_resource_keeping_manifest_order():
    jobs = [Job("a", 1, "bus"), Job("b", 1, "bus"), Job("c", 1, "bus"), Job("d", 1)]
    assert [s.devices for s in build_stages(jobs)] == [("a", "d"), ("b",), ("c",)]
    assert [s.index for s in build_stages(jobs)] == [0, 1, 2]


def test_independent_jobs_run_side_by_side_up_to_the_worker_count():
    jobs = [Job(n, 2.0) for n in "abcd"]
    assert simulate_schedule(jobs, 4).makespan == 2.0
    timeline = simulate_schedule(jobs, 2)
    assert timeline.makespan == 4.0
    assert timeline.starts == {"a": 0.0, "b": 0.0, "c": 2.0, "d": 2.0}


def test_a_shared_resource_serialises_in_manifest_order():
    jobs = [Job("a", 1.0, "bus"), Job("b", 3.0, "bus"), Job("c", 0.5)]
    timeline = simulate_schedule(jobs, 8)
    assert timeline.starts == {"a": 0.0, "c": 0.0, "b": 1.0}
    assert timeline.makespan == 4.0
    assert timeline.critical == ("a", "b")


def test_after_waits_for_the_last_predecessor_which_is_on_the_critical_path():
    jobs = [Job("slow", 5.0), Job("fast", 1.0), Job("gw", 2.0, after=("fast", "slow"))]
    timeline = simulate_schedule(jobs, 8)
    assert timeline.starts["gw"] == 5.0
    assert timeline.critical == ("slow", "gw")


def test_ready_jobs_start_in_manifest_order_when_workers_are_scarce():
    jobs = [Job("a", 1.0), Job("b", 1.0), Job("c", 1.0)]
    timeline = simulate_schedule(jobs, 1)
    assert [timeline.starts[n] for n in "abc"] == [0.0, 1.0, 2.0]
    assert timeline.critical == ("a", "b", "c")


def test_no_jobs_take_no_time():
    timeline = simulate_schedule([], 4)
    assert timeline.makespan == 0.0 and timeline.critical == ()


def test_fewer_than_one_worker_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        simulate_schedule([Job("a", 1.0)], 0)
