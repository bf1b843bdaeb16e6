"""Shared fixtures: the chip database and simulated chips."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from transports.chips import ChipDatabase, chip_database
from transports.sim import SimChip, SimulationWorld

# Every event must match its definition (runner/events.py): a mismatch raises, here and in
# the flashrunner processes the tests start.
os.environ["FLASHRUNNER_STRICT_EVENTS"] = "1"
# Runs enter themselves in the host's ledger ($XDG_STATE_HOME/flashrunner): a private one here.
_STATE = tempfile.mkdtemp(prefix="flashrunner-tests-state-")
atexit.register(shutil.rmtree, _STATE, ignore_errors=True)
os.environ["XDG_STATE_HOME"] = _STATE
# Passed schema checks are remembered ($XDG_CACHE_HOME/flashrunner): a private cache here.
_CACHE = tempfile.mkdtemp(prefix="flashrunner-tests-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["XDG_CACHE_HOME"] = _CACHE


def set_option_byte(sim: SimChip, index: int, value: int) -> None:
    """Change one byte of the chip's option bytes, as a reload after programming would."""
    image = bytearray(sim.option_bytes)
    image[index] = value
    sim.write_option_bytes(bytes(image))


@pytest.fixture(scope="session")
def chips() -> ChipDatabase:
    return chip_database()


@pytest.fixture
def world() -> Iterator[SimulationWorld]:
    with SimulationWorld(time_scale=0.0, seed="tests") as sim_world:
        yield sim_world
