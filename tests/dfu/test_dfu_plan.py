"""The DFU transport driven by the compiler and the executor, as a manifest would."""

from __future__ import annotations

from pathlib import Path

from runner.compiler import compile_plan
from runner.launch import execute
from runner.model import (
    Device,
    DeviceLink,
    EraseScope,
    EraseStep,
    ImageSpec,
    LinkSpec,
    Manifest,
    Recipe,
    ResetStep,
    VerifyMethod,
    VerifyStep,
    WriteStep,
    frozen_map,
)
from runner.plan import Outcome
from tests.dfu.conftest import board_of, firmware, make_world
from transports.sim.world import DeviceProfile


def _manifest(image: Path, ports: dict[str, str]) -> Manifest:
    recipe = Recipe(name="dfu", steps=(
        EraseStep(scope=EraseScope.USED), WriteStep(images=("app",)),
        VerifyStep(method=VerifyMethod.READBACK), ResetStep(mode="go")))
    devices = {name: Device(name=name, chip="stm32f411re", recipe="dfu",
                            link=DeviceLink(link="hub", options=frozen_map({"port-path": port})))
               for name, port in ports.items()}
    return Manifest(version=1, name="dfu-plan", path=image.parent / "m.yaml", sha256="0" * 64,
                    files=(), simulate=True,
                    images=frozen_map({"app": ImageSpec(name="app", path=image,
                                                        address=0x08000000, format="bin")}),
                    links=frozen_map({"hub": LinkSpec(name="hub", kind="dfu")}),
                    recipes=frozen_map({"dfu": recipe}), devices=frozen_map(devices))


def test_two_boards_end_verified_and_running(tmp_path: Path) -> None:
    image = tmp_path / "app.bin"
    image.write_bytes(firmware(50_000))
    plan = compile_plan(_manifest(image, {"left": "1-4.1", "right": "1-4.2"}))
    with make_world() as world:
        result = execute(plan, world=world)
        assert result.ok, [(d.device, d.error) for d in result.devices]
        for name in ("left", "right"):
            assert world.chips[name].flash[:50_000] == firmware(50_000)
            assert board_of(world, name).application == 0x08000000
        steps = {s.kind.value for d in result.devices for s in d.steps}
        assert {"erase", "write", "verify", "reset"} <= steps


def test_board_with_another_chip_is_refused_before_erasing(tmp_path: Path) -> None:
    image = tmp_path / "app.bin"
    image.write_bytes(firmware(4096))
    plan = compile_plan(_manifest(image, {"board": "1-4.1"}))
    profile = DeviceProfile(quirks={"flash-layout": "@Internal Flash  /0x08000000/256*002Kg"},
                            fill=0x33)
    with make_world({"board": profile}) as world:
        result = execute(plan, world=world)
        (device,) = result.devices
        assert device.outcome is Outcome.FAILED
        assert device.error_type == "ChipMismatch"
        assert world.chips["board"].flash[:16] == b"\x33" * 16
