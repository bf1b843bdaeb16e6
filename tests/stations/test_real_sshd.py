"""Runs on stations through real OpenSSH servers on 127.0.0.1, each station's
flashrunner simulating its devices."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from station_farm import ROOT, Background, Farm, log_of, read_log, run_cli

from runner.linklocks import LinkLocks
from runner.plan import Outcome
from runner.stations.localsshd import free_port, start_station


def _outcomes(records: list[dict]) -> dict[str, dict]:
    return {r["device"]: r for r in records if r["event"] in ("device.finished",
                                                                 "device.skipped")}


def _peak(records: list[dict], station: str) -> int:
    """Most devices of ``station`` between device.started and device.finished at once."""
    live = peak = 0
    mine = [r for r in records if r.get("station") == station
            and r["event"] in ("device.started", "device.finished")]
    for record in sorted(mine, key=lambda r: r["origin"]["seq"]):
        live += 1 if record["event"] == "device.started" else -1
        peak = max(peak, live)
    return peak


def test_the_line_example_rehearses_three_stations_and_ends_ok(
        farm: Farm, tmp_path: Path) -> None:
    line = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests" / "line", line / "line",
                    ignore=shutil.ignore_patterns("local"))
    shutil.copytree(ROOT / "manifests" / "images", line / "images")
    shutil.copy(ROOT / "manifests" / "line-stations.yaml", line)
    # Point the example at this module's local stations (same keys, their ports).
    inventory = (line / "line" / "stations.yaml").read_text()
    for name, port in (("pi1", 22201), ("pi2", 22202), ("pi3", 22203)):
        inventory = inventory.replace(f"port: {port}", f"port: {farm.stations[name].port}")
    inventory = inventory.replace("user: root", f"user: {getpass.getuser()}")
    (line / "line" / "stations.yaml").write_text(inventory)
    shutil.copytree(farm.folder / "keys", line / "line" / "local", symlinks=True)

    done = run_cli("run", str(line / "line-stations.yaml"), "--log-file",
                   str(tmp_path / "line.jsonl"))
    assert done.returncode == 0, done.stderr
    records = read_log(tmp_path / "line.jsonl")
    outcomes = _outcomes(records)
    expected = {"sensor-a": "pi1", "sensor-b": "pi1", "io-node": "pi2", "usb-node": "pi2",
                "controller": "pi3"}
    assert {d: r["station"] for d, r in outcomes.items()} == expected
    assert all(r["outcome"] == "ok" for r in outcomes.values())
    # Station records keep the station's own seq, ts and run id; host seq is one sequence.
    forwarded = [r for r in records if "origin" in r]
    assert forwarded and all(r["origin"]["ts"] and r["origin"]["run_id"]
                             and r["origin"]["line_sha256"] for r in forwarded)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    for station in ("pi1", "pi2", "pi3"):
        seqs = [r["origin"]["seq"] for r in forwarded if r["station"] == station]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # The cross-station `after` held: the controller started after sensor-a ended ok.
    finished = next(r for r in records if r["event"] == "device.finished"
                    and r["device"] == "sensor-a")
    started = next(r for r in records if r["event"] == "device.started"
                   and r["device"] == "controller")
    assert records.index(started) > records.index(finished)
    assert records[-1]["event"] == "run.finished" and records[-1]["exit_code"] == 0
    # The merged log is one valid chain, and each merged line is the station's own line.
    verified = run_cli("audit", "verify", str(tmp_path / "line.jsonl"))
    assert verified.returncode == 0 and "VALID" in verified.stdout, verified.stdout
    pi1_lines = {hashlib.sha256(line.encode()).hexdigest()
                 for path in farm.stations["pi1"].home.glob(
                     f".flashrunner/runs/{records[0]['run_id']}/events.jsonl")
                 for line in path.read_text().splitlines()}
    assert pi1_lines >= {r["origin"]["line_sha256"] for r in forwarded
                         if r["station"] == "pi1"}


def test_a_wrong_host_key_refuses_the_station_before_anything_is_sent(
        farm: Farm, tmp_path: Path) -> None:
    impostor = tmp_path / "known_hosts"
    other = start_station(tmp_path / "other", "impostor")   # another host key
    try:
        key = (other.host_key.with_suffix(".pub")).read_text().split()
        impostor.write_text(f"[127.0.0.1]:{farm.stations['pi2'].port} {key[0]} {key[1]}\n")
    finally:
        other.stop()
    accepted_before = (farm.stations["pi2"].folder / "sshd.log").read_text() \
        .count("Accepted publickey")
    runs_before = set(farm.stations["pi2"].home.glob(".flashrunner/runs/*"))
    manifest = farm.write("wrong-key", {"a": {"station": "pi2", "transport": "pi2-1"}},
                          stations={"pi2": {}}, known_hosts=str(impostor))
    done = run_cli("run", str(manifest))
    assert done.returncode == 1
    outcome = _outcomes(read_log(log_of(manifest)))["a"]
    assert outcome["outcome"] == "failed" and outcome["error_category"] == "host-key"
    log = (farm.stations["pi2"].folder / "sshd.log").read_text()
    assert log.count("Accepted publickey") == accepted_before   # never authenticated
    assert set(farm.stations["pi2"].home.glob(".flashrunner/runs/*")) == runs_before


def test_per_station_max_parallel_and_the_run_bound_both_hold(farm: Farm) -> None:
    devices = {f"a{n}": {"station": "pi1", "transport": f"pi1-{n}"} for n in range(1, 6)}
    devices |= {f"b{n}": {"station": "pi3", "transport": f"pi3-{n}"} for n in range(1, 6)}
    manifest = farm.write("bounded", devices, max_parallel=3, time_scale=0.05, rate=20000,
                          stations={"pi1": {"links": 5, "max-parallel": 2},
                                    "pi3": {"links": 5, "max-parallel": 4}})
    done = run_cli("run", str(manifest))
    assert done.returncode == 0, done.stderr
    records = read_log(log_of(manifest))
    assert all(r["outcome"] == "ok" for r in _outcomes(records).values())
    pi1, pi3 = _peak(records, "pi1"), _peak(records, "pi3")
    assert pi1 <= 2 and pi1 + pi3 <= 3
    assert pi3 >= 1


def test_a_dropped_connection_is_regained_and_the_outcome_collected(farm: Farm) -> None:
    devices = {"slow": {"station": "pi1", "transport": "pi1-1"},
               "other": {"station": "pi2", "transport": "pi2-1"}}
    manifest = farm.write("dropped", devices, time_scale=1.0, rate=4096,
                          stations={"pi1": {}, "pi2": {}})
    run = Background(manifest, manifest.parent / "run.jsonl")
    run.wait_for(lambda r: r["event"] == "step.started" and r.get("device") == "slow"
                 and r.get("action") == "write")
    farm.stations["pi1"].drop_connections()
    result = run.join()
    assert result.exit_code == 0
    records = run.records()
    assert any(r["event"] == "station.reconnected" and r["station"] == "pi1" for r in records)
    outcomes = _outcomes(records)
    assert outcomes["slow"]["outcome"] == "ok" and outcomes["other"]["outcome"] == "ok"
    # Nothing lost or repeated across the reconnection.
    seqs = [r["origin"]["seq"] for r in records if r.get("station") == "pi1"
            and "origin" in r]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_a_station_stopped_mid_run_fails_only_its_devices_and_collect_gets_them(
        farm: Farm, tmp_path: Path) -> None:
    doomed = farm.start("pi4")
    devices = {"lost": {"station": "pi4", "transport": "pi4-1"},
               "fine": {"station": "pi2", "transport": "pi2-1"}}
    manifest = farm.write("stopped", devices, time_scale=1.0, rate=4096,
                          stations={"pi4": {"reconnect": 1}, "pi2": {}})
    log = manifest.parent / "run.jsonl"
    run = Background(manifest, log)
    run.wait_for(lambda r: r["event"] == "step.started" and r.get("device") == "lost"
                 and r.get("action") == "write")
    doomed.stop()
    result = run.join()
    assert result.exit_code == 1
    by_device = {d.device: d for d in result.devices}
    assert by_device["fine"].outcome is Outcome.OK
    assert by_device["lost"].outcome is Outcome.UNKNOWN
    assert by_device["lost"].reason == "station lost"
    outcomes = _outcomes(run.records())
    assert outcomes["lost"]["outcome"] == "unknown"
    assert outcomes["lost"]["error_category"] == "station-lost"

    # The write went on, detached, on the station; collect fetches it once sshd is back.
    restarted = farm.start("pi4", doomed.port)
    assert restarted.port == doomed.port
    done = run_cli("collect", str(log))
    assert done.returncode == 0, done.stderr
    assert "lost: ok" in done.stderr
    collected = sorted(tmp_path.parent.glob("**/run.collect-*.jsonl"))
    assert collected and any(r["event"] == "device.finished" and r["device"] == "lost"
                             and r["outcome"] == "ok" for r in read_log(collected[-1]))
    own = read_log(doomed.home / ".flashrunner" / "runs" / run.records()[0]["run_id"]
                   / "events.jsonl")   # the station's own log: the write completed
    assert any(r["event"] == "step.finished" and r["device"] == "lost"
               and r["action"] == "write" and r["outcome"] == "ok" for r in own)


def test_two_runs_on_one_station_serialise_on_a_shared_link(farm: Farm) -> None:
    devices = {"board": {"station": "pi3", "transport": "pi3-1"}}
    first = farm.write("first", devices, time_scale=1.0, rate=16384, stations={"pi3": {}})
    second = farm.write("second", devices, time_scale=1.0, rate=16384, stations={"pi3": {}})
    # A person at the bench holds the link (the station's own lock folder).
    bench = LinkLocks(folder=farm.stations["pi3"].folder / "locks", simulated=True,
                      holder={"run_id": "bench-run", "operator": "ann"})
    with bench.hold("sim:pi3-1", device="board"):
        one = Background(first, first.parent / "run.jsonl")
        two = Background(second, second.parent / "run.jsonl")
        for run in (one, two):
            waiting = run.wait_for(lambda r: r["event"] == "link.waiting")
            assert waiting["held_by"]["run_id"] == "bench-run"
            assert waiting["held_by"]["operator"] == "ann"
        assert not any(r["event"] == "device.started" for r in one.records() + two.records())
    assert one.join().exit_code == 0 and two.join().exit_code == 0
    spans = []
    for run in (one, two):
        records = run.records()
        began = next(r for r in records if r["event"] == "device.started")["origin"]["ts"]
        ended = next(r for r in records if r["event"] == "device.finished")["origin"]["ts"]
        spans.append((began, ended))
    spans.sort()
    assert spans[1][0] >= spans[0][1], spans   # one after the other, never both at once


def test_a_hostile_file_name_and_work_dir_are_staged_and_flashed_safely(
        farm: Farm, tmp_path: Path) -> None:
    hostile = "it's a \"$(touch PWNED)\" `touch PWNED2`; rm -rf x.bin"
    manifest = farm.write("hostile", {"a": {"station": "pi1", "transport": "pi1-1"}},
                          image=hostile,
                          stations={"pi1": {"work-dir": "runs $(touch PWNED3) 'q'"}})
    done = run_cli("run", str(manifest))
    assert done.returncode == 0, done.stderr
    assert _outcomes(read_log(log_of(manifest)))["a"]["outcome"] == "ok"
    home = farm.stations["pi1"].home
    assert (home / "runs $(touch PWNED3) 'q'" / "cache").is_dir()
    for folder in (home, manifest.parent, ROOT, Path.cwd()):
        assert not list(folder.glob("PWNED*")), folder


def test_an_unused_port_fails_its_station_as_unreachable(farm: Farm) -> None:
    manifest = farm.write("nobody", {"a": {"station": "pi1", "transport": "pi1-1"}},
                          stations={"pi1": {"port": free_port(), "reconnect": 0}})
    done = run_cli("run", str(manifest))
    assert done.returncode == 1
    outcome = _outcomes(read_log(log_of(manifest)))["a"]
    assert outcome["error_category"] == "station-unreachable"


def test_serial_numbers_are_allocated_by_the_host_once_across_stations(farm: Farm) -> None:
    devices = {f"{s}-{n}": {"station": s, "transport": f"{s}-{n}"}
               for s in ("pi1", "pi2") for n in (1, 2)}
    manifest = farm.write("serials", devices, counter=True,
                          stations={"pi1": {"links": 2}, "pi2": {"links": 2}})
    done = run_cli("run", str(manifest))
    assert done.returncode == 0, done.stderr
    records = read_log(log_of(manifest))
    written = {r["device"]: r["unit_value"] for r in records
               if r["event"] == "step.finished" and r.get("action") == "unit-data"}
    assert sorted(written.values()) == ["1000", "1001", "1002", "1003"]
    # The host's journal (a rehearsal's) names each allocation, with the device and run.
    journal = manifest.parent / "serials.rehearsal.json.journal"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert {line["device"]: str(line["value"]) for line in lines} == written
    assert {line["run_id"] for line in lines} == {records[0]["run_id"]}
    # No station keeps a counter of its own.
    for station in ("pi1", "pi2"):
        assert not list(farm.stations[station].home.rglob("serials*.json"))


def test_a_device_after_a_failed_device_of_another_station_never_starts(farm: Farm) -> None:
    devices = {"first": {"station": "pi1", "transport": "pi1-1"},
               "second": {"station": "pi2", "transport": "pi2-1", "after": ["first"]},
               "free": {"station": "pi2", "transport": "pi2-2"}}
    broken = {"first": {"faults": [{"kind": "timeout", "op": "write", "permanent": True}]}}
    manifest = farm.write("upstream", devices, simulated=broken,
                          stations={"pi1": {}, "pi2": {"links": 2}})
    done = run_cli("run", str(manifest))
    assert done.returncode == 1
    records = read_log(log_of(manifest))
    outcomes = _outcomes(records)
    assert outcomes["first"]["outcome"] == "failed"
    assert outcomes["second"]["outcome"] == "upstream-failed"
    assert outcomes["second"]["reason"] == "first failed"
    assert outcomes["free"]["outcome"] == "ok"
    assert not any(r["event"] == "device.started" and r["device"] == "second" for r in records)


def test_the_station_key_runs_station_actions_only(farm: Farm) -> None:
    import asyncio

    from runner.manifest import load_manifest
    from runner.stations.ssh import connect

    manifest = farm.write("forced", {"a": {"station": "pi1", "transport": "pi1-1"}},
                          stations={"pi1": {}})
    station = load_manifest(manifest).stations["pi1"]

    async def attempt() -> tuple[int | None, str]:
        connection = await connect(station)
        async with connection:
            done = await connection.run("touch PWNED; echo shell")
        return done.exit_status, str(done.stderr)

    status, stderr = asyncio.run(attempt())
    assert status == 2 and "may only run station actions" in stderr
    assert not list(farm.stations["pi1"].home.glob("PWNED"))


def test_a_cached_file_that_changed_on_the_station_is_sent_again(farm: Farm) -> None:
    devices = {"a": {"station": "pi3", "transport": "pi3-1"}}
    manifest = farm.write("stale", devices, stations={"pi3": {}})
    logs = manifest.parent / "first.jsonl", manifest.parent / "second.jsonl"
    assert run_cli("run", str(manifest), "--log-file", str(logs[0])).returncode == 0
    digest = read_log(logs[0])[0]["images"]["app"]
    cached = farm.stations["pi3"].home / ".flashrunner" / "cache" / digest
    cached.write_bytes(b"not the image")
    done = run_cli("run", str(manifest), "--log-file", str(logs[1]))
    assert done.returncode == 0, done.stderr
    staged = [r for r in read_log(logs[1]) if r["event"] == "station.staged"]
    assert [r["sent"] for r in staged] == [0, 1]   # refused by the station, then re-sent
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == digest


def test_a_killed_host_leaves_a_valid_prefix_and_the_station_finishes(
        farm: Farm, tmp_path: Path) -> None:
    manifest = farm.write("killed", {"a": {"station": "pi2", "transport": "pi2-1"}},
                          time_scale=1.0, rate=4096, stations={"pi2": {}})
    log = tmp_path / "killed.jsonl"
    host = subprocess.Popen([sys.executable, "-m", "runner", "run", str(manifest),
                             "--log-file", str(log), "--quiet"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (log.exists() and '"step.started"' in log.read_text()):
            assert host.poll() is None
            time.sleep(0.02)
    finally:
        host.send_signal(signal.SIGKILL)
        host.wait()
    records = read_log(log)   # every line whole
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    verified = run_cli("audit", "verify", str(log))
    assert "TRUNCATED" in verified.stdout, verified.stdout
    # The station's run went on and ended; collect brings the outcome home.
    done = run_cli("collect", str(log))
    assert done.returncode == 0, done.stderr
    assert "a: ok" in done.stderr


def test_cancelling_the_host_run_stops_the_stations_runs(farm: Farm) -> None:
    import threading

    devices = {"a": {"station": "pi1", "transport": "pi1-1"},
               "b": {"station": "pi3", "transport": "pi3-1"}}
    manifest = farm.write("cancelled", devices, time_scale=1.0, rate=1024,
                          stations={"pi1": {}, "pi3": {}})
    cancel = threading.Event()
    run = Background(manifest, manifest.parent / "run.jsonl", cancel)
    for device in ("a", "b"):
        run.wait_for(lambda r, d=device: r["event"] == "step.started"
                     and r.get("device") == d and r.get("action") == "write")
    cancel.set()
    result = run.join()
    assert result.exit_code == 130
    assert {d.outcome for d in result.devices} == {Outcome.INTERRUPTED}
    records = run.records()
    assert any(r["event"] == "run.interrupted" and "origin" not in r for r in records)
    assert {r["station"] for r in records
            if r["event"] == "run.interrupted" and "origin" in r} == {"pi1", "pi3"}


def test_a_station_without_flashrunner_fails_its_devices_at_once(farm: Farm) -> None:
    # A key without the forced command: the station runs the argv[0] it is sent.
    farm.stations["pi5"] = start_station(farm.folder / "keys", "pi5", restricted=False)
    manifest = farm.write("missing", {"a": {"station": "pi5", "transport": "pi5-1"}},
                          stations={"pi5": {"flashrunner": "/nonexistent/flash runner"}})
    done = run_cli("run", str(manifest))
    assert done.returncode == 1
    outcome = _outcomes(read_log(log_of(manifest)))["a"]
    assert outcome["outcome"] == "failed" and outcome["error_category"] == "station-command"
    assert "did not run (exit 127)" in outcome["error"]
