"""Fixtures: a clean demo run and a failed one (run once per session)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_runs import FAILING, run_demo

from runner.plan import RunResult


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run_demo(tmp_path_factory.mktemp("demo"))


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
