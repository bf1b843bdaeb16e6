"""Reading a manifest and the files it includes into one marked document.

A product manifest may split its content over several files with
``include: [station-3.yaml, …]``; paths are relative to the including file.
An included file has the manifest's format without the run-wide settings
(``manifest``, ``name``, ``simulate``, ``execution``, ``log``): a *station
inventory* typically carries ``transports`` (and ``simulation``; for remote
stations also ``stations``, each naming its links), a *product
part* carries ``images``, ``recipes``, ``recovery`` and ``devices``. Included
files may include further files; a cycle is an error.

Named sections are merged by name; a name defined in two files is an error
naming both places. Each value keeps the mark of the file it came from, so
relative paths (an image's ``file``) resolve against that file's folder.

Every file is read through :func:`runner.inputs.read_input` (regular files
only, at most :data:`~runner.inputs.MANIFEST_LIMIT` bytes); an included file
must lie where the :class:`~runner.manifest.paths.PathPolicy` allows. A file
that is not a manifest at all (not a mapping, or none of its keys a manifest
key) is reported as such, without showing anything it contains.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import ManifestIssue
from runner.inputs import MANIFEST_LIMIT, read_input
from runner.manifest.marks import NO_MARK, Mark, Marks, format_path
from runner.manifest.marks import Path as DataPath
from runner.manifest.paths import PathPolicy
from runner.manifest.structure import validate_file
from runner.manifest.yamlmarks import load_marked
from schemas import load_schema

__all__ = ["INCLUDABLE", "MERGED_BY_NAME", "Source", "Sources", "read_sources"]

#: Sections whose entries are merged across files by name.
MERGED_BY_NAME = frozenset({
    ("images",), ("transports",), ("stations",), ("recipes",), ("recovery",), ("devices",),
    ("simulation",), ("simulation", "devices"),
})


#: Top-level keys an included file may carry.
INCLUDABLE = frozenset(load_schema("manifest")["$defs"]["included-file"]["properties"])
#: Top-level keys of a manifest.
TOP_LEVEL = frozenset(load_schema("manifest")["properties"])


@dataclass(frozen=True, slots=True)
class Source:
    """One file read: how it is shown in messages, and where it is."""

    display: str
    path: Path


@dataclass(slots=True)
class Sources:
    """The merged document, its marks, every file read (top first) and the issues found."""

    data: dict[str, Any] = field(default_factory=dict)
    marks: Marks = field(default_factory=Marks)
    files: list[Source] = field(default_factory=list)
    issues: list[ManifestIssue] = field(default_factory=list)
    #: A file could not be read or parsed: references into it would all look dangling.
    incomplete: bool = False
    #: SHA-256 of every file's bytes, in the order read (the files are not kept).
    digest: Any = field(default_factory=hashlib.sha256)

    def issue(self, mark: Mark, where: DataPath, message: str) -> None:
        self.issues.append(ManifestIssue(file=mark.file, line=mark.line, column=mark.column,
                                         where=format_path(where), message=message))


def read_sources(path: Path, display: str, policy: PathPolicy | None = None) -> Sources:
    """Read ``path`` and, depth first in order, every file it includes.

    ``policy`` says where included files may lie (default: under ``path``'s folder).
    """
    sources = Sources()
    sources.marks.data = sources.data
    _read(sources, path, display, chain=(), include_mark=None,
          policy=policy or PathPolicy.for_manifest(path))
    return sources


def _not_a_manifest(data: Any, top: bool) -> str | None:
    """Why ``data`` is not a manifest (or an includable part of one) at all, if it is not."""
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else "a single value"
        return f"not a flashrunner manifest: the file holds {kind}, not a mapping of keys"
    keys = TOP_LEVEL if top else INCLUDABLE
    if not any(isinstance(key, str) and key in keys for key in data):
        return ("not a flashrunner manifest: none of its keys is a manifest key (" +
                ", ".join(sorted(keys)) + ")")
    return None


def _read(sources: Sources, path: Path, display: str, *, chain: tuple[Source, ...],
          include_mark: tuple[Mark, DataPath] | None, policy: PathPolicy) -> None:
    top = include_mark is None
    try:
        content = read_input(path, limit=MANIFEST_LIMIT)
    except OSError as error:
        sources.incomplete = True
        reason = error.strerror or str(error)
        if include_mark is None:
            sources.issues.append(ManifestIssue(file=display, line=1, column=1, where="",
                                                message=f"cannot read the manifest: {reason}"))
        else:
            mark, where = include_mark
            sources.issue(mark, where, f"cannot read included file {display}: {reason}; "
                                       f"paths are relative to the including file")
        return
    source = Source(display, path)
    sources.files.append(source)
    sources.digest.update(content)
    try:
        content.decode("utf-8")   # only checked: the parser reads the bytes, uncopied
    except UnicodeDecodeError as error:
        sources.incomplete = True
        sources.issues.append(ManifestIssue(
            file=display, line=1, column=1, where="",
            message=f"not UTF-8 text (byte {error.start}); save the file as UTF-8"))
        return
    data, marks, issues = load_marked(content, display, table=sources.marks.table)
    del content   # the file's bytes are hashed; not kept while the rest is built
    refusal = _not_a_manifest(data, top) if data is not None else None
    if refusal is not None:
        # Say nothing of what the file holds: it may be any file the user can read.
        sources.incomplete = True
        sources.issues.append(ManifestIssue(file=display, line=1, column=1, where="",
                                            message=refusal))
        return
    sources.issues.extend(issues)
    if data is None and not issues:
        sources.issues.append(ManifestIssue(file=display, line=1, column=1, where="",
                                            message="the file is empty; a manifest starts "
                                                    "with `manifest: 1`" if top else
                                                    "the included file is empty"))
        return
    if data is None:
        sources.incomplete = True
        return
    # A value the loader refused (an infinite number) is reported once, by the loader,
    # not again by the schema as missing.
    refused = {(issue.line, issue.column) for issue in issues}
    sources.issues.extend(issue for issue in validate_file(data, marks, top=top)
                          if (issue.line, issue.column) not in refused
                          or "got nothing" not in issue.message)
    if not isinstance(data, dict):
        return
    if not top:
        # Keys an included file may not carry were reported by the schema; keep them out.
        data = {k: v for k, v in data.items() if k in INCLUDABLE}
    _merge(sources, data, marks, ())
    if sources.marks.root == NO_MARK:
        sources.marks.root = marks.root
    included = data.get("include")
    if not isinstance(included, list):
        return
    here = (*chain, source)
    for index, name in enumerate(included):
        if not isinstance(name, str) or not name:
            continue
        at: DataPath = ("include", index)
        mark = marks.value(at)
        target = Path(os.path.normpath(path.parent / name))
        shown = os.path.normpath(os.path.join(os.path.dirname(display), name))
        if not policy.allows(target):
            sources.incomplete = True
            sources.issue(mark, at, policy.refusal("included file", shown))
            continue
        resolved = _resolved(target)
        ring = [s for s in here if _resolved(s.path) == resolved]
        if ring:
            names = " → ".join(s.display for s in here[here.index(ring[0]):])
            sources.issue(mark, at, f"include cycle: {names} → {shown}; "
                                       f"remove one of these includes")
            continue
        if any(_resolved(s.path) == resolved for s in sources.files):
            sources.issue(mark, at, f"{shown} is already included; include it once")
            continue
        _read(sources, target, shown, chain=here, include_mark=(mark, at), policy=policy)


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def _merge(sources: Sources, data: dict[str, Any], marks: Marks, prefix: DataPath) -> None:
    """Merge one file's mapping at ``prefix`` into the document, reporting redefinitions."""
    target: Any = sources.data
    for part in prefix:
        target = target[part]
    for key, value in data.items():
        if prefix == () and key == "include":
            continue
        path = (*prefix, key)
        if key not in target or (target[key] is None and path in MERGED_BY_NAME):
            raw = marks.entry(path)
            assert raw is not None
            sources.marks.put(prefix, target, key, raw)
            target[key] = value
            continue
        if path in MERGED_BY_NAME and isinstance(target[key], dict) and isinstance(value, dict):
            _merge(sources, value, marks, path)
            continue
        if prefix == () and key == "description":
            continue
        first = sources.marks.key(path)
        sources.issue(marks.key(path), path,
                      f"'{key}' is already defined at {first.file}:{first.line}:"
                      f"{first.column}; define it in one file only")
