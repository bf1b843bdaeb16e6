"""Skip unchanged: per erase unit, a differing unit erased and rewritten whole."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.compiler import compile_plan
from runner.errors import PlanError
from runner.events import CapturingSink
from runner.launch import execute
from runner.memmap import MemoryMap, Segment
from runner.model import (
    Device,
    DeviceLink,
    EraseStep,
    Execution,
    ImageSpec,
    LinkSpec,
    Manifest,
    Recipe,
    Step,
    UnitDataStep,
    VerifyMethod,
    VerifyStep,
    WriteStep,
    frozen_map,
)
from runner.unchanged import compare_units, rewrite_units
from runner.unitdata import CounterSource, Encoding
from transports.base import Capability
from transports.chips import chip_database
from transports.memory import MemoryTransport
from transports.sim import SimChip, SimulationWorld
from transports.sim.endpoints import simulated_request

F4 = "stm32f411re"            # sectors: 4 x 16 KiB, 64 KiB, 3 x 128 KiB
FLASH = 0x08000000
GEOMETRY = chip_database().part(F4).flash

SKIP_STEPS: tuple[Step, ...] = (
    EraseStep(), WriteStep(images=("app",), skip_unchanged=True),
    VerifyStep(method=VerifyMethod.READBACK))


class _NoChecksum(MemoryTransport):
    capabilities = frozenset(Capability) - {Capability.CHECKSUM}


def _manifest(folder: Path, steps: tuple[Step, ...], *, preserve: bool = False,
              address: int = FLASH, images: tuple[str, ...] = ("app",)) -> Manifest:
    specs = {name: ImageSpec(name=name, path=folder / f"{name}.bin", format="bin",
                             address=address if name == "app" else address + 0x100,
                             preserve=preserve) for name in images}
    return Manifest(
        version=1, name="line", path=folder / "line.yaml", sha256="5e" * 32,
        files=(folder / "line.yaml",), images=frozen_map(specs),
        links=frozen_map({"bus": LinkSpec(name="bus", kind="sim")}),
        recipes=frozen_map({"std": Recipe(name="std", steps=steps)}),
        devices=frozen_map({"unit-1": Device(name="unit-1", chip=F4,
                                             link=DeviceLink(link="bus"), recipe="std")}),
        execution=Execution(max_parallel=1))


def _flash(folder: Path, world: SimulationWorld, data: bytes, *, preserve: bool = False,
           address: int = FLASH, steps: tuple[Step, ...] = SKIP_STEPS) -> dict:
    """Write ``data`` as image ``app`` and run; return the write's ``step.finished``."""
    (folder / "app.bin").write_bytes(data)
    plan = compile_plan(_manifest(folder, steps, preserve=preserve, address=address))
    sink = CapturingSink()
    run = execute(plan, world=world, events=sink)
    assert run.exit_code == 0, [(n, e.get("error")) for n, e in sink.events if e.get("error")]
    return next(e for e in sink.named("step.finished") if e["action"] == "write")


def _seed(world: SimulationWorld, flash: bytes) -> SimChip:
    sim = SimChip(chip_database().part(F4), initial_flash=flash)
    world.substitute("unit-1", sim)
    return sim


