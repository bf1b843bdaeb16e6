"""Whatever a user types, validation ends in a model or a ManifestError — never a traceback."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import ManifestError
from runner.manifest import load_manifest

GOOD = Path(__file__).parent / "good"
LINES = (GOOD / "widget.yaml").read_text("utf-8").split("\n")
VALUES = ["", "[]", "{}", "null", "0", "-1", "0x10", "'x'", "true", "[1, 2]", "{a: 1}",
          "sensor-1", "bus-1", "app", "1.5", "[app, app]", "{use: 3}", "{use: bus-1, rate: x}",
          "{use': bus-1}", "[sensor-1, gateway]", "&a [*a]"]
SNIPPETS = ["x", " ", "{", "]", ":", "-", "'", "\t", "#"]

edit = st.one_of(
    st.tuples(st.just("value"), st.integers(0, len(LINES) - 1), st.integers(0, 50),
              st.sampled_from(VALUES)),
    st.tuples(st.just("delete"), st.integers(0, len(LINES) - 1), st.just(0), st.just("")),
    st.tuples(st.just("insert"), st.integers(0, len(LINES) - 1), st.integers(0, 200),
              st.sampled_from(SNIPPETS)),
)


def mutate(lines: list[str], edits: list[tuple[str, int, int, str]]) -> str:
    lines = list(lines)
    for kind, position, where, text in edits:
        index = position % len(lines)
        line = lines[index]
        if kind == "delete":
            del lines[index]
        elif kind == "insert":
            cut = where % (len(line) + 1)
            lines[index] = line[:cut] + text + line[cut:]
        else:
            colons = [k for k, c in enumerate(line) if c == ":"]
            if colons:
                colon = colons[where % len(colons)]
                end = line.find(",", colon)
                lines[index] = line[:colon + 1] + " " + text + (line[end:] if end >= 0 else "")
    return "\n".join(lines)


@settings(max_examples=150, deadline=None)
@given(st.lists(edit, min_size=1, max_size=3))
def test_any_edit_of_a_good_manifest_validates_or_reports_issues(
        edits: list[tuple[str, int, int, str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name in ("station.yaml", "app.bin", "boot.hex"):
            shutil.copy(GOOD / name, folder)
        path = Path(folder) / "widget.yaml"
        path.write_text(mutate(LINES, edits), "utf-8")
        try:
            load_manifest(path)
        except ManifestError as error:
            assert error.issues
            assert all(issue.line >= 1 and issue.column >= 1 for issue in error.issues)
