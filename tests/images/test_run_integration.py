"""Preserved sectors and per-unit data through compiled plans and simulated runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.compiler import compile_plan
from runner.errors import ImageError, PlanError
from runner.events import CapturingSink
from runner.launch import execute
from runner.model import (
    Device,
    DeviceLink,
    EraseStep,
    Execution,
    ImageSpec,
    LinkSpec,
    Manifest,
    Recipe,
    RecoveryPolicy,
    UnitDataStep,
    VerifyMethod,
    VerifyStep,
    WriteStep,
    frozen_map,
)
from runner.render import render_json, render_table
from runner.unitdata import CounterSource, Encoding, UidSource
from transports.chips import chip_database
from transports.sim import Fault, SimChip, SimulationWorld
from transports.sim.world import DeviceProfile

F4 = "stm32f411re"
FLASH = 0x08000000
SECTOR5 = 0x08020000          # 128 KiB sector on the F411
CALIBRATION = 0x08030000      # someone else's bytes in the same sector


def _manifest(tmp_path: Path, images: list[ImageSpec], steps: tuple, *,
              devices: tuple[str, ...] = ("unit-1",), chip: str = F4,
              recovery: tuple[RecoveryPolicy, ...] = (), simulate: bool = False) -> Manifest:
    """A manifest over ``kind: sim`` links (which run even when ``simulate`` is off)."""
    recipe = Recipe(name="std", steps=steps)
    return Manifest(
        version=1, name="line", path=tmp_path / "line.yaml", sha256="5e" * 32,
        files=(tmp_path / "line.yaml",), simulate=simulate,
        images=frozen_map({i.name: i for i in images}),
        links=frozen_map({"bus": LinkSpec(name="bus", kind="sim")}),
        recipes=frozen_map({"std": recipe}),
        recovery=frozen_map({policy.name: policy for policy in recovery}),
        devices=frozen_map({name: Device(name=name, chip=chip, link=DeviceLink(link="bus"),
                                         recipe="std") for name in devices}),
        execution=Execution(max_parallel=4))


def _image(tmp_path: Path, *, preserve: bool, size: int = 1024,
           address: int = SECTOR5) -> ImageSpec:
    path = tmp_path / "app.bin"
    path.write_bytes(bytes((i * 7 + 3) % 251 for i in range(size)))
    return ImageSpec(name="app", path=path, format="bin", address=address, preserve=preserve)


def _seed_chip(world: SimulationWorld, device: str, data: dict[int, bytes]) -> SimChip:
    chip = chip_database().part(F4)
    flash = bytearray(b"\xff" * chip.flash.size)
    for address, content in data.items():
        flash[address - FLASH:address - FLASH + len(content)] = content
    sim = SimChip(chip, initial_flash=bytes(flash))
    world.substitute(device, sim)
    return sim


STEPS = (EraseStep(), WriteStep(images=("app",)), VerifyStep(method=VerifyMethod.READBACK))


def test_preserved_sector_keeps_the_bytes_outside_the_image(
        tmp_path: Path, world: SimulationWorld) -> None:
    calibration = b"CAL:" + bytes(range(256)) * 4
    old_app = b"\x00" * 1024
    sim = _seed_chip(world, "unit-1", {CALIBRATION: calibration, SECTOR5: old_app})
    plan = compile_plan(_manifest(tmp_path, [_image(tmp_path, preserve=True)], STEPS))
    assert not [w for w in plan.warnings if "sector 0x08020000" in w]
    sink = CapturingSink()
    run = execute(plan, world=world, events=sink)
    assert run.exit_code == 0
    flash = sim.flash
    assert flash[CALIBRATION - FLASH:CALIBRATION - FLASH + len(calibration)] == calibration
    app = (tmp_path / "app.bin").read_bytes()
    assert flash[SECTOR5 - FLASH:SECTOR5 - FLASH + len(app)] == app
    finished = {f["step"].split("/")[1]: f for f in sink.named("step.finished")}
    assert finished["1-erase"]["preserved_bytes"] == 0x20000 - 1024
    # verify covers the whole sector: the image and every kept byte
    assert finished["3-verify"]["ranges"] == [["0x08020000", "0x08040000"]]
    assert finished["3-verify"]["bytes"] == 0x20000
    assert plan.device("unit-1").tasks[3].bytes == 0x20000


def test_without_preserve_the_plan_warns_and_the_bytes_are_lost(
        tmp_path: Path, world: SimulationWorld) -> None:
    sim = _seed_chip(world, "unit-1", {CALIBRATION: b"CAL!"})
    plan = compile_plan(_manifest(tmp_path, [_image(tmp_path, preserve=False)], STEPS))
    assert ("unit-1: sector 0x08020000 (128 KiB) of stm32f411re will be erased whole but the "
            "images only fill 1 KiB of it; the other 130048 bytes are lost (set "
            "`preserve: true` on image app to keep them)") in plan.warnings
    assert execute(plan, world=world).exit_code == 0
    assert sim.flash[CALIBRATION - FLASH:CALIBRATION - FLASH + 4] == b"\xff" * 4


def test_preserve_puts_kept_bytes_into_the_images_padding(
        tmp_path: Path, world: SimulationWorld) -> None:
    # The image ends mid write unit (F4: 4 bytes): the unit's last bytes are kept ones.
    sim = _seed_chip(world, "unit-1", {SECTOR5 + 1: b"\xaa\xbb\xcc"})
    plan = compile_plan(_manifest(tmp_path, [_image(tmp_path, preserve=True, size=1)], STEPS))
    assert execute(plan, world=world).exit_code == 0
    app = (tmp_path / "app.bin").read_bytes()
    assert sim.flash[SECTOR5 - FLASH:SECTOR5 - FLASH + 4] == app + b"\xaa\xbb\xcc"


def test_unit_data_writes_a_serial_per_device_and_logs_it(
        tmp_path: Path, world: SimulationWorld) -> None:
    field = 0x0807FC00
    source = CounterSource(state=tmp_path / "serials.json", start=1000,
                           encoding=Encoding(width=4, endianness="little"))
    steps = (EraseStep(), WriteStep(images=("app",)),
             UnitDataStep(address=field, size=4, source=source),
             VerifyStep(method=VerifyMethod.READBACK))
    plan = compile_plan(_manifest(tmp_path, [_image(tmp_path, preserve=False)], steps,
                                  devices=("unit-1", "unit-2")))
    field_sector = chip_database().part(F4).flash.block_at(field).index
    erase = plan.device("unit-1").tasks[1].action
    assert field_sector in {b.index for b in erase.blocks}  # type: ignore[union-attr]
    sink = CapturingSink()
    run = execute(plan, world=world, events=sink)
    assert run.exit_code == 0
    written = {name: int.from_bytes(world.chips[name].flash[field - FLASH:field - FLASH + 4],
                                    "little") for name in ("unit-1", "unit-2")}
    assert sorted(written.values()) == [1000, 1001]
    units = [f for f in sink.named("step.finished") if f["action"] == "unit-data"]
    assert {f["device"]: int(f["unit_value"]) for f in units} == written
    assert all(f["unit_source"] == f"counter {tmp_path / 'serials.json'}" for f in units)
    verify = [f for f in sink.named("step.finished") if f["action"] == "verify"][0]
    assert ["0x0807FC00", "0x0807FC04"] in verify["ranges"]


def test_unit_data_from_the_uid_is_computed_after_identify(
        tmp_path: Path, world: SimulationWorld) -> None:
    field = 0x08010000
    steps = (EraseStep(), UnitDataStep(address=field, size=12, source=UidSource()),
             VerifyStep(method=VerifyMethod.READBACK))
    plan = compile_plan(_manifest(tmp_path, [], steps))
    assert execute(plan, world=world).exit_code == 0
    sim = world.chips["unit-1"]
    assert sim.flash[field - FLASH:field - FLASH + 12] == sim.uid


def test_unit_data_over_an_image_is_refused(tmp_path: Path) -> None:
    steps = (EraseStep(), WriteStep(images=("app",)),
             UnitDataStep(address=SECTOR5 + 16, size=4, source=UidSource(derive="crc32")))
    with pytest.raises(PlanError, match="unit-data at 0x08020010 .4 bytes. overlaps image app"):
        compile_plan(_manifest(tmp_path, [_image(tmp_path, preserve=False)], steps))


def test_unit_data_sharing_a_write_unit_with_an_image_is_refused(tmp_path: Path) -> None:
    steps = (EraseStep(), WriteStep(images=("app",)),
             UnitDataStep(address=SECTOR5 + 1026, size=4, source=UidSource(derive="crc32")))
    with pytest.raises(PlanError, match="share the 4-byte write unit at 0x08020400"):
        compile_plan(_manifest(tmp_path, [_image(tmp_path, preserve=False, size=1026)], steps))


def test_unit_data_outside_flash_is_refused(tmp_path: Path) -> None:
    steps = (UnitDataStep(address=0x08080000, size=4, source=UidSource(derive="crc32")),)
    with pytest.raises(PlanError, match="lies outside the flash of stm32f411re"):
        compile_plan(_manifest(tmp_path, [], steps))


def test_image_outside_flash_is_refused(tmp_path: Path) -> None:
    image = _image(tmp_path, preserve=False, address=0x0807FF00)
    with pytest.raises(PlanError, match="outside the flash of stm32f411re"):
        compile_plan(_manifest(tmp_path, [image], STEPS))


def test_overlapping_images_are_refused_naming_both(tmp_path: Path) -> None:
    other = tmp_path / "boot.bin"
    other.write_bytes(b"\x01" * 2048)
    boot = ImageSpec(name="boot", path=other, format="bin", address=SECTOR5 - 1024)
    steps = (EraseStep(), WriteStep(images=("boot", "app")))
    with pytest.raises(PlanError, match="images boot and app overlap at 0x08020000"):
        compile_plan(_manifest(tmp_path, [boot, _image(tmp_path, preserve=False)], steps))


def test_pin_mismatch_refuses_at_compile_time(tmp_path: Path) -> None:
    image = _image(tmp_path, preserve=False)
    pinned = ImageSpec(name="app", path=image.path, format="bin", address=SECTOR5,
                       sha256="ab" * 32)
    with pytest.raises(ImageError, match="but the manifest pins abab"):
        compile_plan(_manifest(tmp_path, [pinned], STEPS))


def test_a_retried_unit_data_write_keeps_its_value(tmp_path: Path) -> None:
    field = 0x08010000
    source = CounterSource(state=tmp_path / "serials.json", start=7,
                           encoding=Encoding(width=4))
    steps = (EraseStep(), UnitDataStep(address=field, size=4, source=source,
                                       recovery="again"),
             VerifyStep(method=VerifyMethod.READBACK))
    again = RecoveryPolicy(name="again", retries=2, on=frozenset({"timeout"}))
    plan = compile_plan(_manifest(tmp_path, [], steps, recovery=(again,)))
    # The link drops after 2 of the 4 bytes: half the field is programmed.
    flaky = DeviceProfile(faults=(Fault(kind="timeout", op="write", at_byte=2, times=1),))
    with SimulationWorld(time_scale=0.0, profiles={"unit-1": flaky}) as world:
        sink = CapturingSink()
        assert execute(plan, world=world, events=sink).exit_code == 0
        assert world.chips["unit-1"].flash[field - FLASH:field - FLASH + 4] == \
            (7).to_bytes(4, "little")
    unit = [f for f in sink.named("step.finished") if f["action"] == "unit-data"][0]
    assert unit["attempts"] == 2 and unit["unit_value"] == "7"
    assert [a.value for a in source.counter.journal()] == [7]
    recovered = [(f["recovery"], f["outcome"]) for f in sink.named("step.recovery")]
    assert ("re-erase", "ok") in recovered


def test_plan_renderings_show_kept_bytes_and_unit_data(tmp_path: Path) -> None:
    source = CounterSource(state=tmp_path / "serials.json", start=1000)
    steps = (EraseStep(), WriteStep(images=("app",)),
             UnitDataStep(address=0x0807FC00, size=4, source=source))
    plan = compile_plan(_manifest(tmp_path, [_image(tmp_path, preserve=True)], steps))
    table = render_table(plan)
    assert "keeping 127.0 KiB" in table and "+ kept bytes" in table
    assert "unit-data 4 B at 0x0807FC00 (counter serials.json from 1000)" in table
    tasks = render_json(plan)["devices"][0]["tasks"]
    assert tasks[1]["preserve"] == [["0x08020400", "0x08040000"]]
    assert tasks[2]["keep"] == [["0x08020400", "0x08040000"]]
    assert tasks[3]["source"] == "counter serials.json from 1000"


def test_unit_data_with_preserve_keeps_the_rest_of_its_sector(
        tmp_path: Path, world: SimulationWorld) -> None:
    field = 0x08060000 + 0x100
    sim = _seed_chip(world, "unit-1", {0x08060000: b"KEEP", field + 0x100: b"ME"})
    steps = (EraseStep(), UnitDataStep(address=field, size=12, source=UidSource(),
                                       preserve=True),
             VerifyStep(method=VerifyMethod.READBACK))
    plan = compile_plan(_manifest(tmp_path, [], steps, simulate=True))
    assert not plan.warnings
    assert execute(plan, world=world).exit_code == 0
    flash = sim.flash
    assert flash[field - FLASH:field - FLASH + 12] == sim.uid
    assert flash[0x60000:0x60004] == b"KEEP"
    assert flash[field + 0x100 - FLASH:field + 0x102 - FLASH] == b"ME"


def test_unit_data_without_preserve_warns_about_its_sector(tmp_path: Path) -> None:
    steps = (EraseStep(), UnitDataStep(address=0x08060000, size=4, source=UidSource(
        derive="crc32")))
    plan = compile_plan(_manifest(tmp_path, [], steps, simulate=True))
    assert plan.warnings == (
        "unit-1: sector 0x08060000 (128 KiB) of stm32f411re will be erased whole but the "
        "images only fill 4 bytes of it; the other 131068 bytes are lost (set "
        "`preserve: true` on the unit-data step to keep them)",)


def test_adjacent_unit_data_fields_each_get_their_own_range(
        tmp_path: Path, world: SimulationWorld) -> None:
    steps = (EraseStep(),
             UnitDataStep(address=0x08010000, size=4, source=UidSource(derive="crc32")),
             UnitDataStep(address=0x08010004, size=12, source=UidSource()))
    plan = compile_plan(_manifest(tmp_path, [], steps))
    assert [t.bytes for t in plan.device("unit-1").tasks[2:]] == [4, 12]
    assert execute(plan, world=world).exit_code == 0
    sim = world.chips["unit-1"]
    assert sim.flash[0x10004:0x10010] == sim.uid


def test_a_rehearsal_draws_serials_from_its_own_counter(
        tmp_path: Path, world: SimulationWorld) -> None:
    source = CounterSource(state=tmp_path / "serials.json", start=1000)
    steps = (EraseStep(), UnitDataStep(address=0x08010000, size=4, source=source))
    plan = compile_plan(_manifest(tmp_path, [], steps, simulate=True))
    sink = CapturingSink()
    assert execute(plan, world=world, events=sink).exit_code == 0
    unit = [f for f in sink.named("step.finished") if f["action"] == "unit-data"][0]
    assert unit["unit_source"] == f"counter {tmp_path / 'serials.rehearsal.json'}"
    assert not (tmp_path / "serials.json").exists()
    assert "counter serials.rehearsal.json from 1000" in render_table(plan)


def test_bytes_kept_across_an_erase_are_saved_beside_the_log_before_erasing(
        tmp_path: Path, world: SimulationWorld) -> None:
    import dataclasses

    import bincopy

    from runner.model import LogSpec

    calibration = b"CAL:" + bytes(range(256))
    _seed_chip(world, "unit-1", {CALIBRATION: calibration})
    plan = compile_plan(_manifest(tmp_path, [_image(tmp_path, preserve=True)], STEPS))
    log = tmp_path / "logs" / "run.jsonl"
    plan = dataclasses.replace(plan, log=LogSpec(file=str(log)))
    sink = CapturingSink()
    assert execute(plan, world=world, events=sink).exit_code == 0
    erase = next(f for f in sink.named("step.finished") if f["action"] == "erase")
    saved = Path(erase["preserved_file"])
    assert saved == tmp_path / "logs" / "run.jsonl.kept" / "unit-1.hex"
    backup = bincopy.BinFile(str(saved))
    assert bytes(backup[CALIBRATION:CALIBRATION + len(calibration)]) == calibration
    assert backup.minimum_address == SECTOR5 + 1024
