"""Executing plans against simulated chips: outcomes, ordering, the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_plans import FLASH, device, flash_at, image, plan, read_jsonl

from runner.events import CapturingSink
from runner.launch import execute
from runner.model import EraseScope, SimulatedDevice, SimulationSpec, VerifyMethod
from runner.plan import Outcome
from transports.chips import ChipDatabase
from transports.sim import Fault, SimChip, SimulationWorld
from transports.sim.world import DeviceProfile


def _concurrency(sink: CapturingSink, key: str) -> dict[str, int]:
    """Highest number of devices (per ``key`` value) between started and finished."""
    names = {d["device"]: d for d in sink.named("device.started")}
    live: dict[str, int] = {}
    peak: dict[str, int] = {}
    for event, fields in sink.events:
        if event not in ("device.started", "device.finished"):
            continue
        group = str(names[fields["device"]][key]) if key != "all" else "all"
        live[group] = live.get(group, 0) + (1 if event == "device.started" else -1)
        peak[group] = max(peak.get(group, 0), live[group])
    return peak


def test_clean_run_programs_every_chip_and_logs_identity_and_steps(
        tmp_path: Path, world: SimulationWorld) -> None:
    images = {"a": image(6000, 1), "b": image(3000, 2)}
    run = execute(plan([device(n, writes=((FLASH, data),)) for n, data in images.items()],
                       log_file=str(tmp_path / "logs" / "{name}-{run_id}.jsonl")),
                  world=world)
    assert run.exit_code == 0
    for name, data in images.items():
        assert flash_at(world.chips[name].flash, FLASH, len(data)) == data
    records = read_jsonl(run.log_file) if run.log_file else []
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    for name in images:
        identified = [r for r in records
                      if r["event"] == "device.identified" and r["device"] == name]
        assert identified[0]["uid"] == world.chips[name].uid_hex
        finished = [r for r in records if r["event"] == "step.finished" and r["device"] == name]
        assert [r["outcome"] for r in finished] == ["ok"] * 4
    assert records[-1]["event"] == "run.finished" and records[-1]["exit_code"] == 0


def test_max_parallel_bounds_how_many_devices_run_at_once(world: SimulationWorld) -> None:
    world.time_scale = 0.001
    sink = CapturingSink()
    devices = [device(f"d{i}", rate=2e5) for i in range(6)]
    run = execute(plan(devices, max_parallel=2), world=world, events=sink)
    assert run.ok
    assert _concurrency(sink, "all")["all"] <= 2


def test_devices_sharing_a_resource_never_overlap(world: SimulationWorld) -> None:
    world.time_scale = 0.001
    sink = CapturingSink()
    devices = [device(f"d{i}", bus="i2c-1" if i % 2 else "i2c-2", rate=2e5) for i in range(6)]
    run = execute(plan(devices, max_parallel=6), world=world, events=sink)
    assert run.ok
    assert set(_concurrency(sink, "resource").values()) == {1}


def test_a_device_starts_only_after_the_devices_it_comes_after(
        world: SimulationWorld) -> None:
    sink = CapturingSink()
    devices = [device("late", after=("early", "middle")), device("middle", after=("early",)),
               device("early")]
    assert execute(plan(devices), world=world, events=sink).ok
    order = [e for e, f in sink.events if e in ("device.started", "device.finished")]
    finished = [f["device"] for f in sink.named("device.finished")]
    started = [f["device"] for f in sink.named("device.started")]
    assert started == finished == ["early", "middle", "late"]
    assert order == ["device.started", "device.finished"] * 3


def test_permanent_fault_fails_its_device_and_its_dependents_only(
        world: SimulationWorld) -> None:
    world.profiles["bad"] = DeviceProfile(faults=(Fault(kind="nack", op="write", times=None),))
    devices = [device("bad"), device("good"), device("child", after=("bad",)),
               device("grandchild", after=("child",))]
    run = execute(plan(devices), world=world)
    outcomes = {d.device: d for d in run.devices}
    assert outcomes["bad"].outcome is Outcome.FAILED
    assert outcomes["bad"].error_type == "Refused"
    assert outcomes["bad"].error_category == "nack"
    assert outcomes["good"].outcome is Outcome.OK
    assert outcomes["child"].outcome is Outcome.UPSTREAM_FAILED
    assert outcomes["grandchild"].outcome is Outcome.UPSTREAM_FAILED
    assert outcomes["grandchild"].reason == "bad failed"
    assert run.exit_code == 1


def test_fail_fast_skips_devices_not_yet_started(world: SimulationWorld) -> None:
    world.profiles["first"] = DeviceProfile(faults=(Fault(kind="nack", op="write", times=None),))
    devices = [device("first"), device("second"), device("third")]
    run = execute(plan(devices, max_parallel=1, fail_fast=True), world=world)
    assert [d.outcome for d in run.devices] == [Outcome.FAILED, Outcome.SKIPPED, Outcome.SKIPPED]
    assert {d.reason for d in run.devices[1:]} == {"fail-fast"}
    assert world.chips.keys() == {"first"}


def test_corrupt_byte_is_caught_by_verify_at_its_address(world: SimulationWorld) -> None:
    world.profiles["a"] = DeviceProfile(faults=(Fault(kind="corrupt", op="write",
                                                      at_byte=2048),))
    sink = CapturingSink()
    run = execute(plan([device("a")]), world=world, events=sink)
    result = run.devices[0]
    assert result.outcome is Outcome.FAILED and result.error_type == "VerifyError"
    verify = sink.named("step.finished")[-1]
    assert verify["action"] == "verify"
    assert verify["address"] == f"0x{FLASH + 2048:08X}"
    assert verify["expected"][:2] != verify["actual"][:2]


@pytest.mark.parametrize(("method", "used"), [(VerifyMethod.AUTO, "checksum"),
                                              (VerifyMethod.READBACK, "readback")])
def test_verify_uses_the_on_target_checksum_unless_readback_is_asked(
        world: SimulationWorld, method: VerifyMethod, used: str) -> None:
    sink = CapturingSink()
    assert execute(plan([device("a", verify=method)]), world=world, events=sink).ok
    assert sink.named("step.finished")[-1]["method"] == used


def test_chip_of_another_part_is_refused_before_anything_is_written(
        world: SimulationWorld, chips: ChipDatabase) -> None:
    world.substitute("a", SimChip(chips.part("stm32f411ce")))
    sink = CapturingSink()
    run = execute(plan([device("a")]), world=world, events=sink)
    result = run.devices[0]
    assert result.outcome is Outcome.FAILED and result.error_type == "ChipMismatch"
    assert "stm32f103c8" in (result.error or "") and "0x431" in (result.error or "")
    assert [s["action"] for s in sink.named("step.started")] == ["connect"]
    assert world.chips["a"].stats.bytes_programmed == 0


def test_reading_a_protected_chip_reports_read_protection(world: SimulationWorld) -> None:
    world.profiles["a"] = DeviceProfile(rdp_level=1)
    # The simulated link programs protected flash (no page erase needed on erased flash)
    # but, as silicon does, refuses to read it back.
    unerased = device("a", erase=EraseScope.NONE, verify=VerifyMethod.READBACK)
    run = execute(plan([unerased]), world=world)
    assert run.devices[0].error_type == "ReadProtected"
    assert run.devices[0].error_category == "protected"


def test_internal_errors_fail_the_device_with_the_traceback_in_the_log(
        world: SimulationWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from transports.memory import MemoryTransport

    def broken(self: MemoryTransport) -> None:
        raise RuntimeError("wires crossed")

    monkeypatch.setattr(MemoryTransport, "identify", broken)
    run = execute(plan([device("a")], log_file=str(tmp_path / "run.jsonl")), world=world)
    assert run.devices[0].error_category == "internal"
    records = read_jsonl(tmp_path / "run.jsonl")
    failed = [r for r in records if r["event"] == "device.finished"][0]
    assert "RuntimeError: wires crossed" in failed["traceback"]


def test_world_is_built_from_the_plans_simulation_settings_when_none_is_given() -> None:
    spec = SimulationSpec(time_scale=0.0, devices={"a": SimulatedDevice(
        faults=({"kind": "nack", "op": "write", "permanent": True},))})
    run = execute(plan([device("a"), device("b")], simulation=spec))
    assert [d.outcome for d in run.devices] == [Outcome.FAILED, Outcome.OK]


def test_plan_warnings_are_reported_after_run_started(world: SimulationWorld) -> None:
    sink = CapturingSink()
    execute(plan([device("a")], warnings=("link-a is slow",)), world=world, events=sink)
    assert sink.names()[:2] == ["run.started", "plan.warning"]
    (warning,) = sink.named("plan.warning")
    assert (warning["message"], warning["seq"]) == ("link-a is slow", 2)
