"""Images laid out in a chip's flash: erase units, overlaps, bounds, partial sectors."""

from __future__ import annotations

import pytest
from plan_builders import device, manifest, recipe, standard_recipe, write_image

from runner.compiler import compile_plan
from runner.errors import PlanError
from runner.model import EraseStep, WriteStep
from runner.plan import EraseAction


def erase_blocks(plan, name="s1"):
    action = plan.device(name).tasks[1].action
    assert isinstance(action, EraseAction)
    return [(b.index, b.address, b.size) for b in action.blocks]


def test_erase_used_on_a_page_part_names_exactly_the_pages_touched(boot, app):
    # G0: 2 KiB pages. boot fills pages 0-1; app (20 000 bytes at 16 KiB) pages 8-17.
    plan = compile_plan(manifest([device("s1", chip="stm32g071rb")], images=[boot, app]))
    assert erase_blocks(plan) == [(0, 0x0800_0000, 2048), (1, 0x0800_0800, 2048)] + [
        (i, 0x0800_0000 + i * 2048, 2048) for i in range(8, 18)]


def test_erase_used_on_a_sector_part_names_the_sectors_touched(boot, app):
    # F411: sectors 0-3 are 16 KiB, sector 4 is 64 KiB. boot → sector 0, app → sectors 1-2.
    plan = compile_plan(manifest([device("s1", chip="stm32f411re")], images=[boot, app]))
    assert erase_blocks(plan) == [(0, 0x0800_0000, 16384), (1, 0x0800_4000, 16384),
                                  (2, 0x0800_8000, 16384)]


def test_erase_estimate_is_the_chips_erase_time_per_block(boot, chips):
    part = chips.part("stm32f411re")
    plan = compile_plan(manifest([device("s1", chip="stm32f411re")], images=[boot],
                                 recipes=[standard_recipe(["boot"])]))
    assert plan.device("s1").tasks[1].estimate_s == pytest.approx(
        part.timing.erase_seconds(16384))


def test_a_partly_filled_sector_is_warned_about(boot, app):
    plan = compile_plan(manifest([device("s1", chip="stm32f411re")], images=[boot, app]))
    assert ("s1: sector 0x08000000 (16 KiB) of stm32f411re will be erased whole but the "
            "images only fill 4 KiB of it; bytes outside the images are lost") in plan.warnings


def test_partly_filled_pages_are_not_warned_about(boot, app):
    plan = compile_plan(manifest([device("s1", chip="stm32g071rb")], images=[boot, app]))
    assert not any("erased whole" in w for w in plan.warnings)


def test_a_warning_shared_by_many_devices_is_given_once(boot, app):
    devices = [device(f"s{i}", chip="stm32f411re", link=f"l{i}") for i in range(6)]
    plan = compile_plan(manifest(devices, images=[boot, app]))
    sector0 = [w for w in plan.warnings if "0x08000000" in w]
    assert sector0 == [sector0[0]]
    assert sector0[0].startswith("s0, s1, s2 and 3 more devices: sector 0x08000000")


def test_overlapping_images_are_rejected_naming_both(tmp_path, boot):
    late = write_image(tmp_path, "late", 1024, 0x0800_0C00)
    with pytest.raises(PlanError, match=r"images boot and late overlap at 0x08000C00"):
        compile_plan(manifest([device("s1")], images=[boot, late],
                              recipes=[standard_recipe(["boot", "late"])]))


def test_overlap_between_write_steps_is_rejected_naming_both(tmp_path, boot):
    late = write_image(tmp_path, "late", 1024, 0x0800_0C00)
    steps = recipe(EraseStep(), WriteStep(images=("boot",)), WriteStep(images=("late",)))
    with pytest.raises(PlanError, match=r"images boot and late overlap"):
        compile_plan(manifest([device("s1")], images=[boot, late], recipes=[steps]))


def test_an_image_outside_flash_is_rejected_naming_image_range_and_flash(tmp_path):
    # stm32f103c8 has 64 KiB: 0x08000000..0x08010000.
    big = write_image(tmp_path, "big", 2048, 0x0800_FC00)
    with pytest.raises(PlanError, match=r"image big covers 0x0800FC00\.\.0x08010400, outside "
                                        r"the flash of stm32f103c8 \(0x08000000\.\.0x08010000\)"):
        compile_plan(manifest([device("s1", chip="stm32f103c8")], images=[big],
                              recipes=[standard_recipe(["big"])]))


def test_an_image_written_twice_is_rejected(boot):
    steps = recipe(WriteStep(images=("boot",)), WriteStep(images=("boot",)))
    with pytest.raises(PlanError, match="image boot is written twice"):
        compile_plan(manifest([device("s1")], images=[boot], recipes=[steps]))


def test_write_steps_sharing_a_write_unit_are_rejected(tmp_path):
    # L4 programs 8 bytes at a time: 0x08000000..+5 and +5..+16 share the first unit.
    first = write_image(tmp_path, "first", 5, 0x0800_0000)
    second = write_image(tmp_path, "second", 11, 0x0800_0005)
    steps = recipe(WriteStep(images=("first",)), WriteStep(images=("second",)))
    with pytest.raises(PlanError, match="same 8-byte write unit at 0x08000000"):
        compile_plan(manifest([device("s1", chip="stm32l476rg")], images=[first, second],
                              recipes=[steps]))


def test_images_sharing_a_write_unit_in_one_step_are_joined(tmp_path):
    first = write_image(tmp_path, "first", 5, 0x0800_0000)
    second = write_image(tmp_path, "second", 11, 0x0800_0005)
    plan = compile_plan(manifest([device("s1", chip="stm32l476rg")], images=[first, second],
                                 recipes=[standard_recipe(["first", "second"])]))
    assert plan.device("s1").memory.ranges == ((0x0800_0000, 0x0800_0010),)


def test_each_image_is_loaded_once_and_its_digest_recorded(boot, app, monkeypatch):
    import runner.compiler as compiler_module
    calls = []
    real = compiler_module.load_image
    monkeypatch.setattr(compiler_module, "load_image", lambda spec: calls.append(spec.name)
                        or real(spec))
    devices = [device(f"s{i}", link=f"l{i}") for i in range(5)]
    plan = compile_plan(manifest(devices, images=[boot, app]))
    assert sorted(calls) == ["app", "boot"]
    assert set(plan.image_digests) == {"boot", "app"}
    assert all(len(digest) == 64 for digest in plan.image_digests.values())
