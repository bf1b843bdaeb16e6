"""Across devices: `after` edges, cycles, shared resources, --only, the schedule."""

from __future__ import annotations

import pytest
from plan_builders import device, manifest

from runner.compiler import compile_plan
from runner.errors import PlanError


def stages(plan):
    return [list(stage.devices) for stage in plan.stages]


def test_devices_on_their_own_links_share_one_stage(boot, app):
    plan = compile_plan(manifest([device("a", link="l1"), device("b", link="l2")],
                                 images=[boot, app]))
    assert stages(plan) == [["a", "b"]]


def test_after_edges_put_a_device_in_a_later_stage(boot, app):
    devices = [device("gateway", link="l0", after=["s1", "s2"]),
               device("s1", link="l1"), device("s2", link="l2")]
    plan = compile_plan(manifest(devices, images=[boot, app]))
    assert stages(plan) == [["s1", "s2"], ["gateway"]]
    assert plan.device("gateway").after == ("s1", "s2")


def test_devices_sharing_a_resource_are_split_into_successive_stages(boot, app):
    devices = [device("a", link="bus"), device("b", link="bus"), device("c", link="solo")]
    plan = compile_plan(manifest(devices, images=[boot, app]))
    assert plan.device("a").resource == plan.device("b").resource == "sim:bus"
    assert stages(plan) == [["a", "c"], ["b"]]


def test_a_dependency_cycle_is_rejected_naming_it(boot, app):
    devices = [device("a", after=["b"]), device("b", after=["a"]), device("c")]
    with pytest.raises(PlanError, match=r"in a cycle: (a → b → a|b → a → b)"):
        compile_plan(manifest(devices, images=[boot, app]))


def test_a_device_after_itself_is_a_cycle(boot, app):
    with pytest.raises(PlanError, match="in a cycle: a → a"):
        compile_plan(manifest([device("a", after=["a"])], images=[boot, app]))


def test_after_naming_no_device_is_rejected(boot, app):
    with pytest.raises(PlanError, match="device a comes after 'ghost', which is not a device"):
        compile_plan(manifest([device("a", after=["ghost"])], images=[boot, app]))


def test_only_compiles_just_the_named_devices_in_manifest_order(boot, app):
    devices = [device("a", link="l1"), device("b", link="l2"), device("c", link="l3")]
    plan = compile_plan(manifest(devices, images=[boot, app]), only=["c", "a"])
    assert [d.device for d in plan.devices] == ["a", "c"]
    assert plan.not_selected == ("b",)


def test_only_does_not_pull_in_the_devices_a_selected_one_comes_after(boot, app):
    devices = [device("s1", link="l1"), device("gateway", link="l2", after=["s1"])]
    plan = compile_plan(manifest(devices, images=[boot, app]), only=["gateway"])
    assert [d.device for d in plan.devices] == ["gateway"]
    assert plan.device("gateway").after == ()
    assert "gateway: comes after s1, which is not selected: it starts without waiting" \
        in plan.warnings


def test_only_with_an_unknown_name_lists_the_valid_ones(boot, app):
    devices = [device("a", link="l1"), device("b", link="l2")]
    with pytest.raises(PlanError, match=r"unknown device 'x'.*choose among a, b"):
        compile_plan(manifest(devices, images=[boot, app]), only=["a", "x"])


def test_only_images_of_selected_devices_are_read(boot, app, tmp_path):
    from plan_builders import standard_recipe, write_image
    broken = write_image(tmp_path, "broken", 16, 0x0800_0000)
    broken.path.unlink()
    devices = [device("a", link="l1"), device("b", link="l2", recipe="other")]
    m = manifest(devices, images=[boot, app, broken],
                 recipes=[standard_recipe(), standard_recipe(["broken"], name="other")])
    plan = compile_plan(m, only=["a"])
    assert set(plan.image_digests) == {"boot", "app"}


def test_max_parallel_override_replaces_the_manifests(boot, app):
    plan = compile_plan(manifest([device("a")], images=[boot, app], max_parallel=8),
                        max_parallel=2)
    assert plan.execution.max_parallel == 2


def test_max_parallel_below_one_is_rejected(boot, app):
    with pytest.raises(PlanError, match="max-parallel must be at least 1"):
        compile_plan(manifest([device("a")], images=[boot, app]), max_parallel=0)


def test_one_worker_runs_devices_one_after_another(boot, app):
    devices = [device(f"d{i}", link=f"l{i}") for i in range(3)]
    m = manifest(devices, images=[boot, app])
    parallel = compile_plan(m)
    serial = compile_plan(m, max_parallel=1)
    each = parallel.device("d0").estimate_s
    assert parallel.estimate_s == pytest.approx(each)
    assert serial.estimate_s == pytest.approx(3 * each)


def test_the_critical_path_follows_after_edges_and_shared_resources(boot, app):
    devices = [device("a", link="bus"), device("b", link="bus"),
               device("c", link="solo", after=["b"]), device("d", link="other")]
    plan = compile_plan(manifest(devices, images=[boot, app]))
    chain = list(dict.fromkeys(task.split("/")[0] for task in plan.critical_path))
    assert chain == ["a", "b", "c"]
    assert plan.critical_path[:5] == tuple(t.id for t in plan.device("a").tasks)
    total = sum(plan.device(n).estimate_s for n in chain)
    assert plan.estimate_s == pytest.approx(total)


def test_an_empty_manifest_compiles_to_an_empty_plan():
    plan = compile_plan(manifest([]))
    assert plan.devices == () and plan.stages == () and plan.estimate_s == 0
    assert plan.critical_path == ()
