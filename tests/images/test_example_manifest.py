"""The unit-data example manifest provisions a board and keeps its calibration sector."""

from __future__ import annotations

import dataclasses
import shutil
import zlib
from pathlib import Path

from runner.compiler import compile_plan
from runner.launch import execute, simulation_world
from runner.manifest import load_manifest
from runner.model import LogSpec
from transports.chips import chip_database
from transports.sim import SimChip

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
FLASH = 0x08000000
SECTOR3 = 0x0800C000


def test_example_writes_serial_uid_words_and_keeps_the_calibration(tmp_path: Path) -> None:
    shutil.copy(MANIFESTS / "unit-data-f411.yaml", tmp_path)
    shutil.copytree(MANIFESTS / "images", tmp_path / "images")
    plan = compile_plan(load_manifest(tmp_path / "unit-data-f411.yaml"))
    assert not plan.warnings
    plan = dataclasses.replace(plan, log=LogSpec(file=str(tmp_path / "run.jsonl")),
                               simulation=dataclasses.replace(plan.simulation, time_scale=0.0))
    chip = chip_database().part("stm32f411re")
    flash = bytearray(b"\xff" * chip.flash.size)
    calibration = b"calibration table " * 40
    flash[SECTOR3 + 0x100 - FLASH:SECTOR3 + 0x100 - FLASH + len(calibration)] = calibration
    with simulation_world(plan) as world:
        sim = SimChip(chip, initial_flash=bytes(flash))
        world.substitute("nucleo-f411", sim)
        assert execute(plan, world=world).exit_code == 0
        data = sim.flash
    app = (tmp_path / "images" / "dfu-blinky-f411.bin").read_bytes()
    assert data[:len(app)] == app
    field = data[SECTOR3 - FLASH:SECTOR3 - FLASH + 0x30]
    assert int.from_bytes(field[0:4], "little") == 100000
    assert int.from_bytes(field[4:8], "little") == zlib.crc32(sim.uid)
    assert field[0x10:0x2C] == f"ID-{sim.uid.hex()}".encode().ljust(28, b"\0")
    offset = SECTOR3 + 0x100 - FLASH
    assert data[offset:offset + len(calibration)] == calibration
    assert (tmp_path / "serials" / "f411.rehearsal.json").exists()
    assert not (tmp_path / "serials" / "f411.json").exists()
