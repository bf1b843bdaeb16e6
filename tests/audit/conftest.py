"""Fixtures: a clean demo run and a failed one (run once per session)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_runs import FAILING, make_key, run_demo

from runner.plan import RunResult


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The station's key (``.pub`` beside it)."""
    return make_key(tmp_path_factory.mktemp("keys") / "station.pem")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, signing_key: Path) -> RunResult:
    """The demo, signed and entered in its own ledger (``ledger/`` beside the log)."""
    directory = tmp_path_factory.mktemp("demo")
    return run_demo(directory, sign_key=signing_key, ledger=directory / "ledger")


@pytest.fixture(scope="session")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run_demo(tmp_path_factory.mktemp("failed"), faults=FAILING)


@pytest.fixture
def demo_log(demo_run: RunResult, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the demo run's log (and its attestation) to tamper with."""
    assert demo_run.log_file is not None
    for source in demo_run.log_file.parent.glob(demo_run.log_file.name + "*"):
        if source.is_file():
            shutil.copy2(source, tmp_path / source.name)
    yield tmp_path / demo_run.log_file.name
