"""`flashrunner run` of a rehearsal shared among worker processes (runner/shards.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").exists() or not hasattr(os, "fork"),
                                reason="forks workers and reads /proc")


_STEPS = ["    - erase: {scope: used}", "    - write: [app]", "    - verify: {}"]


def _manifest(folder: Path, *, links: list[str], devices: list[str],
              steps: list[str] = _STEPS, time_scale: float = 0, image: int = 1024) -> Path:
    """A rehearsal in two workers: ``links`` and ``devices`` are their YAML entries."""
    (folder / "app.bin").write_bytes(bytes(range(256)) * (image // 256))
    lines = ["manifest: 1", "name: worker-line", "simulate: true",
             f"simulation: {{time-scale: {time_scale}, processes: 2}}",
             "images:", "  app: {file: app.bin, address: 0x08000000}", "transports:",
             *(f"  {link}" for link in links), "recipes:", "  std:", *steps,
             f"execution: {{max-parallel: {len(devices)}}}", "devices:",
             *(f"  {entry}" for entry in devices)]
    path = folder / "line.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _line(folder: Path, devices: int, *, time_scale: float, rate: int) -> Path:
    return _manifest(folder, time_scale=time_scale, image=4096,
                     links=[f"link-{i}: {{kind: sim, rate: {rate}}}" for i in range(devices)],
                     devices=[f"dev-{i}: {{chip: stm32f103c8, transport: link-{i}, recipe: std}}"
                              for i in range(devices)])


def _run_ok(manifest: Path) -> list[dict[str, object]]:
    """Run ``manifest`` to exit 0; its ``--json`` records, the first saying two workers."""
    process = _start(manifest, manifest.parent / "run.jsonl")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["workers"] == 2
    return records


def _all_ok(records: list[dict[str, object]], count: int) -> bool:
    finished = [r for r in records if r["event"] == "device.finished"]
    return len(finished) == count and all(r["outcome"] == "ok" for r in finished)


def _start(manifest: Path, log: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "runner", "run", str(manifest), "--json",
                             "--log-file", str(log)], cwd=manifest.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(word) for word in text.split()}


def test_the_json_stream_and_the_log_hold_every_device_of_every_worker(
        tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    process = _start(_line(tmp_path, 32, time_scale=0, rate=1_000_000), log)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records == [json.loads(line) for line in log.read_text().splitlines()]
    finished = [r for r in records if r["event"] == "device.finished"]
    assert sorted(r["device"] for r in finished) == sorted(f"dev-{i}" for i in range(32))
    assert all(r["outcome"] == "ok" for r in finished)
    assert records[-1]["event"] == "run.finished" and records[-1]["exit_code"] == 0
    assert records[0]["workers"] == 2
    assert "32 devices, max-parallel 32, simulated in 2 worker processes" in err


def test_sigterm_stops_the_workers_and_the_run_exits_130(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    process = _start(_line(tmp_path, 8, time_scale=1, rate=4000), log)
    assert process.stdout is not None
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    for line in process.stdout:
        workers |= _children(process.pid)
        if json.loads(line)["event"] == "step.progress" or time.monotonic() > deadline:
            break
    workers |= _children(process.pid)
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(r["event"] == "run.interrupted" for r in records) == 1
    assert records[-1]["event"] == "run.finished" and records[-1]["interrupted"]
    outcomes = {r["device"]: r["outcome"] for r in records if r["event"] == "device.finished"}
    assert outcomes and "ok" not in outcomes.values()
    assert len(workers) == 2
    for pid in workers:  # reaped by the run before it exited
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize("value, expected", [("2", 2), ("1", 1)])
def test_simulation_processes_is_read_from_the_manifest(tmp_path: Path, value: str,
                                                        expected: int) -> None:
    from runner.manifest import load_manifest

    path = _line(tmp_path, 2, time_scale=0, rate=1000)
    path.write_text(path.read_text().replace("processes: 2", f"processes: {value}"))
    assert load_manifest(path).simulation.processes == expected


def test_zero_processes_is_refused_where_it_is_written(tmp_path: Path) -> None:
    from runner.errors import ManifestError
    from runner.manifest import load_manifest

    path = _line(tmp_path, 2, time_scale=0, rate=1000)
    path.write_text(path.read_text().replace("processes: 2", "processes: 0"))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert "line.yaml:4:" in str(caught.value) and "processes" in str(caught.value)


def test_a_counter_shared_by_two_workers_hands_out_each_value_once(tmp_path: Path) -> None:
    """serials.json is locked per allocation (runner/serials.py), across processes too."""
    unit_data = ["    - unit-data:", "        address: 0x0800C000",
                 "        source: {counter: {state: serials.json, start: 1000, width: 4, "
                 "endianness: little}}"]
    records = _run_ok(_manifest(
        tmp_path, image=2048, steps=[*_STEPS[:2], *unit_data, _STEPS[2]],
        links=[f"l{i}: {{kind: sim}}" for i in range(32)],
        devices=[f"b{i}: {{chip: stm32f411re, transport: l{i}, recipe: std}}"
                 for i in range(32)]))
    values = [r["unit_value"] for r in records
              if r["event"] == "step.finished" and "unit_value" in r]
    assert sorted(int(str(v)) for v in values) == list(range(1000, 1032))
    journal = (tmp_path / "serials.rehearsal.json.journal").read_text().splitlines()
    assert len(journal) == 32


def test_i2c_rom_links_run_in_workers_with_the_devices_of_one_bus_together(
        tmp_path: Path) -> None:
    # two G071s on each bus (one resource: they stay in one worker, one after the other)
    records = _run_ok(_manifest(
        tmp_path,
        links=[f"bus{i}: {{kind: i2c, bus: {i + 1}, clock: 400000}}" for i in range(16)],
        devices=[f"s{i}-{address:x}: {{chip: stm32g071rb, transport: {{use: bus{i}, "
                 f"address: 0x{address:x}}}, recipe: std}}"
                 for i in range(16) for address in (0x51, 0x57)]))
    assert _all_ok(records, 32)


@pytest.mark.parametrize("kind", ["uart", "can"])
def test_rom_links_whose_far_ends_have_threads_run_in_workers_too(tmp_path: Path,
                                                                  kind: str) -> None:
    """The world makes a link's far end (a serial URL handler, a virtual CAN node and its
    thread) when the session opens it: in the worker, after the fork."""
    link = ("{kind: uart, port: /dev/ttyUSB%d, baud: 115200}" if kind == "uart"
            else "{kind: can, interface: socketcan, channel: can%d}")
    chip = "stm32f103c8" if kind == "uart" else "stm32f405rg"
    records = _run_ok(_manifest(
        tmp_path, links=[f"p{i}: {link % i}" for i in range(32)],
        devices=[f"d{i}: {{chip: {chip}, transport: p{i}, recipe: std}}" for i in range(32)]))
    assert _all_ok(records, 32)
