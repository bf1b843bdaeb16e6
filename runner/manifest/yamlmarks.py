"""YAML → plain data, with the file:line:column of every node kept on the side.

jsonschema wants plain dicts and lists, and users want errors at the exact
place they typed something. :func:`load_marked` gives both: the data, and a
:class:`Marks` map from a path (``("devices", "sensor-1", "chip")``) to where
that value — and, for mapping entries, its key — was written.

Two deliberate departures from ``yaml.safe_load``:

* duplicate keys are errors (PyYAML silently keeps the last one);
* only ``true``/``false`` are booleans. YAML 1.1 also reads ``on``, ``off``,
  ``yes`` and ``no`` as booleans, which would turn a recovery policy's ``on:``
  key into ``True``.

And the document is bounded (README "Limits"): at most :data:`MAX_DEPTH`
levels of nesting, aliases that expand to at most :data:`ALIAS_BUDGET` values
beyond ten times the values written out (a "billion laughs" document is
refused at its first anchor, in bounded time and memory), numbers finite (the
schema bounds every number to 64 bits and its field's range). Merge keys
(``<<``) are flattened here, keeping each key once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.errors import ManifestIssue

__all__ = ["ALIAS_BUDGET", "MAX_DEPTH", "Mark", "Marks", "Path", "format_path", "load_marked"]

#: A position in the data: mapping keys and list indices.
Path = tuple[str | int, ...]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"

#: Deepest nesting of mappings and lists a manifest may have.
MAX_DEPTH = 48
#: Values that aliases may add, beyond ten times the values written out.
ALIAS_BUDGET = 100_000
#: Above this many nesting openers, the events are scanned for depth before the
#: C composer (which recurses without a limit) builds the tree.
_SCAN_ABOVE = 10_000


# libyaml's parser when PyYAML was built with it (several times faster), else PyYAML's.
if TYPE_CHECKING:
    _BaseLoader = yaml.SafeLoader
else:
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """SafeLoader whose booleans are YAML 1.2's: ``true`` and ``false`` only."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based position in one file."""

    file: str
    line: int
    column: int

    @classmethod
    def of(cls, file: str, node: Node) -> Mark:
        return cls(file, node.start_mark.line + 1, node.start_mark.column + 1)


@dataclass(slots=True)
class Marks:
    """Where each value (and each mapping key) of a loaded document was written."""

    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)

    def value(self, path: Path) -> Mark:
        """The mark of the value at ``path``, or of its nearest marked ancestor."""
        return _nearest(self.values, path)

    def key(self, path: Path) -> Mark:
        """The mark of the key naming ``path``; the value's mark when it has no key."""
        mark = self.keys.get(path)
        return mark if mark is not None else self.value(path)

    def under(self, prefix: Path) -> Iterator[Path]:
        """Every marked path at or below ``prefix``."""
        size = len(prefix)
        return (path for path in list(self.values) if path[:size] == prefix)


def _nearest(table: dict[Path, Mark], path: Path) -> Mark:
    for size in range(len(path), -1, -1):
        mark = table.get(path[:size])
        if mark is not None:
            return mark
    raise KeyError(path)


