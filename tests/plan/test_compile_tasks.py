"""A device's recipe becomes a chain of tasks: ids, order, actions, recovery, options."""

from __future__ import annotations

import pytest
from plan_builders import device, manifest, recipe, standard_recipe

from runner.compiler import compile_plan
from runner.errors import PlanError
from runner.model import (
    DeviceLink,
    EraseScope,
    EraseStep,
    ImageSpec,
    LinkSpec,
    OptionBytesStep,
    RecoveryPolicy,
    ResetStep,
    VerifyMethod,
    VerifyStep,
    WriteStep,
    frozen_map,
)
from runner.plan import (
    ConnectAction,
    EraseAction,
    OptionBytesAction,
    ResetAction,
    TaskKind,
    VerifyAction,
    WriteAction,
)
from transports.base import ResetMode


def test_tasks_are_connect_then_the_recipe_steps_with_stable_ids(boot, app):
    plan = compile_plan(manifest([device("s1")], images=[boot, app]))
    assert [t.id for t in plan.tasks] == [
        "s1/0-connect", "s1/1-erase", "s1/2-write", "s1/3-verify", "s1/4-reset"]
    assert [t.kind for t in plan.tasks] == [
        TaskKind.CONNECT, TaskKind.ERASE, TaskKind.WRITE, TaskKind.VERIFY, TaskKind.RESET]
    assert [t.index for t in plan.tasks] == [0, 1, 2, 3, 4]


def test_connect_expects_the_chips_dev_id(boot, app, chips):
    plan = compile_plan(manifest([device("s1", chip="stm32f103cb")], images=[boot, app]))
    action = plan.tasks[0].action
    assert isinstance(action, ConnectAction)
    assert action.expected_dev_id == chips.part("stm32f103cb").dev_id == 0x410


def test_write_programs_the_images_padded_to_the_write_unit(boot, app):
    plan = compile_plan(manifest([device("s1", chip="stm32g071rb")], images=[boot, app]))
    write = plan.device("s1").tasks[2].action
    assert isinstance(write, WriteAction)
    # G0 programs 8-byte double words: 20 000 bytes of app pad to 20 000 (already aligned)
    assert write.memory.ranges == ((0x0800_0000, 0x0800_1000), (0x0800_4000, 0x0800_8E20))
    assert [use.name for use in write.images] == ["boot", "app"]
    assert write.images[1].ranges == ((0x0800_4000, 0x0800_4000 + 20_000),)
    assert plan.tasks[2].bytes == write.memory.size


def test_a_ragged_image_end_is_padded_with_the_erased_value(tmp_path):
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\x01\x02\x03")
    image = ImageSpec(name="odd", path=odd, address=0x0800_0000)
    plan = compile_plan(manifest([device("s1", chip="stm32l476rg")], images=[image],
                                 recipes=[standard_recipe(["odd"])]))
    write = plan.tasks[2].action
    assert isinstance(write, WriteAction)
    assert write.memory.segments[0].data == b"\x01\x02\x03" + b"\xff" * 5


def test_verify_compares_everything_written_before_it(boot, app):
    steps = recipe(EraseStep(), WriteStep(images=("boot",)), VerifyStep(),
                   WriteStep(images=("app",)), VerifyStep())
    plan = compile_plan(manifest([device("s1")], images=[boot, app], recipes=[steps]))
    first, second = (t.action for t in plan.tasks if t.kind is TaskKind.VERIFY)
    assert isinstance(first, VerifyAction) and isinstance(second, VerifyAction)
    assert first.memory.ranges == ((0x0800_0000, 0x0800_1000),)
    assert second.memory == plan.device("s1").memory


def test_erase_none_produces_no_task(boot, app):
    steps = recipe(EraseStep(scope=EraseScope.NONE), WriteStep(images=("boot", "app")))
    plan = compile_plan(manifest([device("s1")], images=[boot, app], recipes=[steps]))
    assert [t.id for t in plan.tasks] == ["s1/0-connect", "s1/1-write"]


