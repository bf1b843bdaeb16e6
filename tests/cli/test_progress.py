"""The live progress display: rows that fit the terminal, no stale rows, plain lines off a TTY.

The end-to-end tests run the CLI on a pseudo-terminal of a given width and
replay what it wrote through pyte, a VT100 emulator: the screen a person
would have seen.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte
import pytest

from runner import events as ev
from runner.console import ConsoleRenderer
from runner.progress import DeviceProgress, RunProgress, device_row, overall_row

ROOT = Path(__file__).resolve().parent.parent.parent
LINE = ROOT / "tests" / "cli" / "line.yaml"
ROWS = 30


def _spawn(columns: int, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, columns, 0, 0))
    env = {key: value for key, value in os.environ.items()
           if key not in ("NO_COLOR", "COLUMNS", "LINES")}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen([sys.executable, "-m", "runner", *args], stdin=slave,
                               stdout=slave, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    return process, master


def _read_all(process: subprocess.Popen[bytes], master: int) -> list[bytes]:
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:   # the child closed its side
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(master)
    return chunks


def _is_block_row(row: str) -> bool:
    return " done · " in row or "%" in row and ("█" in row or "ETA" in row or "KiB" in row)


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> dict[int, list[bytes]]:
    """What the CLI wrote to a 60, 80 and 160 column terminal, run side by side."""
    folder = tmp_path_factory.mktemp("progress")
    running = {columns: _spawn(columns, "run", str(LINE), "--time-scale", "0.5",
                               "--log-file", str(folder / f"{columns}.jsonl"))
               for columns in (60, 80, 160)}
    return {columns: _read_all(*spawned) for columns, spawned in running.items()}


@pytest.mark.parametrize("columns", [60, 80, 160])
def test_live_rows_fit_the_terminal_and_never_go_stale(screens: dict[int, list[bytes]],
                                                       columns: int) -> None:
    # Look at the screen just before each redraw clears the block: a whole block.
    data = b"".join(screens[columns])
    cuts = [match.start() for match in re.finditer(rb"\x1b\[\d+F", data)]
    chunks = [data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)],
                                                     strict=True)]
    exact = pyte.Screen(columns, ROWS)
    wide = pyte.Screen(columns * 3, ROWS)   # shows what a real terminal would have wrapped
    feeds = pyte.ByteStream(exact), pyte.ByteStream(wide)
    seen_block = False
    for chunk in chunks:
        for feed in feeds:
            feed.feed(chunk)
        rows = [row.rstrip() for row in exact.display]
        block = [row for row in rows if _is_block_row(row)]
        seen_block = seen_block or bool(block)
        # One overall line at most, one row per device at most: nothing left behind.
        assert sum(" done · " in row for row in block) <= 1, "\n".join(rows)
        for device in ("sensor-1", "sensor-2", "gateway"):
            assert sum(row.startswith(device) for row in block) <= 1, "\n".join(rows)
        for row in (row.rstrip() for row in wide.display):
            if _is_block_row(row):
                assert len(row) < columns, row
    assert seen_block
    final = [row.rstrip() for row in exact.display if row.strip()]
    assert not [row for row in final if _is_block_row(row)], "\n".join(final)
    assert final[-2].startswith("3 ok in ") and final[-2].endswith("exit code 0")
    assert final[-1].startswith("audit log: ")


def test_json_on_the_same_terminal_turns_the_live_block_off(tmp_path: Path) -> None:
    process, master = _spawn(80, "run", str(LINE), "--time-scale", "0.2", "--json",
                             "--log-file", str(tmp_path / "run.jsonl"))
    output = b"".join(_read_all(process, master)).decode()
    assert process.returncode == 0
    assert "\033[J" not in output and "\033[1F" not in output
    records = [json.loads(line) for line in output.replace("\r\n", "\n").splitlines()
               if line.startswith("{")]
    assert records[0]["event"] == "run.started" and records[-1]["event"] == "run.finished"


def _sample(**changes: object) -> DeviceProgress:
    line = DeviceProgress(device="sensor-12", chip="stm32f103c8", step="write", done=9000,
                          total=24576, started=0.0, retries=1)
    for key, value in changes.items():
        setattr(line, key, value)
    return line


@pytest.mark.parametrize("width", [20, 30, 45, 60, 79, 80, 100, 159, 160, 240])
def test_rows_never_exceed_the_width(width: int) -> None:
    for line in (_sample(), _sample(total=0, done=0, step="connecting"),
                 _sample(device="a-very-long-device-name-indeed"), _sample(retries=0)):
        assert len(device_row(line, width=width, now=3.0, name_width=16)) <= width
    run = RunProgress(devices=50000, estimate_s=3600, finished_s=1200, started=0.0,
                      counts={"ok": 20000, "failed": 3})
    assert len(overall_row(run, [_sample()], width=width, now=1800.0)) <= width


def test_a_row_shows_step_bytes_rate_and_eta_when_there_is_room() -> None:
    row = device_row(_sample(retries=0), width=160, now=3.0)
    assert row.split()[:3] == ["sensor-12", "stm32f103c8", "write"]
    assert "37%" in row and "8.8/24.0 KiB" in row and "2.9 KiB/s" in row and "ETA 5 s" in row
    narrow = device_row(_sample(retries=0), width=50, now=3.0)
    assert "stm32f103c8" not in narrow and "█" not in narrow and "ETA" in narrow


def test_the_overall_line_estimates_what_is_left_from_the_plan() -> None:
    run = RunProgress(devices=4, estimate_s=100.0, finished_s=50.0, started=0.0,
                      counts={"ok": 1, "failed": 1})
    row = overall_row(run, [], width=120, now=20.0)
    assert row == "2/4 done · 0 running · 1 failed · 20 s elapsed · ~20 s left"


def _events(renderer: ConsoleRenderer, devices: int) -> None:
    renderer.emit(ev.RUN_STARTED, manifest="m", devices=[f"d{i}" for i in range(devices)],
                  max_parallel=devices, estimate_s=10.0, tool_version="0")
    for index in range(devices):
        renderer.emit(ev.DEVICE_STARTED, device=f"d{index}", chip="stm32f103c8")
        renderer.emit(ev.STEP_STARTED, device=f"d{index}", action="write", bytes=4096,
                      estimate_s=1.0)
        for done in range(0, 4097, 64):
            renderer.emit(ev.STEP_PROGRESS, device=f"d{index}", done=done, total=4096)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_redraws_are_throttled_not_one_per_event() -> None:
    out = _Terminal()
    renderer = ConsoleRenderer(out, live=True, colour=False, width=80, ticker=False,
                               refresh_s=3600)
    _events(renderer, devices=40)   # 2,600 progress events
    renderer.refresh()
    assert out.getvalue().count("\033[J") <= 2


def test_off_a_terminal_progress_prints_nothing_but_plain_lines() -> None:
    out = io.StringIO()
    renderer = ConsoleRenderer(out, ticker=False)
    _events(renderer, devices=3)
    renderer.refresh(force=True)
    text = out.getvalue()
    assert "\033[" not in text and "█" not in text
    assert text.splitlines() == ["flashrunner 0: m — 3 devices, max-parallel 3"]


def test_quiet_keeps_the_final_line_only() -> None:
    out = _Terminal()
    renderer = ConsoleRenderer(out, quiet=True, ticker=False)
    _events(renderer, devices=1)
    renderer.emit(ev.RUN_FINISHED, devices=[{"device": "d0", "outcome": "ok"}],
                  counts={"ok": 1}, duration_ms=1500, exit_code=0)
    assert out.getvalue() == "1 ok in 1.50 s; exit code 0\n"


def test_no_block_is_drawn_after_the_summary() -> None:
    out = _Terminal()
    renderer = ConsoleRenderer(out, live=True, colour=False, width=80, ticker=False)
    _events(renderer, devices=2)
    renderer.emit(ev.RUN_FINISHED, devices=[{"device": "d0", "outcome": "ok"}],
                  counts={"ok": 1}, duration_ms=10, exit_code=0)
    finished = out.getvalue()
    renderer.refresh(force=True)   # a late tick (the ticker thread) draws nothing
    renderer.note("late trace line")
    assert out.getvalue() == finished + "late trace line\n"
