"""The plan says what the run will do on each chip: checksum or read-back, which reset.

A line of real bootloader links, simulated: an F103 on a USART (v2.2 ROM, no
Get Checksum), an H743 on a USART with NRST wired (Get Checksum listed) and a
G071 on I2C (v1.2 ROM, Get Checksum listed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from plan_builders import assert_matches_golden, device, manifest, pattern, recipe

from runner import events as ev
from runner.compiler import compile_plan
from runner.errors import ManifestError, PlanError
from runner.launch import execute
from runner.manifest import load_manifest
from runner.model import ImageSpec, LinkSpec, VerifyMethod, VerifyStep, WriteStep, frozen_map
from runner.plan import Plan, ResetAction, TaskKind, VerifyAction
from runner.render import render_json, render_table
from transports.base import ResetMode

MANIFEST = """\
manifest: 1
name: per-chip
simulate: true
simulation:
  time-scale: 0
{simulation}
images:
  app: {{file: app.bin, address: 0x08000000}}
transports:
  uart-f1: {{kind: uart, port: /dev/ttyUSB0}}
  uart-h7: {{kind: uart, port: /dev/ttyUSB1, boot0: rts, reset: dtr}}
  i2c-1: {{kind: i2c, bus: 1}}
recipes:
  flash:
    - erase: {{scope: used}}
    - write: [app]
    - verify: {{method: {method}}}
    - reset: {{}}
devices:
  blue-pill: {{chip: stm32f103cb, transport: uart-f1, recipe: flash}}
  h7: {{chip: stm32h743zi, transport: uart-h7, recipe: flash}}
  g0: {{chip: stm32g071rb, transport: {{use: i2c-1, address: 0x51}}, recipe: flash}}
"""

#: The v3.1 Get list of an H7 ROM older than the database knows: no Get Checksum.
OLD_H7_ROM = """\
  devices:
    h7: {quirks: {commands: [0x00, 0x01, 0x02, 0x11, 0x21, 0x31, 0x44, 0x63, 0x73, 0x82, 0x92]}}
