"""Devices alike share their compiled tasks; what each device reads is still its own."""

from __future__ import annotations

import io
import json

from plan_builders import device, manifest

from runner.compiler import compile_plan
from runner.model import Location, RecoveryPolicy
from runner.plan import DeviceTasks, Plan, Task
from runner.render import render_json, write_json


def line_plan(boot, app) -> Plan:
    devices = [device(f"dev-{i}", after=[f"dev-{i - 1}"] if i % 3 else []) for i in range(7)]
    devices.append(device("own-rate", options={"rate": 50_000}))
    devices.append(device("careful", recovery="careful"))
    return compile_plan(manifest(devices, images=[boot, app],
                                 recovery=[RecoveryPolicy(name="careful", retries=3)]))


def test_devices_alike_share_one_task_group(boot, app) -> None:
    plan = line_plan(boot, app)
    groups = {d.device: d.tasks.group for d in plan.devices if isinstance(d.tasks, DeviceTasks)}
    assert len(groups) == len(plan.devices)
    alike = {id(groups[f"dev-{i}"]) for i in range(7)}
    assert len(alike) == 1
    assert id(groups["own-rate"]) not in alike and id(groups["careful"]) not in alike


def test_each_device_reads_its_own_tasks(boot, app) -> None:
    plan = line_plan(boot, app)
    first, other = plan.device("dev-0"), plan.device("dev-4")
    assert [t.id for t in other.tasks] == [f"dev-4/{i}-{t.kind.value}"
                                           for i, t in enumerate(first.tasks)]
    assert all(t.device == "dev-4" for t in other.tasks)
    connect = other.tasks[0]
    assert isinstance(connect, Task) and connect.location == other.location
    assert other.tasks[1].location == first.tasks[1].location != Location(file="", line=0,
                                                                           column=0)
    assert [t.recovery for t in plan.device("careful").tasks] \
        == [plan.device("careful").tasks[0].recovery] * len(first.tasks)
    assert plan.device("careful").tasks[0].recovery is not None
    assert first.tasks[0].recovery is None


def test_shared_tasks_behave_as_a_tuple_of_tasks(boot, app) -> None:
    plan = line_plan(boot, app)
    tasks = plan.device("dev-2").tasks
    as_tuple = tuple(tasks)
    assert len(tasks) == len(as_tuple) and tasks[-1] == as_tuple[-1]
    assert tasks[1:3] == as_tuple[1:3]
    assert tasks == as_tuple and hash(tasks) == hash(as_tuple)
    assert plan.device("dev-2").estimate_s == sum(t.estimate_s for t in as_tuple)
    assert plan.device("dev-2").bytes == sum(t.bytes for t in as_tuple)
    assert tasks != plan.device("dev-3").tasks


def test_the_streamed_lines_are_each_devices_json_exactly(boot, app) -> None:
    plan = line_plan(boot, app)
    out = io.StringIO()
    write_json(plan, out)
    text = out.getvalue()
    expected = [json.dumps(d, ensure_ascii=False) for d in render_json(plan)["devices"]]
    lines = [line.strip().rstrip(",") for line in text.splitlines()]
    start = lines.index('"devices": [')
    assert lines[start + 1:start + 1 + len(expected)] == expected
    assert json.loads(text) == render_json(plan)
