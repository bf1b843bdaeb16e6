"""Real demo runs for the audit tests: copies of the demo manifest, run with faults or cut short."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from runner.events import CapturingSink
from runner.launch import run_manifest
from runner.plan import RunResult

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "manifests" / "demo.yaml"


def demo_copy(directory: Path, *, faults: Mapping[str, list[dict[str, Any]]] | None = None,
              log: Mapping[str, Any] | None = None) -> Path:
    """The demo manifest (and its images) copied to ``directory``, optionally with faults."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(DEMO.parent / "demo", directory / "demo", dirs_exist_ok=True)
    document = yaml.safe_load(DEMO.read_text())
    document["simulation"]["time-scale"] = 0.0
    for name, device_faults in (faults or {}).items():
        document["simulation"]["devices"].setdefault(name, {})["faults"] = device_faults
    if log is not None:
        document["log"] = {**document["log"], **log}
    manifest = directory / "demo.yaml"
    manifest.write_text(yaml.safe_dump(document, sort_keys=False))
    return manifest


class StopAfter(CapturingSink):
    """Captures records and cancels the run once ``count`` steps have finished."""

    def __init__(self, cancel: threading.Event, count: int) -> None:
        super().__init__()
        self.cancel = cancel
        self.count = count

    def emit(self, event: str, **fields: Any) -> None:
        super().emit(event, **fields)
        if event == "step.finished" and len(self.named("step.finished")) >= self.count:
            self.cancel.set()


def run_demo(directory: Path, name: str = "run", *,
             faults: Mapping[str, list[dict[str, Any]]] | None = None,
             interrupt_after: int | None = None, **options: Any) -> RunResult:
    """Run (a copy of) the demo; its log is ``directory/<name>.jsonl``."""
    manifest = demo_copy(directory / f"{name}-manifest", faults=faults)
    cancel = threading.Event()
    sink = options.pop("events", None) or (
        StopAfter(cancel, interrupt_after) if interrupt_after else CapturingSink())
    return run_manifest(manifest, simulate=True, log_file=directory / f"{name}.jsonl",
                        cancel=cancel, events=sink, **options)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


#: sensor-2's writes are refused for good: it fails, and the gateway (after it) is upstream-failed.
FAILING = {"sensor-2": [{"kind": "nack", "op": "write", "permanent": True}]}




def make_key(path: Path) -> Path:
    """A fresh Ed25519 private key (PEM) at ``path``, its public half at ``path.pub``."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.with_name(path.name + ".pub").write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``flashrunner audit ARGS`` in a process of its own (this tree's code)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "runner", "audit", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