def test_mass_erase_names_no_blocks(boot, app, chips):
    steps = recipe(EraseStep(scope=EraseScope.MASS), WriteStep(images=("boot", "app")))
    plan = compile_plan(manifest([device("s1")], images=[boot, app], recipes=[steps]))
    erase = plan.tasks[1]
    assert isinstance(erase.action, EraseAction)
    assert erase.action.scope is EraseScope.MASS and erase.action.blocks == ()
    assert erase.estimate_s == pytest.approx(chips.part("stm32g071rb").timing.mass_erase_ms / 1000)


def test_erase_used_without_any_write_is_dropped_with_a_warning():
    steps = recipe(EraseStep(), ResetStep())
    plan = compile_plan(manifest([device("s1")], recipes=[steps]))
    assert [t.kind for t in plan.tasks] == [TaskKind.CONNECT, TaskKind.RESET]
    assert any("nothing to erase" in w for w in plan.warnings)


def test_reset_without_mode_uses_the_links_hardware_reset(boot, app):
    plan = compile_plan(manifest([device("s1")], images=[boot, app]))
    action = plan.tasks[-1].action
    assert isinstance(action, ResetAction) and action.mode is ResetMode.HARDWARE


@pytest.mark.usefixtures("fake_kinds")
@pytest.mark.parametrize(("kind", "mode"), [("bootish", ResetMode.GO),
                                            ("softreset", ResetMode.SOFTWARE)])
def test_reset_without_mode_falls_back_to_go_then_software(boot, app, kind, mode):
    links = [LinkSpec(name="bus", kind=kind)]
    steps = recipe(WriteStep(images=("boot",)), ResetStep())
    plan = compile_plan(manifest([device("s1")], images=[boot, app], links=links,
                                 recipes=[steps]))
    action = plan.tasks[-1].action
    assert isinstance(action, ResetAction) and action.mode is mode


@pytest.mark.usefixtures("fake_kinds")
def test_a_step_the_link_cannot_do_is_rejected_naming_kind_and_capability(boot):
    links = [LinkSpec(name="bus", kind="bootish")]
    steps = recipe(WriteStep(images=("boot",)), VerifyStep(method=VerifyMethod.CHECKSUM))
    with pytest.raises(PlanError, match=r"verify: a bootish link cannot do this.*checksum"):
        compile_plan(manifest([device("s1")], images=[boot], links=links, recipes=[steps]))


@pytest.mark.usefixtures("fake_kinds")
@pytest.mark.parametrize("step", [EraseStep(), ResetStep(), VerifyStep(),
                                  ResetStep(mode="hardware"), OptionBytesStep(rdp=1)])
def test_a_write_only_link_refuses_every_other_step(boot, step):
    links = [LinkSpec(name="bus", kind="writeonly")]
    steps = recipe(WriteStep(images=("boot",)), step)
    with pytest.raises(PlanError, match="writeonly link (cannot do this|has no way)"):
        compile_plan(manifest([device("s1")], images=[boot], links=links, recipes=[steps]))


@pytest.mark.usefixtures("fake_kinds")
def test_auto_verify_reads_back_when_the_link_has_no_checksum(boot):
    links = [LinkSpec(name="bus", kind="bootish")]
    steps = recipe(WriteStep(images=("boot",)), VerifyStep())
    plan = compile_plan(manifest([device("s1")], images=[boot], links=links, recipes=[steps]))
    verify = plan.tasks[-1]
    assert verify.estimate_s == pytest.approx(verify.bytes / 20_000)


def test_unknown_reset_mode_is_rejected_with_the_valid_ones(boot):
    steps = recipe(WriteStep(images=("boot",)), ResetStep(mode="reboot"))
    with pytest.raises(PlanError, match=r"unknown reset mode 'reboot'.*hardware, software"):
        compile_plan(manifest([device("s1")], images=[boot], recipes=[steps]))