"""


def write_manifest(folder: Path, *, method: str = "auto", simulation: str = "") -> Path:
    (folder / "app.bin").write_bytes(pattern(6000, seed=3))
    path = folder / "per-chip.yaml"
    path.write_text(MANIFEST.format(method=method, simulation=simulation.rstrip("\n")),
                    encoding="utf-8")
    return path


def plan_of(folder: Path, **kwargs: str) -> Plan:
    return compile_plan(load_manifest(write_manifest(folder, **kwargs)))


def verify_via(plan: Plan, device: str) -> str:
    (task,) = [t for t in plan.device(device).tasks if t.kind is TaskKind.VERIFY]
    assert isinstance(task.action, VerifyAction)
    data = render_json(plan)
    (rendered,) = [t for d in data["devices"] if d["name"] == device for t in d["tasks"]
                   if t["id"] == task.id]
    return str(rendered["via"])


@pytest.mark.parametrize(("device", "via"), [("blue-pill", "readback"), ("h7", "checksum"),
                                             ("g0", "checksum")])
def test_verify_auto_is_planned_as_the_devices_link_and_rom_allow(tmp_path: Path, device: str,
                                                                   via: str) -> None:
    assert verify_via(plan_of(tmp_path), device) == via


def test_a_checksum_verify_is_estimated_at_the_roms_checksum_rate(tmp_path: Path) -> None:
    (tmp_path / "auto").mkdir()
    (tmp_path / "readback").mkdir()
    auto = plan_of(tmp_path / "auto")
    readback = plan_of(tmp_path / "readback", method="readback")
    (by_checksum,) = [t for t in auto.device("h7").tasks if t.kind is TaskKind.VERIFY]
    (by_reading,) = [t for t in readback.device("h7").tasks if t.kind is TaskKind.VERIFY]
    assert by_checksum.bytes == by_reading.bytes > 0
    assert by_checksum.estimate_s < by_reading.estimate_s / 10


@pytest.mark.parametrize(("device", "mode"), [("blue-pill", ResetMode.GO),
                                              ("h7", ResetMode.HARDWARE),
                                              ("g0", ResetMode.GO)])
def test_a_reset_without_mode_is_hardware_only_where_nrst_is_wired(tmp_path: Path, device: str,
                                                                    mode: ResetMode) -> None:
    action = plan_of(tmp_path).device(device).tasks[-1].action
    assert isinstance(action, ResetAction) and action.mode is mode


def test_the_plan_table_shows_checksum_and_read_back_per_device(tmp_path: Path) -> None:
    assert_matches_golden("per-chip.plan.txt", render_table(plan_of(tmp_path)))


def test_verify_by_checksum_on_an_f103_over_uart_is_a_located_manifest_error(
        tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(write_manifest(tmp_path, method="checksum"))
    ((line, column, where, message),) = [(i.line, i.column, i.where, i.message)
                                         for i in caught.value.issues]
    assert (line, column, where) == (17, 7, "recipes.flash[2].verify")
    assert message.startswith("a uart link to stm32f103cb (its ROM bootloader lists no Get "
                              "Checksum) cannot verify by checksum, but device blue-pill runs "
                              "this step over link uart-f1")
    assert "verify: {method: readback}" in message


def test_a_reset_mode_hardware_without_a_reset_line_names_the_modes_that_work(
        tmp_path: Path) -> None:
    path = write_manifest(tmp_path)
    path.write_text(path.read_text().replace("reset: {}", "reset: {mode: hardware}"))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    (message,) = [issue.message for issue in caught.value.issues
                  if "device blue-pill" in issue.message]
    assert "no reset line is wired" in message
    assert "use reset mode go, or leave the mode out (go here)" in message


def verify_records(plan: Plan, sink: ev.CapturingSink) -> dict[str, dict[str, object]]:
    return {r["device"]: r for r in sink.named(ev.STEP_FINISHED) if r["action"] == "verify"}


def test_the_run_verifies_each_device_the_way_the_plan_said(tmp_path: Path) -> None:
    plan = plan_of(tmp_path)
    sink = ev.CapturingSink()
    result = execute(plan, events=sink)
    assert result.ok, [(d.device, d.error) for d in result.devices]
    records = verify_records(plan, sink)
    assert {name: r["method"] for name, r in records.items()} == {
        name: verify_via(plan, name) for name in ("blue-pill", "h7", "g0")}
    assert all("planned_method" not in r for r in records.values())


def test_a_rom_older_than_the_database_reads_back_and_says_so(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, simulation=OLD_H7_ROM)
    sink = ev.CapturingSink()
    result = execute(plan, events=sink)
    assert result.ok, [(d.device, d.error) for d in result.devices]
    record = verify_records(plan, sink)["h7"]
    assert (record["method"], record["planned_method"]) == ("readback", "checksum")
    (warning,) = [w for w in sink.named(ev.PLAN_WARNING) if w.get("device") == "h7"]
    assert warning["step"] == "h7/3-verify"
    assert "planned as checksum but done as readback" in warning["message"]


def test_the_compiler_refuses_checksum_on_an_f103_over_uart_and_advises_read_back(
        boot: ImageSpec) -> None:
    # A manifest built in code skips the loader's checks; the compiler holds the same line.
    links = [LinkSpec(name="uart-f1", kind="uart", options=frozen_map({"port": "/dev/x"}))]
    steps = recipe(WriteStep(images=("boot",)), VerifyStep(method=VerifyMethod.CHECKSUM))
    m = manifest([device("blue-pill", chip="stm32f103cb", link="uart-f1")], images=[boot],
                 links=links, recipes=[steps])
    with pytest.raises(PlanError, match="uart link to stm32f103cb .*no Get Checksum") as caught:
        compile_plan(m)
    assert "verify: {method: readback}" in (caught.value.hint or "")