def _pattern(size: int, seed: int) -> bytes:
    return bytes(((i * 31 + seed * 17 + i // 257) & 0xFF) for i in range(size))


# ----------------------------------------------------------------------------- runs


def test_an_unchanged_image_rewrites_nothing(tmp_path: Path, world: SimulationWorld) -> None:
    app = _pattern(40 * 1024, 1)
    first = _flash(tmp_path, world, app)
    assert first["units_rewritten"] == 3 and first["units_skipped"] == 0
    again = _flash(tmp_path, world, app)
    assert again["units_skipped"] == 3 and again["units_rewritten"] == 0
    assert again["bytes_written"] == 0
    assert again["compare_method"] == "checksum"
    assert world.chips["unit-1"].flash[:len(app)] == app


def test_the_verify_after_a_skip_takes_the_comparison_of_untouched_units(
        tmp_path: Path, world: SimulationWorld) -> None:
    app = _pattern(40 * 1024, 1)
    _flash(tmp_path, world, app)
    (tmp_path / "app.bin").write_bytes(app)
    steps = (WriteStep(images=("app",), skip_unchanged=True), VerifyStep())
    sink = CapturingSink()
    assert execute(compile_plan(_manifest(tmp_path, steps)), world=world,
                   events=sink).exit_code == 0
    verify = next(e for e in sink.named("step.finished") if e["action"] == "verify")
    assert verify["units_proven_by_write"] == verify["units"] == 3


def test_a_read_back_verify_reads_units_a_checksum_compared(
        tmp_path: Path, world: SimulationWorld) -> None:
    app = _pattern(0x4000, 1)
    _flash(tmp_path, world, app)
    sim = world.chips["unit-1"]
    read: dict[VerifyMethod, int] = {}
    for method in (VerifyMethod.AUTO, VerifyMethod.READBACK):
        steps = (WriteStep(images=("app",), skip_unchanged=True), VerifyStep(method=method))
        before = sim.stats.bytes_read
        assert execute(compile_plan(_manifest(tmp_path, steps)), world=world).exit_code == 0
        read[method] = sim.stats.bytes_read - before
    # The comparison was by checksum: a read-back verify still reads the unit back.
    assert read[VerifyMethod.READBACK] >= read[VerifyMethod.AUTO] + len(app)


def test_pyocd_1983_shape_a_changed_page_rewrites_its_whole_sector(
        tmp_path: Path, world: SimulationWorld) -> None:
    """16 KiB sectors, 4 KiB changed in one: the other 12 KiB must not read back erased."""
    old = _pattern(64 * 1024, 2)
    _flash(tmp_path, world, old)
    new = bytearray(old)
    page = 0x4000 + 0x1000                      # the second 4 KiB page of sector 1
    new[page:page + 0x1000] = _pattern(0x1000, 9)
    finished = _flash(tmp_path, world, bytes(new))
    assert finished["rewritten"] == [["0x08004000", "0x08008000"]]
    assert finished["units_skipped"] == 3
    flash = world.chips["unit-1"].flash
    assert flash[:len(new)] == bytes(new)
    assert flash[0x4000:0x5000] == old[0x4000:0x5000]        # same bytes, same sector
    assert flash[0x6000:0x8000] == old[0x6000:0x8000]


def test_stale_bytes_beyond_a_shorter_image_count_as_a_change(
        tmp_path: Path, world: SimulationWorld) -> None:
    _flash(tmp_path, world, _pattern(0x3000, 3))
    finished = _flash(tmp_path, world, _pattern(0x2000, 3))
    assert finished["units_rewritten"] == 1
    assert world.chips["unit-1"].flash[0x2000:0x4000] == b"\xff" * 0x2000


def test_preserved_bytes_of_a_rewritten_sector_are_kept(
        tmp_path: Path, world: SimulationWorld) -> None:
    flash = bytearray(b"\xff" * GEOMETRY.size)
    flash[0x3000:0x3004] = b"CAL!"
    sim = _seed(world, bytes(flash))
    finished = _flash(tmp_path, world, _pattern(0x1000, 4), preserve=True)
    assert finished["units_rewritten"] == 1 and finished["preserved_bytes"] == 0x3000
    assert sim.flash[0x3000:0x3004] == b"CAL!"
    again = _flash(tmp_path, world, _pattern(0x1000, 4), preserve=True)
    assert again["units_skipped"] == 1


def test_read_back_decides_where_the_link_has_no_checksum(world: SimulationWorld) -> None:
    chip = chip_database().part(F4)
    request = simulated_request(world, device="a", link="bench", kind="sim", options={}, chip=chip)
    transport = _NoChecksum.open(request)
    transport.connect()
    memory = MemoryMap((Segment(FLASH, _pattern(0x8000, 5)),))
    units = memory.blocks(chip.flash)
    first = compare_units(transport, memory, units, erased=0xFF)
    assert first.method == "readback" and len(first.differ) == 2
    rewrite_units(transport, memory, first, lambda done: None)
    second = compare_units(transport, memory, units, erased=0xFF)
    assert second.differ == () and len(second.same) == 2


def test_the_erase_step_leaves_skipping_units_to_the_write(tmp_path: Path) -> None:
    (tmp_path / "app.bin").write_bytes(_pattern(0x1000, 6))
    plan = compile_plan(_manifest(tmp_path, SKIP_STEPS))
    kinds = [task.kind.value for task in plan.device("unit-1").tasks]
    assert kinds == ["connect", "write", "verify"]


def test_a_unit_shared_with_another_write_step_is_refused(tmp_path: Path) -> None:
    (tmp_path / "app.bin").write_bytes(_pattern(0x100, 7))
    (tmp_path / "boot.bin").write_bytes(_pattern(0x100, 8))
    steps = (WriteStep(images=("app",), skip_unchanged=True), WriteStep(images=("boot",)))
    manifest = _manifest(tmp_path, steps, images=("app", "boot"))
    with pytest.raises(PlanError, match="both program the erase unit"):
        compile_plan(manifest)


def test_a_unit_shared_with_a_unit_data_field_is_refused(tmp_path: Path) -> None:
    (tmp_path / "app.bin").write_bytes(_pattern(0x100, 7))
    steps = (WriteStep(images=("app",), skip_unchanged=True),
             UnitDataStep(address=FLASH + 0x200, size=4,
                          source=CounterSource(state=tmp_path / "serials.json", start=1,
                                                encoding=Encoding(width=4))))
    with pytest.raises(PlanError, match="shares an erase unit"):
        compile_plan(_manifest(tmp_path, steps))


# ----------------------------------------------------------------------------- property

_SPAN = 0x14000          # sectors 0..3 (16 KiB) and the first 16 KiB of sector 4 (64 KiB)


@st.composite
def _reflash(draw: st.DrawFn) -> tuple[int, bytes, list[tuple[int, int]], bool, bytes]:
    offset = draw(st.integers(0, 0x8000 // 4)) * 4
    size = draw(st.integers(1, (_SPAN - offset) // 4)) * 4
    image = draw(st.binary(min_size=size, max_size=size))
    changes = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 255)),
                            max_size=6))
    preserve = draw(st.booleans())
    background = draw(st.binary(min_size=64, max_size=64))
    return offset, image, changes, preserve, background


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_reflash())
def test_reflash_with_skip_unchanged_equals_the_new_image_everywhere(
        case: tuple[int, bytes, list[tuple[int, int]], bool, bytes]) -> None:
    offset, image_a, changes, preserve, background = case
    other = (background * (GEOMETRY.size // len(background) + 1))[:GEOMETRY.size]
    image_b = bytearray(image_a)
    for position, value in changes:
        image_b[position] = value
    with tempfile.TemporaryDirectory() as folder, \
            SimulationWorld(time_scale=0.0, seed="skip") as world:
        sim = _seed(world, other)
        address = FLASH + offset
        _flash(Path(folder), world, image_a, preserve=preserve, address=address)
        after_a = bytes(sim.flash)
        finished = _flash(Path(folder), world, bytes(image_b), preserve=preserve,
                          address=address)
        flash = bytes(sim.flash)
    start, end = offset, offset + len(image_b)
    assert flash[start:end] == bytes(image_b)
    units = MemoryMap((Segment(address, bytes(image_b)),)).blocks(GEOMETRY)
    for unit in units:
        lo, hi = unit.address - FLASH, unit.end - FLASH
        outside = [i for i in range(lo, hi) if not start <= i < end]
        expected_outside = bytes(other[i] if preserve else 0xFF for i in outside)
        assert bytes(flash[i] for i in outside) == expected_outside   # preserved or erased
    same = {unit.address for unit in units
            if after_a[unit.address - FLASH:unit.end - FLASH]
            == flash[unit.address - FLASH:unit.end - FLASH]}
    skipped = {int(low, 16) for low, _ in finished["skipped"]}
    assert skipped == same                     # skipped exactly where nothing changed
    untouched = [(u.address, u.end) for u in GEOMETRY.blocks if u not in units]
    for low, high in untouched[:2]:
        assert flash[low - FLASH:high - FLASH] == other[low - FLASH:high - FLASH]