def test_option_bytes_carry_the_change_and_its_confirmation():
    steps = recipe(OptionBytesStep(rdp=2, confirm="irreversible",
                                   fields=frozen_map({"nBOOT_SEL": 0})))
    plan = compile_plan(manifest([device("s1", chip="stm32g071rb")], recipes=[steps]))
    action = plan.tasks[1].action
    assert isinstance(action, OptionBytesAction)
    assert action.change.rdp_level == 2 and action.change.confirmed_irreversible
    assert dict(action.change.fields) == {"nBOOT_SEL": 0}


def test_rdp_2_without_confirmation_is_rejected():
    steps = recipe(OptionBytesStep(rdp=2))
    with pytest.raises(PlanError, match="confirm: irreversible"):
        compile_plan(manifest([device("s1")], recipes=[steps]))


def test_rdp_2_on_a_part_without_level_2_is_rejected():
    steps = recipe(OptionBytesStep(rdp=2, confirm="irreversible"))
    with pytest.raises(PlanError, match="stm32f103cb has no readout protection level 2"):
        compile_plan(manifest([device("s1", chip="stm32f103cb")], recipes=[steps]))


def test_each_task_carries_the_recovery_policy_in_force(boot):
    default = RecoveryPolicy(name="default", retries=2)
    patient = RecoveryPolicy(name="patient", retries=5)
    steps = recipe(WriteStep(images=("boot",)), VerifyStep(recovery="patient"))
    plan = compile_plan(manifest([device("s1")], images=[boot], recipes=[steps],
                                 recovery=[default, patient]))
    assert [t.recovery for t in plan.tasks] == [default, default, patient]


def test_an_undefined_recovery_policy_is_rejected(boot):
    with pytest.raises(PlanError, match="recovery policy 'careful' is not defined"):
        compile_plan(manifest([device("s1", recovery="careful")], images=[boot],
                              recipes=[standard_recipe(["boot"])]))


def test_device_options_override_link_options_and_pick_the_resource(boot):
    links = [LinkSpec(name="bus", kind="sim", options=frozen_map({"rate": 1000, "bus": "a"}))]
    d = device("s1", options={"bus": "b"})
    plan = compile_plan(manifest([d], images=[boot], links=links,
                                 recipes=[standard_recipe(["boot"])]))
    dp = plan.device("s1")
    assert dict(dp.options) == {"rate": 1000, "bus": "b"}
    assert dp.resource == "sim:b"


@pytest.mark.parametrize(("change", "message"), [
    ({"chip": "stm32f999zz"}, "unknown chip stm32f999zz"),
    ({"link": DeviceLink(link="nowhere")}, "uses link 'nowhere', which is not defined"),
    ({"recipe": "other"}, "uses recipe 'other', which is not defined"),
])
def test_a_hand_built_manifest_with_a_dangling_reference_is_rejected(boot, change, message):
    from dataclasses import replace
    broken = replace(device("s1"), **change)
    with pytest.raises(PlanError, match=message):
        compile_plan(manifest([broken], images=[boot], links=[LinkSpec(name="bus", kind="sim")],
                              recipes=[standard_recipe(["boot"])]))


def test_an_undefined_image_is_rejected(boot):
    with pytest.raises(PlanError, match="writes image 'app', which is not defined"):
        compile_plan(manifest([device("s1")], images=[boot]))


def test_an_unknown_link_kind_is_rejected(boot):
    with pytest.raises(PlanError, match="unknown transport kind 'carrier-pigeon'"):
        compile_plan(manifest([device("s1")], images=[boot],
                              links=[LinkSpec(name="bus", kind="carrier-pigeon")],
                              recipes=[standard_recipe(["boot"])]))


def test_a_sim_link_outside_simulation_is_flagged(boot):
    plan = compile_plan(manifest([device("s1")], images=[boot], simulate=False,
                                 recipes=[standard_recipe(["boot"])]))
    assert not plan.simulate
    assert any("kind sim, which only exists in simulation" in w for w in plan.warnings)
    assert compile_plan(manifest([device("s1")], images=[boot], simulate=False,
                                 recipes=[standard_recipe(["boot"])]), simulate=True).simulate
