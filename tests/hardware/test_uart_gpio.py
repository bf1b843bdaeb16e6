"""A USART fixture with BOOT0 and NRST on a station's GPIO lines instead of modem lines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runner.compiler import compile_plan
from runner.launch import execute, simulation_world
from runner.manifest import load_manifest
from runner.model import LogSpec
from transports.sim.control import sim_hardware
from transports.sim.endpoints import usart_key
from transports.sim.usart import endpoint

APP = bytes(range(256)) * 16


def _manifest(tmp_path: Path, link: str) -> Path:
    (tmp_path / "app.bin").write_bytes(APP)
    path = tmp_path / "uart.yaml"
    path.write_text(f"""manifest: 1
name: uart-gpio
simulate: true
images:
  app: {{file: app.bin, address: 0x08000000}}
transports:
  uart-a: {link}
recipes:
  flash:
    - erase: {{scope: used}}
    - write: [app]
    - verify: {{}}
    - reset: {{mode: hardware}}
devices:
  board: {{chip: stm32f103cb, transport: uart-a, recipe: flash}}
simulation: {{time-scale: 0}}
""")
    return path


LINES = ("boot0: {gpio: {chip: pinctrl-rp1, line: GPIO17}}, "
         "reset: {gpio: {chip: pinctrl-rp1, line: GPIO27}}")


@pytest.mark.parametrize("sequences", ["", ", entry-sequence: 'boot0,nrst,-nrst', "
                                           "exit-sequence: '-boot0,nrst,-nrst'"])
def test_gpio_boot0_and_nrst_bring_the_chip_into_its_rom_and_back_to_its_application(
        tmp_path: Path, sequences: str) -> None:
    path = _manifest(tmp_path, f"{{kind: uart, port: /dev/ttyAMA0, {LINES}{sequences}}}")
    plan = compile_plan(load_manifest(path))
    plan = dataclasses.replace(plan, log=LogSpec(file=str(tmp_path / "run.jsonl")))
    with simulation_world(plan) as world:
        result = execute(plan, world=world)
        assert result.exit_code == 0
        assert world.chips["board"].flash[:len(APP)] == APP
        hardware = sim_hardware(world)
        roles = [(role, active) for _, consumer, role, _, active in hardware.gpio.timeline
                 if consumer == "flashrunner:board"]
        # Entry: BOOT0 high across an NRST pulse; exit: BOOT0 low across another.
        assert ("boot0", True) in roles and ("boot0", False) in roles
        assert roles.count(("nrst", True)) >= 2
        chip = hardware.gpio.chip("pinctrl-rp1")
        assert all(chip.lines[chip.offset(n)].consumer is None for n in ("GPIO17", "GPIO27"))
        board = endpoint(usart_key(world, "uart-a", "board"))
        assert not board.stream.core.active  # after the exit the application runs


def test_a_gpio_line_that_is_not_on_the_chip_is_a_clear_connect_error(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "{kind: uart, port: /dev/ttyAMA0, "
                               "boot0: {gpio: {chip: pinctrl-rp1, line: GPIO99}}, reset: dtr}")
    plan = compile_plan(load_manifest(path))
    plan = dataclasses.replace(plan, log=LogSpec(file=str(tmp_path / "run.jsonl")))
    with simulation_world(plan) as world:
        hardware = sim_hardware(world)
        hardware.gpio_chip("pinctrl-rp1", lines=28)
        result = execute(plan, world=world)
    (device,) = result.devices
    assert result.exit_code == 1
    assert "GPIO99" in (device.error or "")
