"""A line of stations on one machine: how close a run gets to one device's time.

4 stations (real OpenSSH servers on 127.0.0.1, each running this checkout's
flashrunner) × 8 simulated devices (``kind: sim``, time scale 1.0, so wire
time is slept for real), per-station max-parallel 8. Each device takes T; the
physical limit of the whole run is T, so total / T shows what reaching the
stations costs (target <= 1.3).

The fixed cost of reaching a station is read from the host's audit log:
connect (host key checked, key auth, SFTP up), stage (images and the
station's manifest by digest), start (``station run`` until the station says
its daemon runs). It is printed beside ``ssh host true`` against the same
sshd (OpenSSH's own client, a plain key), the floor of any SSH round trip.

Run: ``python tests/bench/bench_stations.py`` (needs /usr/sbin/sshd)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stations"))

from station_farm import Farm, _user, read_log  # noqa: E402

from runner.launch import run_manifest  # noqa: E402

STATIONS = 4
DEVICES = 8
RATE = 1024.0   # bytes/s on each simulated wire: write and read back 4 KiB ≈ 8 s


def _ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def _ssh_true(farm: Farm, name: str, key: Path) -> float:
    station = farm.stations[name]
    known = farm.folder / "keys" / "known_hosts"
    argv = ["ssh", "-i", str(key), "-o", f"UserKnownHostsFile={known}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(station.port),
            f"{_user()}@127.0.0.1", "true"]
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    with TemporaryDirectory() as folder:
        farm = Farm(folder=Path(folder))
        try:
            names = [f"pi{n}" for n in range(1, STATIONS + 1)]
            for name in names:
                farm.start(name)
            # A plain key on the same sshd for the `ssh host true` floor.
            plain = farm.folder / "plain"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(plain)],
                           check=True)
            for name in names:
                with (farm.stations[name].folder / "authorized_keys").open("a") as keys:
                    keys.write(Path(f"{plain}.pub").read_text())
            devices = {f"{s}-{n}": {"station": s, "transport": f"{s}-{n}"}
                       for s in names for n in range(1, DEVICES + 1)}
            manifest = farm.write("bench", devices, time_scale=1.0, rate=RATE,
                                  max_parallel=STATIONS * DEVICES,
                                  stations={s: {"links": DEVICES, "max-parallel": DEVICES,
                                                "inactivity-timeout": 30}
                                            for s in names})
            log = manifest.parent / "run.jsonl"
            started = time.perf_counter()
            result = run_manifest(manifest, log_file=log)
            total = time.perf_counter() - started
            if not result.ok:
                raise SystemExit(f"benchmark run failed: {result.counts()}")
            records = read_log(log)
            durations = [r["duration_ms"] / 1000 for r in records
                         if r["event"] == "device.finished"]
            t = statistics.median(durations)
            begin = _ts(records[0]["ts"])
            phases: dict[str, list[float]] = {"connect": [], "stage": [], "start": []}
            for name in names:
                at = {r["event"]: _ts(r["ts"]) for r in records
                      if r.get("station") == name and r["event"].startswith("station.")
                      and "origin" not in r}
                phases["connect"].append(at["station.connected"] - begin)
                phases["stage"].append(at["station.staged"] - at["station.connected"])
                phases["start"].append(at["station.started"] - at["station.staged"])
            reach = [sum(parts) for parts in zip(*phases.values(), strict=True)]
            floor = _ssh_true(farm, names[0], plain)
        finally:
            farm.stop()
    print(f"{STATIONS} stations x {DEVICES} devices, per-station max-parallel {DEVICES}: "
          f"total {total:.2f} s, T = {t:.2f} s, ratio {total / t:.2f} (target <= 1.3)")
    print("reaching a station (median of 4): "
          + ", ".join(f"{phase} {statistics.median(values) * 1000:.0f} ms"
                      for phase, values in phases.items())
          + f" = {statistics.median(reach) * 1000:.0f} ms;  `ssh host true` on the same sshd: "
          f"{floor * 1000:.0f} ms")


if __name__ == "__main__":
    main()
