"""Properties of the compiler over random device graphs (hypothesis)."""

from __future__ import annotations

import re
import tempfile
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_builders import device, manifest, standard_recipe, write_image

from runner.compiler import compile_plan
from runner.errors import PlanError
from runner.schedule import simulate_schedule

CHIPS = ("stm32g071rb", "stm32f103cb", "stm32f411re", "stm32l476rg")
LINKS = ("bus-a", "bus-b", "probe-1", "probe-2", "probe-3")
COMMON = settings(max_examples=60, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    return [write_image(folder, "boot", 4096, 0x0800_0000, seed=1),
            write_image(folder, "app", 9000, 0x0800_4000, seed=2)]


@st.composite
def dags(draw):
    """Devices in a random manifest order with random `after` edges that form no cycle."""
    count = draw(st.integers(min_value=1, max_value=12))
    order = draw(st.permutations(range(count)))  # order[k]: topological rank of device k
    devices = []
    for k in range(count):
        earlier = [j for j in range(count) if order[j] < order[k]]
        after = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) \
            if earlier else []
        devices.append(device(f"d{k}", chip=draw(st.sampled_from(CHIPS)),
                              link=draw(st.sampled_from(LINKS)),
                              after=[f"d{j}" for j in after]))
    return devices


@st.composite
def graphs(draw):
    """Devices with arbitrary `after` edges (cycles allowed)."""
    count = draw(st.integers(min_value=1, max_value=8))
    names = [f"d{k}" for k in range(count)]
    return [device(name, link=f"l{k}",
                   after=draw(st.lists(st.sampled_from(names), unique=True, max_size=3)))
            for k, name in enumerate(names)]


def has_cycle(after: dict[str, tuple[str, ...]]) -> bool:
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        state[node] = 1
        for nxt in after[node]:
            if state.get(nxt) == 1 or (nxt not in state and visit(nxt)):
                return True
        state[node] = 2
        return False

    return any(node not in state and visit(node) for node in after)


@COMMON
@given(devices=dags(), workers=st.integers(min_value=1, max_value=4))
def test_stages_respect_every_after_edge(images, devices, workers):
    plan = compile_plan(manifest(devices, images=images), max_parallel=workers)
    stage_of = {name: stage.index for stage in plan.stages for name in stage.devices}
    assert sorted(stage_of) == sorted(d.name for d in devices)
    for d in devices:
        for before in d.after:
            assert stage_of[d.name] > stage_of[before]


@COMMON
@given(devices=dags())
def test_no_stage_holds_two_devices_on_one_resource(images, devices):
    plan = compile_plan(manifest(devices, images=images))
    for stage in plan.stages:
        resources = [plan.device(name).resource for name in stage.devices]
        assert len(resources) == len(set(resources))


@COMMON
@given(devices=dags(), workers=st.integers(min_value=1, max_value=4))
def test_the_schedule_never_starts_a_device_before_its_predecessors_end(images, devices,
                                                                        workers):
    plan = compile_plan(manifest(devices, images=images), max_parallel=workers)
    timeline = simulate_schedule(plan.devices, workers)
    assert timeline.makespan == pytest.approx(plan.estimate_s)
    for d in plan.devices:
        for before in d.after:
            assert timeline.starts[d.device] >= timeline.ends[before]
    spans = [(timeline.starts[d.device], timeline.ends[d.device], d.resource)
             for d in plan.devices]
    for i, (start, end, resource) in enumerate(spans):
        assert sum(1 for s, e, _ in spans if s <= start < e) <= workers
        for other_start, other_end, other_resource in spans[i + 1:]:
            if start < other_end and other_start < end:
                assert resource != other_resource


@COMMON
@given(devices=dags())
def test_the_critical_path_ends_with_the_device_that_ends_last(images, devices):
    plan = compile_plan(manifest(devices, images=images))
    timeline = simulate_schedule(plan.devices, plan.execution.max_parallel)
    chain = list(dict.fromkeys(task.split("/")[0] for task in plan.critical_path))
    assert timeline.ends[chain[-1]] == pytest.approx(plan.estimate_s)
    for earlier, later in pairwise(chain):
        assert timeline.starts[later] == pytest.approx(timeline.ends[earlier])


@COMMON
@given(devices=graphs())
def test_a_graph_with_a_cycle_is_rejected_naming_a_real_cycle(images, devices):
    after = {d.name: d.after for d in devices}
    m = manifest(devices, images=images)
    if not has_cycle(after):
        compile_plan(m)
        return
    with pytest.raises(PlanError) as caught:
        compile_plan(m)
    found = re.search(r"in a cycle: (\S+(?: → \S+)+)", str(caught.value))
    assert found, str(caught.value)
    cycle = found.group(1).split(" → ")
    assert cycle[0] == cycle[-1]
    for waiting, awaited in pairwise(cycle):
        assert awaited in after[waiting]


@settings(max_examples=25, deadline=None)
@given(small=st.integers(min_value=1, max_value=30_000),
       extra=st.integers(min_value=1, max_value=30_000))
def test_estimates_grow_with_the_bytes_written(small, extra):
    with tempfile.TemporaryDirectory() as folder:
        plans = []
        for size in (small, small + extra):
            image = write_image(Path(folder), f"img{size}", size, 0x0800_0000)
            plans.append(compile_plan(manifest([device("s1", chip="stm32l476rg")],
                                               images=[image],
                                               recipes=[standard_recipe([image.name])])))
    lesser, greater = (p.device("s1") for p in plans)
    assert greater.bytes >= lesser.bytes
    for a, b in zip(lesser.tasks, greater.tasks, strict=True):
        assert b.estimate_s >= a.estimate_s
    assert greater.estimate_s >= lesser.estimate_s
