"""Real OpenSSH stations on 127.0.0.1, shared by the tests of a module.

Each station is ``/usr/sbin/sshd -D -e -f <generated config>`` started as the
current user (:mod:`runner.stations.localsshd`): generated host key, the test
client key authorised for ``flashrunner station serve-ssh`` only, a free port,
and this checkout's flashrunner as the station command. Every sshd, and
every station run daemon left behind, is stopped by its pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runner.stations.localsshd import SSHD, LocalStation, start_station

ROOT = Path(__file__).resolve().parents[2]

needs_sshd = pytest.mark.skipif(not SSHD.exists(), reason="openssh-server is not installed")


def image_bytes(size: int, seed: int = 1) -> bytes:
    return bytes(((i * 7 + seed * 13 + i // 251) & 0xFF) or 0x5A for i in range(size))


@dataclass
class Farm:
    """Local stations and a folder to write manifests for them into."""

    folder: Path
    stations: dict[str, LocalStation] = field(default_factory=dict)

    def start(self, name: str, port: int | None = None) -> LocalStation:
        self.stations[name] = start_station(self.folder / "keys", name, port)
        return self.stations[name]

    def write(self, name: str, devices: dict[str, dict[str, Any]], *,
              stations: dict[str, dict[str, Any]], time_scale: float = 0.0,
              max_parallel: int = 8, image: str = "app.bin", rate: float = 1e9,
              known_hosts: str | None = None, counter: bool = False,
              simulated: dict[str, Any] | None = None) -> Path:
        """A product manifest and its station include; links are ``<station>-<n>``, kind sim."""
        base = self.folder / name
        base.mkdir()
        (base / image).write_bytes(image_bytes(4096))
        inventory: dict[str, Any] = {"stations": {}, "transports": {}}
        for station, settings in stations.items():
            links = settings.pop("links", 1)
            names = [f"{station}-{n}" for n in range(1, links + 1)]
            entry = {"host": ["127.0.0.1"], "port": self.stations[station].port,
                     "user": _user(), "identity-file": str(self.folder / "keys" / "id_ed25519"),
                     "known-hosts": known_hosts or str(self.folder / "keys" / "known_hosts"),
                     "connect-timeout": 5, "inactivity-timeout": 5, "reconnect": 2,
                     "links": names, **settings}
            inventory["stations"][station] = entry
            for link in names:
                inventory["transports"][link] = {"kind": "sim", "rate": rate}
        (base / "stations.yaml").write_text(json.dumps(inventory, indent=1))
        product = {
            "manifest": 1, "name": name, "include": ["stations.yaml"], "simulate": True,
            "simulation": {"time-scale": time_scale, **({"devices": simulated} if simulated
                                                        else {})},
            "execution": {"max-parallel": max_parallel},
            "images": {"app": {"file": image, "address": 0x08000000}},
            "recipes": {"flash": [{"erase": {"scope": "used"}}, {"write": ["app"]},
                                  {"verify": {"method": "readback"}}]},
            **({"recipes": {"flash": [
                {"erase": {"scope": "used"}}, {"write": ["app"]},
                {"unit-data": {"address": 0x0800F000, "source": {"counter": {
                    "state": "serials.json", "start": 1000, "width": 4}}}},
                {"verify": {"method": "readback"}}]}} if counter else {}),
            "devices": {n: {"chip": "stm32f103c8", "recipe": "flash", **d}
                        for n, d in devices.items()},
            "log": {"file": "logs/{run_id}.jsonl"},
        }
        path = base / f"{name}.yaml"
        path.write_text(json.dumps(product, indent=1))
        return path

    def stop(self) -> None:
        for station in self.stations.values():
            station.stop()
            stop_daemons(station.home)


def _user() -> str:
    import getpass

    return getpass.getuser()


def stop_daemons(home: Path) -> None:
    """Stop, by pid, every station run daemon still running under ``home``."""
    for pid_file in home.glob(".flashrunner/runs/*/daemon.pid"):
        try:
            pid = int(pid_file.read_text())
            if not (pid_file.parent / "exit.json").exists():
                os.kill(pid, signal.SIGTERM)
        except (ValueError, ProcessLookupError):
            pass


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    if not SSHD.exists():
        pytest.skip("openssh-server is not installed")
    farm = Farm(folder=tmp_path_factory.mktemp("farm"))
    try:
        for name in ("pi1", "pi2", "pi3"):
            farm.start(name)
        yield farm
    finally:
        farm.stop()


def run_cli(*args: str, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m runner ARGS`` from this checkout (the host side of a run)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "runner", *args], check=False, cwd=cwd or ROOT,
                          env=environment, capture_output=True, text=True, timeout=120)


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def log_of(manifest: Path) -> Path:
    logs = sorted((manifest.parent / "logs").glob("*.jsonl"))
    assert len(logs) == 1, f"one log expected beside {manifest}: {logs}"
    return logs[0]


class Background:
    """A host run in a thread (in process), for tests that act while it runs."""

    def __init__(self, manifest: Path, log: Path,
                 cancel: threading.Event | None = None) -> None:
        from runner.launch import run_manifest

        self.log = log
        self.result: Any = None
        self.error: BaseException | None = None

        def target() -> None:
            try:
                self.result = run_manifest(manifest, log_file=log, cancel=cancel)
            except BaseException as error:   # surfaced by join()
                self.error = error

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_for(self, predicate: Any) -> dict[str, Any]:
        while True:
            for record in self.records():
                if predicate(record):
                    return record
            assert self.thread.is_alive(), f"run ended first: {self.error or self.result}"
            self.thread.join(0.02)

    def join(self) -> Any:
        self.thread.join(120)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