def format_path(path: Path) -> str:
    """``("recipes", "std", 2, "verify")`` → ``recipes.std[2].verify``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_marked(text: str, file: str) -> tuple[Any, Marks, list[ManifestIssue]]:
    """Parse ``text`` (the content of ``file``) into plain data and its marks.

    Returns the data (``None`` when the document is empty or unreadable), the
    marks, and the issues found (syntax errors, duplicate keys, non-text keys,
    numbers out of range, a document nested too deeply or whose aliases expand
    too far). Syntax errors name the kind of problem and its place, never the
    text found there: the file may not be a manifest at all.
    """
    marks = Marks()
    issues: list[ManifestIssue] = []
    try:
        if _openers(text) > _SCAN_ABOVE:
            deep = _too_deep(text)
            if deep is not None:
                issues.append(ManifestIssue(
                    file=file, line=deep.line + 1, column=deep.column + 1, where="",
                    message=f"nested more than {MAX_DEPTH} levels deep; a manifest needs a "
                            f"few levels"))
                return None, marks, issues
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, marks, issues
            builder = _Builder(loader, file, marks, issues)
            return builder.build(node, ()), marks, issues
        finally:
            loader.dispose()
    except _Refused:
        return None, marks, issues
    except yaml.MarkedYAMLError as error:
        where = error.problem_mark or error.context_mark
        line, column = (where.line + 1, where.column + 1) if where else (1, 1)
        problem = _unquoted(error.problem or "cannot be read")
        context = f" {_unquoted(error.context)}" if error.context else ""
        issues.append(ManifestIssue(
            file=file, line=line, column=column, where="",
            message=f"YAML syntax error: {problem}{context}; fix the YAML at this position"))
        return None, marks, issues
    except yaml.YAMLError:
        issues.append(ManifestIssue(file=file, line=1, column=1, where="",
                                    message="YAML cannot be read; check the file is a YAML "
                                            "document"))
        return None, marks, issues
    except RecursionError:
        issues.append(ManifestIssue(file=file, line=1, column=1, where="",
                                    message="merge keys (<<) or aliases nest too deeply; "
                                            "write the values out"))
        return None, marks, issues


def _unquoted(text: str) -> str:
    """A YAML error message without the text it quotes from the file.

    Quoted punctuation (``expected ',' or ']'``) stays: it names the problem.
    """
    def keep(match: re.Match[str]) -> str:
        return match[0] if len(match[1]) <= 2 and not match[1].isalnum() else ""

    return " ".join(re.sub(r"['\"]((?:[^'\"\\]|\\.)*)['\"]", keep, text).split())


def _openers(text: str) -> int:
    """An upper bound of the nesting a flow or compact document can reach."""
    # Block mappings nest by indentation only: their depth is below sqrt(2 * size),
    # about 5,800 levels at the manifest size limit, which the composer survives.
    return (text.count("[") + text.count("{") + text.count("- ") + text.count("-\n")
            + text.count("-\t") + text.count("? "))


def _too_deep(text: str) -> Any:
    """Where the nesting first exceeds :data:`MAX_DEPTH`, reading events only."""
    loader = _Loader(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()  # type: ignore[no-untyped-call]
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return None
    finally:
        loader.dispose()


class _Refused(Exception):
    """The document cannot be built within its bounds (the issue is recorded)."""


@dataclass(slots=True)
class _Builder:
    loader: _Loader
    file: str
    marks: Marks
    issues: list[ManifestIssue]
    _active: set[int] = field(default_factory=set)
    _seen: set[int] = field(default_factory=set)
    _flat: dict[int, list[tuple[Node, Node]]] = field(default_factory=dict)
    _written: int = 0
    _repeated: int = 0
    _in_alias: int = 0

    def _issue(self, node: Node, path: Path, message: str) -> None:
        mark = Mark.of(self.file, node)
        self.issues.append(ManifestIssue(file=self.file, line=mark.line, column=mark.column,
                                         where=format_path(path), message=message))

    def build(self, node: Node, path: Path) -> Any:
        self.marks.values[path] = Mark.of(self.file, node)
        if id(node) in self._active:
            self._issue(node, path, "an alias refers to itself; write the value out instead")
            return None
        repeated = id(node) in self._seen
        self._seen.add(id(node))
        if repeated or self._in_alias:
            self._repeated += 1
            if self._repeated > ALIAS_BUDGET and self._repeated > 10 * self._written:
                self._issue(node, path, f"aliases expand this document to more than "
                                        f"{ALIAS_BUDGET:,} repeated values (an alias bomb?); "
                                        f"write the values out or repeat them less")
                raise _Refused
        else:
            self._written += 1
        if len(path) > MAX_DEPTH:
            self._issue(node, path, f"nested more than {MAX_DEPTH} levels deep; a manifest "
                                    f"needs a few levels")
            raise _Refused
        self._active.add(id(node))
        self._in_alias += repeated
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
            assert isinstance(node, ScalarNode)
            return self._scalar(node, path)
        finally:
            self._in_alias -= repeated
            self._active.discard(id(node))

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        try:
            value = self.loader.construct_object(node, deep=True)
        except ValueError:   # more digits than int() converts
            self._issue(node, path, "this number is too long; numbers fit in 64 bits")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self._issue(node, path, "not a finite number; write a number such as 0.5")
            return None
        return value

    def _pairs(self, node: MappingNode) -> list[tuple[Node, Node]]:
        """The entries of ``node`` with merge keys (``<<``) flattened, each merged key once.

        As YAML's merge key type says: explicit entries win over merged ones, and
        among merged mappings the first listed wins. Computed once per mapping.
        """
        known = self._flat.get(id(node))
        if known is not None:
            return known
        merged: dict[object, tuple[Node, Node]] = {}
        explicit: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                explicit.append((key_node, value_node))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in reversed(sources):
                if not isinstance(source, MappingNode):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        "a merge key (<<) needs a mapping or a list of mappings",
                        source.start_mark)
                for pair in self._pairs(source):
                    merged[_key_of(pair[0])] = pair
        names = {_key_of(key) for key, _ in explicit}
        pairs = [pair for key, pair in merged.items() if key not in names] + explicit
        self._flat[id(node)] = pairs
        return pairs

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Node] = {}
        for key_node, value_node in self._pairs(node):
            key = self.loader.construct_object(key_node, deep=True) \
                if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a collection"
                self._issue(key_node, (*path, str(shown)),
                            f"key {shown!r} is not text; keys are names such as `chip` "
                            f"or `sensor-1`")
                key = str(shown)
            child = (*path, key)
            if key in first_seen:
                before = Mark.of(self.file, first_seen[key])
                self._issue(key_node, child,
                            f"duplicate key '{key}' (first written at line {before.line}, "
                            f"column {before.column}); keep one of them")
                continue
            first_seen[key] = key_node
            self.marks.keys[child] = Mark.of(self.file, key_node)
            result[key] = self.build(value_node, child)
        return result


def _key_of(node: Node) -> object:
    return ("scalar", node.value) if isinstance(node, ScalarNode) else ("node", id(node))
