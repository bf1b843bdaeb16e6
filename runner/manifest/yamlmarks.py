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
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.errors import ManifestIssue

__all__ = ["Mark", "Marks", "Path", "format_path", "load_marked"]

#: A position in the data: mapping keys and list indices.
Path = tuple[str | int, ...]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"


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
    marks, and the issues found (syntax errors, duplicate keys, non-text keys).
    """
    marks = Marks()
    issues: list[ManifestIssue] = []
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, marks, issues
        builder = _Builder(loader, file, marks, issues)
        return builder.build(node, ()), marks, issues
    except yaml.MarkedYAMLError as error:
        where = error.problem_mark or error.context_mark
        line, column = (where.line + 1, where.column + 1) if where else (1, 1)
        problem = error.problem or "cannot be read"
        context = f" {error.context}" if error.context else ""
        issues.append(ManifestIssue(
            file=file, line=line, column=column, where="",
            message=f"YAML syntax error: {problem}{context}; fix the YAML at this position"))
        return None, marks, issues
    except yaml.YAMLError as error:
        issues.append(ManifestIssue(file=file, line=1, column=1, where="",
                                    message=f"YAML cannot be read: {error}"))
        return None, marks, issues
    finally:
        loader.dispose()


@dataclass(slots=True)
class _Builder:
    loader: _Loader
    file: str
    marks: Marks
    issues: list[ManifestIssue]
    _active: set[int] = field(default_factory=set)

    def _issue(self, node: Node, path: Path, message: str) -> None:
        mark = Mark.of(self.file, node)
        self.issues.append(ManifestIssue(file=self.file, line=mark.line, column=mark.column,
                                         where=format_path(path), message=message))

    def build(self, node: Node, path: Path) -> Any:
        self.marks.values[path] = Mark.of(self.file, node)
        if id(node) in self._active:
            self._issue(node, path, "an alias refers to itself; write the value out instead")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
            assert isinstance(node, ScalarNode)
            return self.loader.construct_object(node, deep=True)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        explicit = {id(key) for key, _ in node.value if key.tag != _MERGE_TAG}
        self.loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        first_seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node, deep=True) \
                if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a collection"
                self._issue(key_node, (*path, str(shown)),
                            f"key {shown!r} is not text; keys are names such as `chip` "
                            f"or `sensor-1`")
                key = str(shown)
            child = (*path, key)
            if key in first_seen and id(key_node) in explicit and id(first_seen[key]) in explicit:
                before = Mark.of(self.file, first_seen[key])
                self._issue(key_node, child,
                            f"duplicate key '{key}' (first written at line {before.line}, "
                            f"column {before.column}); keep one of them")
                continue
            first_seen[key] = key_node
            self.marks.keys[child] = Mark.of(self.file, key_node)
            result[key] = self.build(value_node, child)
        return result
