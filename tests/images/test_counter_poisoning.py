"""Counters that cannot be poisoned: a value that cannot be written is never allocated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.errors import UnitDataError
from runner.serials import SerialCounter
from runner.unitdata import CounterSource, Encoding, check_source, compute_unit_value


def _source(tmp_path: Path, **changes: object) -> CounterSource:
    fields: dict[str, object] = {"state": tmp_path / "serials.json", "start": 1000,
                                 "encoding": Encoding(width=4)}
    fields.update(changes)
    return CounterSource(**fields)  # type: ignore[arg-type]


def test_a_value_too_wide_for_the_field_is_refused_before_it_is_allocated(
        tmp_path: Path) -> None:
    source = _source(tmp_path, start=5_000_000_000)
    with pytest.raises(UnitDataError, match="nothing was allocated"):
        compute_unit_value(source, device="d", run_id="r")
    counter = source.counter
    assert not counter.state.exists()
    assert counter.journal() == []


def test_stored_state_the_field_cannot_hold_is_reported_at_validation_with_a_fix(
        tmp_path: Path) -> None:
    source = _source(tmp_path)
    source.state.write_text(json.dumps({"next": 5_000_000_000}))
    with pytest.raises(UnitDataError, match="cannot be written") as caught:
        check_source(source)
    assert "new state file" in str(caught.value)
    with pytest.raises(UnitDataError):
        compute_unit_value(source, device="d", run_id="r")
    assert json.loads(source.state.read_text()) == {"next": 5_000_000_000}
    assert source.counter.journal() == []


@pytest.mark.parametrize("stored", [1001.0, True, -5, "1001", None])
def test_a_state_file_without_a_valid_count_is_reported_not_used(
        tmp_path: Path, stored: object) -> None:
    source = _source(tmp_path)
    source.state.write_text(json.dumps({"next": stored}))
    with pytest.raises(UnitDataError, match="has no integer 'next'"):
        check_source(source)
    with pytest.raises(UnitDataError, match="has no integer 'next'"):
        compute_unit_value(source, device="d", run_id="r")
    assert source.counter.journal() == []


def test_the_state_file_only_ever_holds_an_integer(tmp_path: Path) -> None:
    counter = SerialCounter(state=tmp_path / "serials.json", start=10)
    with pytest.raises(UnitDataError, match="not a count"):
        counter._write_state(11.0)  # type: ignore[arg-type]
    assert not counter.state.exists()
    assert counter.allocate(device="d", run_id="r").value == 10
    assert json.loads(counter.state.read_text()) == {"next": 11}


def test_a_widened_field_takes_the_stored_value_again(tmp_path: Path) -> None:
    source = _source(tmp_path)
    source.state.write_text(json.dumps({"next": 5_000_000_000}))
    wider = _source(tmp_path, encoding=Encoding(width=8))
    check_source(wider)
    assert compute_unit_value(wider, device="d", run_id="r").value == "5000000000"
