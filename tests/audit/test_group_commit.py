"""Group commit: records of many threads written a batch at a time, the audit contract kept.

A batch is made deterministic by holding the log file's first write: one
thread's record is in flight while the others number theirs and wait, so the
next write carries all of them. The full disk is a raw file that takes part of
that batch and then fails with ENOSPC, as a real disk does.
"""

from __future__ import annotations

import errno
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runner.audit.chain import genesis, line_hash
from runner.logging import (
    AuditLog,
    AuditWriteFailed,
    JsonlFileSink,
    RecordOutput,
    StdoutJsonSink,
)

FOLLOWERS = 5


def progress(device: str, done: int) -> dict[str, Any]:
    """The fields of a ``step.progress`` event."""
    return {"device": device, "transport": "probe", "kind": "sim", "step": f"{device}/1-write",
            "action": "write", "done": done, "total": 1000, "percent": done / 10}


class _HeldFile:
    """A raw file whose first write waits for :attr:`release`.

    With ``fail_after_lines``, the write after that takes that many whole lines
    and a few bytes of the next, and every later write fails like a full disk.
    """

    def __init__(self, inner: Any, fail_after_lines: int | None = None) -> None:
        self.inner = inner
        self.fail_after_lines = fail_after_lines
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[int] = []     # bytes offered per write

    def write(self, data: memoryview) -> int:
        self.calls.append(len(data))
        if len(self.calls) == 1:
            self.entered.set()
            assert self.release.wait(10)
        elif self.fail_after_lines is not None:
            if len(self.calls) > 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            raw = bytes(data)
            end = 0
            for _ in range(self.fail_after_lines):
                end = raw.index(b"\n", end) + 1
            data = data[:end + 5]
        return int(self.inner.write(data))

    def fileno(self) -> int:
        return int(self.inner.fileno())

    def close(self) -> None:
        self.inner.close()


class _Seen:
    """A listener keeping ``seq`` of each record, in the order it was shown."""

    def __init__(self) -> None:
        self.seqs: list[int] = []

    def emit(self, event: str, **fields: Any) -> None:
        self.seqs.append(int(fields["seq"]))


class _CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1


def _held_log(tmp_path: Path, *, fail_after_lines: int | None = None,
              stdout: io.StringIO | None = None) -> tuple[AuditLog, _HeldFile, _Seen,
                                                           list[BaseException]]:
    sink = JsonlFileSink(tmp_path / "run.jsonl")
    held = _HeldFile(sink._file, fail_after_lines)
    sink._file = held  # type: ignore[assignment]
    seen, failures = _Seen(), list[BaseException]()
    outputs: list[RecordOutput] = [sink] if stdout is None else [sink, StdoutJsonSink(stdout)]
    log = AuditLog("run-1", outputs, listeners=[seen], on_failure=failures.append)
    return log, held, seen, failures


def _emit_one_batch(log: AuditLog, held: _HeldFile) -> None:
    """One record in flight (its write held), FOLLOWERS waiting behind it, then all out."""
    threads = [threading.Thread(target=log.emit, args=("step.progress",),
                                kwargs=progress("lead", 0))]
    threads[0].start()
    assert held.entered.wait(10)
    for index in range(FOLLOWERS):
        threads.append(threading.Thread(target=log.emit, args=("step.progress",),
                                        kwargs=progress(f"d{index}", 1)))
        threads[-1].start()
    deadline = time.monotonic() + 10
    while log._seq < 1 + FOLLOWERS:    # every follower numbered and waiting
        assert time.monotonic() < deadline, "the followers never numbered their records"
        time.sleep(0.001)
    held.release.set()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive(), "an emit hangs"


def _lines(path: Path) -> list[str]:
    text = path.read_text("utf-8")
    assert text == "" or text.endswith("\n"), "the log ends mid-record"
    return text.splitlines()


def _assert_chained(run_id: str, lines: list[str]) -> None:
    prev = genesis(run_id)
    for number, line in enumerate(lines, start=1):
        record = json.loads(line)
        assert (record["seq"], record["prev"]) == (number, prev)
        prev = line_hash(line)


def test_records_waiting_behind_a_write_go_out_in_one_write_per_output(
        tmp_path: Path) -> None:
    stdout = _CountingStream()
    log, held, seen, failures = _held_log(tmp_path, stdout=stdout)
    _emit_one_batch(log, held)
    lines = _lines(tmp_path / "run.jsonl")
    assert len(lines) == 1 + FOLLOWERS
    _assert_chained("run-1", lines)
    assert len(held.calls) == 2                       # the held record, then the batch
    assert (stdout.writes, stdout.flushes) == (2, 2)  # one write and flush per batch
    assert stdout.getvalue().splitlines() == lines    # the same lines, the same order
    assert seen.seqs == list(range(1, 2 + FOLLOWERS))  # the console sees file order
    assert (log.seq, log.head) == (len(lines), line_hash(lines[-1]))
    assert failures == []


@pytest.mark.parametrize("whole", [0, 2])
def test_a_disk_filling_in_the_middle_of_a_batch_keeps_its_whole_records_and_stops(
        tmp_path: Path, whole: int) -> None:
    log, held, seen, failures = _held_log(tmp_path, fail_after_lines=whole)
    _emit_one_batch(log, held)
    lines = _lines(tmp_path / "run.jsonl")
    # The held record, then the batch's first whole records: the next one was cut
    # back, the rest never joined.
    kept = 1 + whole
    assert len(lines) == kept
    _assert_chained("run-1", lines)
    assert (log.seq, log.head) == (kept, line_hash(lines[-1]))
    assert seen.seqs == list(range(1, kept + 1))   # nothing shown that was not recorded
    assert len(failures) == 1 and isinstance(failures[0], AuditWriteFailed)
    assert "No space left on device" in str(failures[0])
    assert log.failure is failures[0]
    log.emit("step.progress", **progress("late", 2))   # nothing joins after the failure
    assert _lines(tmp_path / "run.jsonl") == lines
    assert (log.seq, len(seen.seqs), len(failures)) == (kept, kept, 1)


