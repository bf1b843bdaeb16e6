"""The console renderer: readable lines, a summary, no tracebacks, colour only where wanted."""

from __future__ import annotations

import io

import pytest
from executor_plans import device, plan

from runner.console import ConsoleRenderer
from runner.launch import execute
from transports.memory import MemoryTransport
from transports.sim import Fault, SimulationWorld
from transports.sim.world import DeviceProfile


class _Pipe(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _render(world: SimulationWorld, *devices_: object, tty: bool = False) -> str:
    out = _Pipe(tty)
    execute(plan(list(devices_)), world=world,  # type: ignore[arg-type]
            events=ConsoleRenderer(out))
    return out.getvalue()


def test_plain_output_names_identity_steps_and_a_summary(world: SimulationWorld) -> None:
    text = _render(world, device("a"))
    assert "a: stm32f103c8 (DEV_ID 0x410) UID" in text
    assert "a: write ok 4.0 KiB in" in text
    assert text.splitlines()[-3].split() == ["device", "outcome", "duration", "written",
                                            "verified", "error"]
    assert "\033[" not in text


def test_failures_show_the_error_message_in_the_line_and_the_summary(
        world: SimulationWorld) -> None:
    world.profiles["a"] = DeviceProfile(faults=(Fault(kind="nack", op="write", times=None),))
    text = _render(world, device("a"))
    assert "a: write FAILED: injected nack" in text
    assert text.splitlines()[-2].startswith("a ") and "injected nack" in text.splitlines()[-2]
    assert "exit code 1" in text.splitlines()[-1]


def test_internal_errors_never_print_a_traceback(
        world: SimulationWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: MemoryTransport) -> None:
        raise RuntimeError("wires crossed")

    monkeypatch.setattr(MemoryTransport, "identify", broken)
    text = _render(world, device("a"))
    assert "internal error: wires crossed" in text
    assert "Traceback" not in text


def test_a_terminal_gets_a_live_block_in_colour(world: SimulationWorld,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    text = _render(world, device("a"), tty=True)
    assert "\033[J" in text and "\033[32m" in text
    assert "0/1 done · 0 running" in text


def test_no_color_turns_colour_off_on_a_terminal(world: SimulationWorld,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    text = _render(world, device("a"), tty=True)
    assert "\033[32m" not in text
