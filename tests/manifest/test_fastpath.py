"""The quick device check accepts only entries the manifest schema accepts."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.manifest.fastpath import plain_devices
from runner.manifest.structure import strict_validator
from schemas import load_schema

_SCHEMA = load_schema("manifest")
_DEVICE = strict_validator({"$defs": _SCHEMA["$defs"], "$ref": "#/$defs/devices"})

_values = st.one_of(st.text(max_size=4), st.integers(), st.none(), st.booleans(),
                    st.lists(st.text(max_size=3), max_size=3),
                    st.lists(st.lists(st.integers(), max_size=1), max_size=2),
                    st.lists(st.integers(), max_size=2),
                    st.dictionaries(st.sampled_from(["use", "address"]), st.text(max_size=3),
                                    max_size=2))
_keys = st.sampled_from(["chip", "transport", "recipe", "station", "recovery", "after",
                         "chips", "Recipe"])
_names = st.one_of(st.sampled_from(["dev-1", "board.a_2", "-x", "", "a" * 65, "a b", "dev\n"]),
                   st.text(max_size=6))


def test_the_schema_is_the_shape_the_quick_check_knows() -> None:
    assert plain_devices() is not None


@settings(max_examples=400)
@given(_names, st.dictionaries(_keys, _values, max_size=6))
def test_accepted_entries_are_valid(name: str, entry: dict[str, Any]) -> None:
    plain = plain_devices()
    assert plain is not None
    if plain.plainly_valid(name, entry):
        assert list(_DEVICE.iter_errors({name: entry})) == []


def test_a_usual_entry_takes_the_quick_path() -> None:
    plain = plain_devices()
    assert plain is not None
    assert plain.plainly_valid("dev-7", {"chip": "stm32f103cb", "transport": "bus-1",
                                         "recipe": "std", "after": ["dev-6"]})
    assert not plain.plainly_valid("dev-7", {"chip": "stm32f103cb", "transport": "bus-1"})
    assert not plain.plainly_valid("dev-7", {"chip": "c", "transport": "t", "recipe": "r",
                                             "after": [[]]})


@settings(max_examples=300)
@given(_names, st.dictionaries(_keys, _values, max_size=3), st.sets(_keys, max_size=2))
def test_accepted_near_valid_entries_are_valid(name: str, changes: dict[str, Any],
                                               dropped: set[str]) -> None:
    plain = plain_devices()
    assert plain is not None
    entry: dict[str, Any] = {"chip": "stm32f103cb", "transport": "bus", "recipe": "std",
                             "after": ["a"], **changes}
    for key in dropped:
        entry.pop(key, None)
    if plain.plainly_valid(name, entry):
        assert list(_DEVICE.iter_errors({name: entry})) == []