def test_every_emit_returns_with_its_record_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    stdout = io.StringIO()
    seen = _Seen()
    log = AuditLog("run-1", [JsonlFileSink(path), StdoutJsonSink(stdout)], listeners=[seen])
    missing: list[str] = []

    def worker(name: str) -> None:
        for index in range(40):
            log.emit("step.progress", **progress(name, index))
            if f'"step": "{name}/1-write", "action": "write", "done": {index},' \
                    not in path.read_text("utf-8"):
                missing.append(f"{name} {index}")

    threads = [threading.Thread(target=worker, args=(f"d{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert missing == []
    lines = _lines(path)
    assert len(lines) == 320
    _assert_chained("run-1", lines)
    assert seen.seqs == list(range(1, 321))
    assert stdout.getvalue().splitlines() == lines
    assert (log.seq, log.head) == (320, line_hash(lines[-1]))


def test_a_reader_that_goes_away_ends_the_stream_and_the_log_goes_on(tmp_path: Path) -> None:
    class Gone(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    stdout = StdoutJsonSink(Gone())
    log = AuditLog("run-1", [JsonlFileSink(tmp_path / "run.jsonl"), stdout])
    for index in range(3):
        log.emit("step.progress", **progress("a", index))
    assert stdout.closed
    assert log.failure is None and log.seq == 3
    assert len(_lines(tmp_path / "run.jsonl")) == 3


@pytest.mark.parametrize("lines", [1, 3])
def test_the_file_sink_reports_how_many_lines_of_a_failed_batch_it_kept(
        tmp_path: Path, lines: int) -> None:
    sink = JsonlFileSink(tmp_path / "run.jsonl")
    held = _HeldFile(sink._file, fail_after_lines=lines)
    held.release.set()
    sink._file = held  # type: ignore[assignment]
    sink.write_records(['{"seq": 1}'])
    with pytest.raises(AuditWriteFailed) as failed:
        sink.write_records([f'{{"seq": {n}}}' for n in range(2, 7)])
    assert failed.value.kept == lines
    with pytest.raises(AuditWriteFailed) as refused:   # later batches: nothing taken
        sink.write_records(['{"seq": 7}'])
    assert refused.value.kept == 0
    assert _lines(tmp_path / "run.jsonl") == [f'{{"seq": {n}}}' for n in range(1, lines + 2)]


def test_an_interrupted_write_ends_the_log_at_the_batch_before(tmp_path: Path) -> None:
    class Interrupted(_HeldFile):
        def write(self, data: memoryview) -> int:
            self.calls.append(len(data))
            if len(self.calls) > 1:
                self.inner.write(data[:7])   # part of the record, then Ctrl-C
                raise KeyboardInterrupt
            return int(self.inner.write(data))

    sink = JsonlFileSink(tmp_path / "run.jsonl")
    sink._file = Interrupted(sink._file)  # type: ignore[assignment]
    seen = _Seen()
    log = AuditLog("run-1", [sink], listeners=[seen])
    log.emit("step.progress", **progress("a", 0))
    with pytest.raises(KeyboardInterrupt):
        log.emit("step.progress", **progress("a", 1))
    lines = _lines(tmp_path / "run.jsonl")
    assert len(lines) == 1 and (log.seq, log.head) == (1, line_hash(lines[0]))
    assert isinstance(log.failure, KeyboardInterrupt)
    log.emit("step.progress", **progress("a", 2))   # nothing joins after it
    assert _lines(tmp_path / "run.jsonl") == lines and seen.seqs == [1]


def test_a_batch_emitted_at_once_is_numbered_together_and_written_in_one_write(
        tmp_path: Path) -> None:
    stdout = _CountingStream()
    log, held, seen, failures = _held_log(tmp_path, stdout=stdout)
    held.release.set()
    log.emit_all([("step.progress", progress(f"d{i}", i)) for i in range(6)])
    lines = _lines(tmp_path / "run.jsonl")
    assert len(lines) == 6 and len(held.calls) == 1 and stdout.writes == 1
    _assert_chained("run-1", lines)
    assert [json.loads(line)["device"] for line in lines] == [f"d{i}" for i in range(6)]
    assert seen.seqs == list(range(1, 7)) and failures == []


def test_a_batch_waiting_behind_another_threads_write_goes_out_next_in_order(
        tmp_path: Path) -> None:
    """Only the batch's last record is waited for: the writer before it must wake
    that one, never an entry nobody waits on (which would hang the batch)."""
    log, held, seen, failures = _held_log(tmp_path)
    lead = threading.Thread(target=log.emit, args=("step.progress",),
                            kwargs=progress("lead", 0))
    lead.start()
    assert held.entered.wait(10)
    batch = threading.Thread(target=log.emit_all,
                             args=([("step.progress", progress(f"b{i}", i)) for i in range(4)],))
    batch.start()
    deadline = time.monotonic() + 10
    while log._seq < 5:
        assert time.monotonic() < deadline, "the batch was never numbered"
        time.sleep(0.001)
    held.release.set()
    for thread in (lead, batch):
        thread.join(timeout=10)
        assert not thread.is_alive(), "an emit hangs"
    lines = _lines(tmp_path / "run.jsonl")
    assert [json.loads(line)["device"] for line in lines] == ["lead", "b0", "b1", "b2", "b3"]
    _assert_chained("run-1", lines)
    assert len(held.calls) == 2 and failures == []
