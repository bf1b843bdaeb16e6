"""The console renderer: readable lines, a summary, no tracebacks, colour only where wanted."""

from __future__ import annotations

import io
import time

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


class _StuckStream(io.StringIO):
    """A terminal that stops taking text until ``release`` (a full pipe, a stalled SSH)."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.release = threading.Event()
        self.entered = threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait(5)
        return super().write(text)

    def isatty(self) -> bool:
        return False


def test_write_behind_keeps_a_stuck_terminal_from_holding_up_the_run(
        world: SimulationWorld) -> None:
    import threading

    out = _StuckStream()
    renderer = ConsoleRenderer(out, write_behind=True)
    finished = threading.Event()

    def run() -> None:
        execute(plan([device("a"), device("b")]), world=world,
                events=renderer)
        finished.set()

    # Both devices write their images while the writer is stuck on the first line;
    # only the summary, written before the run's result is returned, waits for it.
    worker = threading.Thread(target=run)
    worker.start()
    assert out.entered.wait(5)
    deadline = time.monotonic() + 5
    while set(renderer.written) != {"a", "b"} and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(renderer.written) == {"a", "b"}
    assert not finished.is_set()
    out.release.set()
    worker.join(10)
    assert finished.is_set()
    text = out.getvalue()
    assert "a: write ok 4.0 KiB in" in text and "b: write ok 4.0 KiB in" in text
    assert text.index("device  outcome") > text.index("a: write ok")   # order kept
    assert text.splitlines()[-1].endswith("exit code 0")


def test_write_behind_lines_come_out_in_order_and_all_of_them_by_the_summary(
        world: SimulationWorld) -> None:
    plain, behind = _Pipe(False), _Pipe(False)
    execute(plan([device("a"), device("b")], max_parallel=1), world=world,
            events=ConsoleRenderer(plain))
    renderer = ConsoleRenderer(behind, write_behind=True)
    execute(plan([device("a"), device("b")], max_parallel=1),
            world=SimulationWorld(), events=renderer)
    # Everything is out when the run returns, as without write-behind (times and
    # UIDs differ).
    assert [line.split()[:2] for line in behind.getvalue().splitlines()] == \
        [line.split()[:2] for line in plain.getvalue().splitlines()]
    renderer.close()                      # as the run's console is closed at its end
    renderer.note("after the run")       # after close: written at once
    assert behind.getvalue().endswith("after the run\n")
