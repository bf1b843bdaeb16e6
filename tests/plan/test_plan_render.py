"""The plan's renderings: JSON and table golden files, DOT accepted by Graphviz.

Golden files live in ``tests/plan/golden/``. After a deliberate change to a
rendering, regenerate them and review the diff::

    FLASHRUNNER_REGEN_GOLDEN=1 python -m pytest tests/plan/test_plan_render.py
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import pytest
from plan_builders import assert_matches_golden, device, manifest, recipe, standard_recipe

from runner.compiler import compile_plan
from runner.model import (
    EraseScope,
    EraseStep,
    LinkSpec,
    OptionBytesStep,
    RecoveryPolicy,
    ResetStep,
    VerifyMethod,
    VerifyStep,
    WriteStep,
    frozen_map,
)
from runner.plan import Plan
from runner.render import render_dot, render_json, render_table, write_json
from runner.units import format_bytes, format_seconds


@pytest.fixture
def demo_plan(boot, app, fake_kinds) -> Plan:
    """Two sensors on one bus, one on a probe, a gateway after them over a bootloader."""
    links = [LinkSpec(name="probe-a", kind="sim", options=frozen_map({"rate": 400_000})),
             LinkSpec(name="i2c-3", kind="sim", options=frozen_map({"bus": "i2c-3"})),
             LinkSpec(name="uart-a", kind="bootish")]
    gateway_recipe = recipe(
        EraseStep(scope=EraseScope.MASS), WriteStep(images=("boot",)),
        WriteStep(images=("app",)), VerifyStep(method=VerifyMethod.READBACK),
        OptionBytesStep(rdp=1), ResetStep(), name="gateway")
    devices = [
        device("sensor-1", chip="stm32f103cb", link="probe-a"),
        device("sensor-2", chip="stm32g071rb", link="i2c-3", options={"rate": 50_000}),
        device("sensor-3", chip="stm32f411re", link="i2c-3"),
        device("gateway", chip="stm32f411re", link="uart-a", recipe="gateway",
               after=["sensor-1", "sensor-2", "spare"]),
        device("spare", chip="stm32l476rg", link="probe-a"),
    ]
    m = manifest(devices, images=[boot, app], links=links,
                 recipes=[standard_recipe(), gateway_recipe],
                 recovery=[RecoveryPolicy(name="default", retries=2, backoff=0.5,
                                          on=frozenset({"timeout"}), actions=("reconnect",))],
                 name="widget-rev-b", max_parallel=4)
    return compile_plan(m, only=["sensor-1", "sensor-2", "sensor-3", "gateway"])


def test_json_rendering_matches_the_golden_file(demo_plan):
    text = json.dumps(render_json(demo_plan), indent=2, ensure_ascii=False) + "\n"
    assert_matches_golden("widget-rev-b.plan.json", text)


def test_table_rendering_matches_the_golden_file(demo_plan):
    assert_matches_golden("widget-rev-b.plan.txt", render_table(demo_plan))


def test_json_starts_with_its_format_version_and_has_no_absolute_paths(demo_plan, tmp_path):
    data = render_json(demo_plan)
    assert next(iter(data)) == "plan" and data["plan"] == 1
    text = json.dumps(data)
    assert str(tmp_path) not in text and "/nonexistent" not in text
    assert data["manifest"]["file"] == "widget-rev-b.yaml"


def test_json_writes_addresses_as_hex_strings(demo_plan):
    sensor = render_json(demo_plan)["devices"][0]
    assert sensor["chip"]["flash"]["base"] == "0x08000000"
    assert sensor["images"][0]["ranges"] == [["0x08000000", "0x08001000"]]
    erase = sensor["tasks"][1]
    assert erase["blocks"] == [{"index": 0, "count": 4, "start": "0x08000000",
                                "end": "0x08001000"},
                               {"index": 16, "count": 20, "start": "0x08004000",
                                "end": "0x08009000"}]


def test_json_is_the_same_for_the_same_plan(demo_plan):
    assert json.dumps(render_json(demo_plan)) == json.dumps(render_json(demo_plan))


def test_table_has_no_colour_codes_and_aligned_columns(demo_plan):
    table = render_table(demo_plan)
    assert "\x1b" not in table
    rows = [line for line in table.splitlines() if line.startswith("    sensor-")]
    assert len({line.index("stm32") for line in rows}) == 1


def test_dot_names_every_task_the_after_edges_and_the_resources(demo_plan):
    dot = render_dot(demo_plan)
    assert dot.startswith('digraph "plan widget-rev-b" {')
    for task in demo_plan.tasks:
        assert f'"{task.id}"' in dot
    assert '"sensor-1/4-reset" -> "gateway/0-connect"' in dot
    assert '"resource sim:i2c-3"' in dot


def test_dot_is_accepted_by_graphviz(demo_plan):
    result = run_dot(render_dot(demo_plan))
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout
    assert "Warning" not in result.stderr, result.stderr


@pytest.mark.parametrize(("size", "text"), [(512, "512 B"), (24 * 1024, "24.0 KiB"),
                                            (3 * 1024 * 1024 // 2, "1.50 MiB")])
def test_sizes_read_like_people_write_them(size, text):
    assert format_bytes(size) == text


@pytest.mark.parametrize(("seconds", "text"), [(0.05, "0.05 s"), (42.0, "42.0 s"),
                                               (125.0, "2 min 05 s")])
def test_durations_read_like_people_write_them(seconds, text):
    assert format_seconds(seconds) == text


def run_dot(text: str) -> subprocess.CompletedProcess[str]:
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz `dot` is not installed (apt-get install graphviz)")
    return subprocess.run([dot, "-Tsvg"], input=text, text=True, capture_output=True,
                          timeout=60, check=False)


def test_dot_escapes_quotes_and_backslashes_in_names(boot):
    odd = device('probe "A"\\1', link='link "x"')
    plan = compile_plan(manifest([odd], images=[boot], recipes=[standard_recipe(["boot"])]))
    assert run_dot(render_dot(plan)).returncode == 0


def test_an_empty_plan_renders_in_every_form():
    plan = compile_plan(manifest([]))
    assert "critical path: none" in render_table(plan)
    assert render_json(plan)["devices"] == []
    assert run_dot(render_dot(plan)).returncode == 0


def test_the_streamed_json_is_the_rendered_document(demo_plan: Plan) -> None:
    out = io.StringIO()
    write_json(demo_plan, out)
    assert json.loads(out.getvalue()) == render_json(demo_plan)
