"""Manifest loading: YAML with locations → schema → semantic checks → frozen model.

:func:`load_manifest` is the one entry point. It reports every problem of
every file in one :class:`~runner.errors.ManifestError`, each located at
``file:line:column`` with the manifest path of the element concerned, sorted
by file and position; only a manifest without problems becomes a
:class:`~runner.model.Manifest`.

The stages, one module each:

* :mod:`.yamlmarks` — YAML to plain data plus a map of positions;
* :mod:`.structure` — the JSON Schema (``schemas/manifest.schema.json``),
  its errors phrased for humans;
* :mod:`.sources` — ``include:`` files read and merged;
* :mod:`.references`, :mod:`.stations` and :mod:`.targets` — the semantic checks;
* :mod:`.build` — the frozen model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from runner.errors import ManifestError, ManifestIssue
from runner.gcpause import collector_paused
from runner.manifest.advice import manifest_warnings
from runner.manifest.build import build_manifest
from runner.manifest.checks import Checker
from runner.manifest.paths import PathPolicy
from runner.manifest.references import check_references
from runner.manifest.sources import read_sources
from runner.manifest.stations import check_stations
from runner.manifest.targets import check_targets
from runner.manifest.wiring import check_wiring
from runner.model import Manifest
from transports.chips import ChipDatabase, chip_database

__all__ = ["load_manifest"]


def load_manifest(path: str | os.PathLike[str], *,
                  chips: ChipDatabase | None = None,
                  allow: Iterable[str | os.PathLike[str]] = ()) -> Manifest:
    """Load, validate and build the manifest at ``path`` (with its includes).

    Included and data files must lie under the manifest's folder or one of the
    ``allow`` folders (:mod:`runner.manifest.paths`).

    Raises:
        ManifestError: listing every problem found, sorted by file and position.
    """
    with collector_paused():
        return _load(os.fspath(path), chips, allow)


def _load(display: str, chips: ChipDatabase | None,
          allow: Iterable[str | os.PathLike[str]]) -> Manifest:
    policy = PathPolicy.for_manifest(Path(display), allow)
    sources = read_sources(Path(display), display, policy)
    issues = list(sources.issues)
    folders = {source.display: source.path.parent for source in sources.files}
    checker = Checker(sources.data, sources.marks)
    if sources.data and not sources.incomplete:
        check_references(checker)
        check_stations(checker)
        check_wiring(checker)
        check_targets(checker, chips if chips is not None else chip_database(), folders,
                      policy)
        issues.extend(checker.issues)
    if issues or not sources.files:
        raise ManifestError(_sorted_unique(issues, [s.display for s in sources.files]))
    warnings = _sorted_unique(manifest_warnings(checker), [s.display for s in sources.files])
    return build_manifest(sources, folders, warnings=tuple(str(w) for w in warnings))


def _sorted_unique(issues: list[ManifestIssue], files: list[str]) -> list[ManifestIssue]:
    order = {name: index for index, name in enumerate(files)}
    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=lambda i: (order.get(i.file, len(order)), i.file, i.line,
                                         i.column, i.message))
