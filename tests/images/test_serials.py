"""Serial numbers: never reused, no gaps, even across processes and crashes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runner.errors import UnitDataError
from runner.serials import SerialCounter

ROOT = Path(__file__).resolve().parents[2]

ALLOCATE = """
import os, signal, sys
from pathlib import Path
from runner.serials import SerialCounter
state, count, device, crash = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
counter = SerialCounter(state=state, start=1000)
for _ in range(count):
    allocation = counter.allocate(device=device, run_id="run-" + device)
    print(allocation.value, flush=True)
if crash == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _allocate_in_process(state: Path, count: int, device: str,
                         crash: str = "no") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", ALLOCATE, str(state), str(count), device,
                             crash], cwd=ROOT, stdout=subprocess.PIPE, text=True)


def test_values_start_at_start_and_follow_each_other(tmp_path: Path) -> None:
    counter = SerialCounter(state=tmp_path / "serials.json", start=1000)
    values = [counter.allocate(device=f"d{i}", run_id="r").value for i in range(3)]
    assert values == [1000, 1001, 1002]
    assert json.loads((tmp_path / "serials.json").read_text()) == {"next": 1003}


def test_every_allocation_is_journaled_with_device_and_run(tmp_path: Path) -> None:
    counter = SerialCounter(state=tmp_path / "serials.json", start=7)
    counter.allocate(device="sensor-1", run_id="r1")
    counter.allocate(device="sensor-2", run_id="r2")
    assert [(a.value, a.device, a.run_id) for a in counter.journal()] == [
        (7, "sensor-1", "r1"), (8, "sensor-2", "r2")]


def test_two_processes_share_a_counter_without_duplicates_or_gaps(tmp_path: Path) -> None:
    state = tmp_path / "serials.json"
    runs = [_allocate_in_process(state, 200, name) for name in ("a", "b")]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs)
    values = [int(line) for output in outputs for line in output.split()]
    assert sorted(values) == list(range(1000, 1400))
    journal = SerialCounter(state=state).journal()
    assert sorted(a.value for a in journal) == list(range(1000, 1400))


def test_a_killed_run_leaves_only_its_own_value_unused(tmp_path: Path) -> None:
    state = tmp_path / "serials.json"
    crashed = _allocate_in_process(state, 1, "victim", crash="kill")
    output, _ = crashed.communicate(timeout=60)
    assert crashed.returncode == -signal.SIGKILL
    lost = int(output)
    counter = SerialCounter(state=state, start=1000)
    assert counter.allocate(device="next", run_id="r2").value == lost + 1
    assert [(a.value, a.device) for a in counter.journal()] == [(lost, "victim"),
                                                                 (lost + 1, "next")]


def test_journal_ahead_of_state_wins_after_a_crash_between_them(tmp_path: Path) -> None:
    counter = SerialCounter(state=tmp_path / "serials.json", start=1)
    counter.allocate(device="a", run_id="r")
    # A crash after the journal line, before the state file was replaced:
    with counter.journal_path.open("a") as journal:
        journal.write(json.dumps({"value": 2, "device": "b", "run_id": "r", "time": "t"}) + "\n")
    assert counter.allocate(device="c", run_id="r").value == 3


def test_a_torn_journal_line_is_ignored_and_not_glued_to_the_next(tmp_path: Path) -> None:
    counter = SerialCounter(state=tmp_path / "serials.json", start=1)
    counter.allocate(device="a", run_id="r")
    with counter.journal_path.open("a") as journal:
        journal.write('{"value": 2, "dev')
    assert counter.allocate(device="b", run_id="r").value == 2
    assert [a.value for a in counter.journal()] == [1, 2]


def test_raising_start_moves_the_counter_forward_but_lowering_never_back(
        tmp_path: Path) -> None:
    state = tmp_path / "serials.json"
    SerialCounter(state=state, start=10).allocate(device="a", run_id="r")
    assert SerialCounter(state=state, start=500).allocate(device="b", run_id="r").value == 500
    assert SerialCounter(state=state, start=0).allocate(device="c", run_id="r").value == 501


def test_exhausted_counter_refuses_and_burns_nothing(tmp_path: Path) -> None:
    counter = SerialCounter(state=tmp_path / "serials.json", start=1, limit=1)
    counter.allocate(device="a", run_id="r")
    with pytest.raises(UnitDataError, match="exhausted: the next value 2 is past its limit 1"):
        counter.allocate(device="b", run_id="r")
    assert [a.value for a in counter.journal()] == [1]


def test_damaged_state_file_is_reported_with_the_journal_to_restore_from(
        tmp_path: Path) -> None:
    state = tmp_path / "serials.json"
    state.write_text("{not json")
    with pytest.raises(UnitDataError, match="unreadable") as caught:
        SerialCounter(state=state).allocate(device="a", run_id="r")
    assert "serials.json.journal" in (caught.value.hint or "")


def test_threads_of_one_run_share_a_counter_safely(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    counter = SerialCounter(state=tmp_path / "serials.json", start=1)

    def allocate(index: int) -> int:
        return counter.allocate(device=f"unit-{index}", run_id="r").value

    with ThreadPoolExecutor(max_workers=4) as pool:
        values = list(pool.map(allocate, range(100)))
    assert sorted(values) == list(range(1, 101))
