"""Every file under bad/ is a manifest with known mistakes.

Its first line says what must be reported: ``# expect: LINE:COL: text`` with
one entry per issue, separated by `` | ``. The loader must report exactly
those issues, in that order, each located in that file at that position and
with a message containing that text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner.errors import ManifestError
from runner.manifest import load_manifest

BAD = Path(__file__).parent / "bad"
CORPUS = sorted(BAD.glob("*.yaml"))
_EXPECT = re.compile(r"^(\d+):(\d+): (.+)$")


def expectations(path: Path) -> list[tuple[int, int, str]]:
    first = path.read_text("utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} has no expectation line"
    found = []
    for entry in first.removeprefix("# expect: ").split(" | "):
        match = _EXPECT.match(entry.strip())
        assert match, f"{path.name}: cannot read expectation {entry!r}"
        found.append((int(match[1]), int(match[2]), match[3]))
    return found


def test_the_corpus_is_large_enough_to_mean_something() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_manifest_reports_its_mistakes_where_they_are(path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    issues = caught.value.issues
    expected = expectations(path)
    got = [(i.line, i.column, i.message) for i in issues]
    assert len(issues) == len(expected), got
    for issue, (line, column, text) in zip(issues, expected, strict=True):
        assert issue.file == str(path)
        assert (issue.line, issue.column) == (line, column), got
        assert text in issue.message, got
        assert str(issue).startswith(f"{path}:{line}:{column}: ")
