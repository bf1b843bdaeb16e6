"""YAML → plain data, with the file:line:column of every value and key on the side.

jsonschema wants plain dicts and lists, and users want errors at the exact
place they typed something. :func:`load_marked` gives both: the data, and
:class:`~runner.manifest.marks.Marks`, from a path
(``("devices", "sensor-1", "chip")``) to where that value — and, for mapping
entries, its key — was written.

The document is built straight from the parser's events (libyaml's when PyYAML
was built with it, else PyYAML's own; both give the same data and marks), one
pass, no node tree: a 50,000-device line costs a few small objects per device.
Equal text is one string (the thousands of ``chip``/``recipe`` keys and
repeated values), kept in the document's own table rather than the
interpreter's, which would keep an entry per device name for good; an alias
shares the anchored value rather than copying it.

Two deliberate departures from ``yaml.safe_load``:

* duplicate keys are errors (PyYAML silently keeps the last one);
* only ``true``/``false`` are booleans. YAML 1.1 also reads ``on``, ``off``,
  ``yes`` and ``no`` as booleans, which would turn a recovery policy's ``on:``
  key into ``True``.

And the document is bounded (README "Limits"): at most :data:`MAX_DEPTH`
levels of nesting (counting what aliases expand to), aliases that expand to at
most :data:`ALIAS_BUDGET` values beyond ten times the values written out (a
"billion laughs" document is refused at the alias that crosses the line, in
bounded time and memory), numbers finite (the schema bounds every number to 64
bits and its field's range). Merge keys (``<<``) are flattened here, keeping
each key once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from types import GeneratorType
from typing import TYPE_CHECKING, Any

import yaml
from yaml.error import Mark as YamlMark
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

from runner.errors import ManifestIssue
from runner.manifest.marks import NO_MARK, Mark, Marks, MarkTable, Path, format_path

__all__ = ["ALIAS_BUDGET", "MAX_DEPTH", "Mark", "Marks", "Path", "format_path", "load_marked"]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
#: A parser's position (libyaml's and PyYAML's are different classes of one shape).
EventMark = Any

#: Deepest nesting of mappings and lists a manifest may have.
MAX_DEPTH = 48
#: Values that aliases may add, beyond ten times the values written out.
ALIAS_BUDGET = 100_000


class PureLoader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's: ``true`` and ``false`` only."""


PureLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
PureLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))

if TYPE_CHECKING:
    FastLoader = PureLoader
else:
    _CBase = getattr(yaml, "CSafeLoader", None)
    if _CBase is None:
        FastLoader = PureLoader
    else:
        class FastLoader(_CBase):
            """libyaml's parser with :class:`PureLoader`'s resolvers."""

        FastLoader.yaml_implicit_resolvers = PureLoader.yaml_implicit_resolvers

#: The loader :func:`load_marked` uses unless told otherwise: libyaml's where available.
DEFAULT_LOADER: type[PureLoader] = FastLoader

#: First characters of a plain scalar that may resolve to something other than text.
_MAYBE_TYPED = frozenset(first for first, resolvers in PureLoader.yaml_implicit_resolvers.items()
                         if resolvers)


def load_marked(text: str | bytes, file: str, *, table: MarkTable | None = None,
                loader: type[PureLoader] | None = None,
                ) -> tuple[Any, Marks, list[ManifestIssue]]:
    """Parse ``text`` (the content of ``file``, as text or UTF-8) into plain data and marks.

    ``table`` is where the marks are kept (one per manifest, shared by its
    files); ``loader`` the YAML loader class (default :data:`DEFAULT_LOADER`).

    Returns the data (``None`` when the document is empty or unreadable), the
    marks, and the issues found (syntax errors, duplicate keys, non-text keys,
    numbers out of range, a document nested too deeply or whose aliases expand
    too far). Syntax errors name the kind of problem and its place, never the
    text found there: the file may not be a manifest at all.
    """
    table = table if table is not None else MarkTable()
    marks = Marks(table=table)
    issues: list[ManifestIssue] = []
    try:
        index = table.add_file(file)
    except ValueError as error:
        issues.append(ManifestIssue(file=file, line=1, column=1, where="",
                                    message=f"{error}; include fewer files"))
        return None, marks, issues
    parser = (loader or DEFAULT_LOADER)(text)
    try:
        builder = _Builder(parser, table, index, file, issues)
        data = builder.run()
        if builder.root != NO_MARK:
            marks.data, marks.root, marks.offset = data, builder.root, builder.root_offset
        return data, marks, issues
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
    finally:
        parser.dispose()


def _unquoted(text: str) -> str:
    """A YAML error message without the text it quotes from the file.

    Quoted punctuation (``expected ',' or ']'``) stays: it names the problem.
    """
    def keep(match: re.Match[str]) -> str:
        return match[0] if len(match[1]) <= 2 and not match[1].isalnum() else ""

    return " ".join(re.sub(r"['\"]((?:[^'\"\\]|\\.)*)['\"]", keep, text).split())


class _Refused(Exception):
    """The document cannot be built within its bounds (the issue is recorded)."""


#: A mapping frame's state between entries: the next scalar is a key.
_NO_KEY: Any = object()
#: The key was a duplicate: its value is read and dropped.
_SKIP: Any = object()
#: The key was ``<<``: its value lists mappings to merge.
_MERGE: Any = object()


@dataclass(slots=True, eq=False)
class _Frame:
    """A mapping or list being built."""

    container: Any
    mark: int                       # the container's own packed mark
    start: EventMark                 # for messages about the whole container
    anchor: str | None
    is_map: bool
    layout: list[int] = field(default_factory=list)
    key: Any = _NO_KEY
    key_mark: int = NO_MARK
    #: Merge sources (mapping, layout offset) per ``<<`` key, in the order written.
    merges: list[list[tuple[Any, int, int]]] | None = None
    #: This list is the value of a ``<<`` key: its items are merge sources.
    sources: bool = False


@dataclass(slots=True, eq=False)
class _Anchor:
    value: Any
    mark: int
    offset: int
    event: EventMark
    open: bool


class _Builder:
    """One document's events → data, packed marks and issues."""

    def __init__(self, parser: PureLoader, table: MarkTable, index: int, file: str,
                 issues: list[ManifestIssue]) -> None:
        self.parser = parser
        self.table = table
        self.base = index << 48
        self.file = file
        self.issues = issues
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor] = {}
        self.sizes: dict[int, tuple[int, int]] = {}   # id(container) → (values, height)
        self.written = 0
        self.repeated = 0
        self.root = NO_MARK
        self.root_offset = 0
        self.data: Any = None
        #: Equal text is one string: the first one read (this document's, not the
        #: interpreter's interned table, which would keep an entry per device name).
        self.texts: dict[str, str] = {}

    # ------------------------------------------------------------------ events

    def run(self) -> Any:
        get_event = self.parser.get_event
        stack = self.stack
        documents = 0
        first_document: EventMark = None
        while True:
            event = get_event()  # type: ignore[no-untyped-call]
            kind = event.__class__
            if kind is ScalarEvent:
                self._scalar(event)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                self._open(event, kind is MappingStartEvent)
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                self._close(stack.pop())
            elif kind is AliasEvent:
                self._alias(event)
            elif kind is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise yaml.composer.ComposerError(
                        "expected a single document in the stream", first_document,
                        "but found another document", event.start_mark)
                first_document = event.start_mark
            elif kind is DocumentEndEvent:
                self.anchors.clear()
            elif kind is StreamEndEvent:
                return self.data

    def _pack(self, mark: EventMark) -> int:
        line: int = mark.line + 1
        column: int = mark.column + 1
        if line > 0xFFFFFF or column > 0xFFFFFF:   # past 16 MiB: clamped
            line, column = min(line, 0xFFFFFF), min(column, 0xFFFFFF)
        return self.base | (line << 24) | column

    def _path(self) -> Path:
        """The path of the value about to be delivered."""
        parts: list[str | int] = []
        for frame in self.stack:
            if frame.is_map:
                parts.append(frame.key if isinstance(frame.key, str) else "<<")
            else:
                parts.append(len(frame.container))
        return tuple(parts)

    def _issue(self, mark: int, path: Path, message: str) -> None:
        shown = self.table.unpack(mark)
        self.issues.append(ManifestIssue(file=self.file, line=shown.line, column=shown.column,
                                         where=format_path(path), message=message))

    def _depth_check(self, mark: int, extra: int = 0) -> None:
        if len(self.stack) + extra > MAX_DEPTH:
            self._issue(mark, self._path(), f"nested more than {MAX_DEPTH} levels deep; a "
                                            f"manifest needs a few levels")
            raise _Refused

    def _at_key(self) -> bool:
        return bool(self.stack) and self.stack[-1].is_map and self.stack[-1].key is _NO_KEY

    def _scalar(self, event: Any) -> None:
        mark = self._pack(event.start_mark)
        value = event.value
        tag = event.tag
        if self._at_key():
            frame = self.stack[-1]
            if tag is None or tag == "!":
                tag = _STR_TAG if event.implicit[0] and value and value[0] not in _MAYBE_TYPED \
                    else self.parser.resolve(  # type: ignore[no-untyped-call]
                    ScalarNode, value, event.implicit)
            if tag == _MERGE_TAG:
                frame.key, frame.key_mark = _MERGE, mark
                return
            key = self.texts.setdefault(value, value) if tag == _STR_TAG \
                else self._construct(tag, event)
            if event.anchor is not None:
                self._anchor(event.anchor, key, mark, 0, event.start_mark)
            self._key(frame, key, value, mark)
            return
        self.written += 1
        self._depth_check(mark)
        if tag is None or tag == "!":
            if event.implicit[0] and value and value[0] not in _MAYBE_TYPED:
                tag = _STR_TAG
            else:
                tag = self.parser.resolve(  # type: ignore[no-untyped-call]
                    ScalarNode, value, event.implicit)
        if tag == _STR_TAG:
            result: Any = self.texts.setdefault(value, value)
        else:
            try:
                result = self._construct(tag, event)
            except ValueError:   # more digits than int() converts
                self._issue(mark, self._path(), "this number is too long; numbers fit in "
                                                "64 bits")
                result = None
            if isinstance(result, float) and not math.isfinite(result):
                self._issue(mark, self._path(), "not a finite number; write a number such "
                                                "as 0.5")
                result = None
        if event.anchor is not None:
            self._anchor(event.anchor, result, mark, 0, event.start_mark)
        self._deliver(result, mark, 0)

    def _construct(self, tag: str, event: Any) -> Any:
        constructors = self.parser.yaml_constructors
        construct = constructors.get(tag) or constructors[None]
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark,
                          style=event.style)
        value = construct(self.parser, node)
        if isinstance(value, GeneratorType):   # !!map / !!seq / !!set on a scalar: an error
            generator, value = value, next(value)
            for _ in generator:
                pass
        return value

    def _anchor(self, name: str, value: Any, mark: int, offset: int, at: EventMark,
                *, is_open: bool = False) -> None:
        known = self.anchors.get(name)
        if known is not None and (is_open or not known.open):
            raise yaml.composer.ComposerError("found duplicate anchor; first occurrence",
                                              known.event, "second occurrence", at)
        self.anchors[name] = _Anchor(value, mark, offset, at, is_open)

    def _open(self, event: Any, is_map: bool) -> None:
        mark = self._pack(event.start_mark)
        key_position = self._at_key()
        if not key_position:
            self.written += 1
            self._depth_check(mark)
        frame = _Frame({} if is_map else [], mark, event.start_mark, event.anchor, is_map)
        parent = self.stack[-1] if self.stack else None
        if not is_map and parent is not None and parent.is_map and parent.key is _MERGE:
            frame.sources = True
        if event.anchor is not None:
            self._anchor(event.anchor, None, mark, 0, event.start_mark, is_open=True)
        self.stack.append(frame)

    def _close(self, frame: _Frame) -> None:
        if frame.merges:
            self._flatten(frame)
        packed = self.table.packed
        offset = len(packed)
        packed.extend(frame.layout)
        if frame.anchor is not None:
            anchor = self.anchors[frame.anchor]
            anchor.value, anchor.offset, anchor.open = frame.container, offset, False
        self._deliver(frame.container, frame.mark, offset, start=frame.start)

    def _alias(self, event: Any) -> None:
        mark = self._pack(event.start_mark)
        anchor = self.anchors.get(event.anchor)
        if anchor is None:
            raise yaml.composer.ComposerError(None, None, "found undefined alias",
                                              event.start_mark)
        if self._at_key():
            frame = self.stack[-1]
            self._key(frame, anchor.value, str(anchor.value), anchor.mark)
            return
        if anchor.open:
            self._issue(anchor.mark, self._path(), "an alias refers to itself; write the "
                                                   "value out instead")
            self._deliver(None, anchor.mark, 0)
            return
        parent = self.stack[-1] if self.stack else None
        merging = parent is not None and (parent.sources
                                          or (parent.is_map and parent.key is _MERGE))
        if not merging:
            self._expand(anchor.value, mark)
        self._deliver(anchor.value, anchor.mark, anchor.offset, start=anchor.event)

    def _expand(self, value: Any, mark: int) -> None:
        """Count the values an alias (or a merged entry) repeats; refuse past the bounds."""
        size, height = self._measure(value)
        self._depth_check(mark, height - 1)
        self.repeated += size
        if self.repeated > ALIAS_BUDGET and self.repeated > 10 * self.written:
            self._issue(mark, self._path(), f"aliases expand this document to more than "
                                            f"{ALIAS_BUDGET:,} repeated values (an alias "
                                            f"bomb?); write the values out or repeat them "
                                            f"less")
            raise _Refused

    def _measure(self, value: Any) -> tuple[int, int]:
        """(values, levels) ``value`` stands for, aliases expanded (shared parts counted once
        in time, every time in the result)."""
        if not isinstance(value, (dict, list)):
            return 1, 1
        known = self.sizes.get(id(value))
        if known is not None:
            return known
        size, height = 1, 0
        for item in value.values() if isinstance(value, dict) else value:
            item_size, item_height = self._measure(item)
            size += item_size
            height = max(height, item_height)
        self.sizes[id(value)] = result = (size, height + 1)
        return result

    # ------------------------------------------------------------------ assembling

    def _key(self, frame: _Frame, key: Any, shown: str, mark: int) -> None:
        if not isinstance(key, str):
            if isinstance(key, (dict, list)):
                shown = "a collection"
            self._issue(mark, (*self._path()[:-1], shown),
                        f"key {shown!r} is not text; keys are names such as `chip` "
                        f"or `sensor-1`")
            key = shown
        if key in frame.container:
            position = list(frame.container).index(key)
            before = self.table.unpack(frame.layout[3 * position])
            frame.key = key
            self._issue(mark, self._path(),
                        f"duplicate key '{key}' (first written at line {before.line}, "
                        f"column {before.column}); keep one of them")
            frame.key = _SKIP
            return
        frame.key, frame.key_mark = key, mark

    def _deliver(self, value: Any, mark: int, offset: int, *,
                 start: EventMark = None) -> None:
        if not self.stack:
            self.data, self.root, self.root_offset = value, mark, offset
            return
        frame = self.stack[-1]
        if not frame.is_map:
            frame.container.append(value)
            frame.layout += (mark, offset)
            return
        key = frame.key
        if key is _NO_KEY:   # a mapping or list as a key
            self._key(frame, value, "a collection", mark)
            return
        frame.key = _NO_KEY
        if key is _SKIP:
            return
        if key is _MERGE:
            self._merge_sources(frame, value, mark, offset, start)
            return
        frame.container[key] = value
        frame.layout += (frame.key_mark, mark, offset)

    def _merge_sources(self, frame: _Frame, value: Any, mark: int, offset: int,
                       start: EventMark) -> None:
        sources: list[tuple[Any, int, int]]
        if isinstance(value, list):
            packed = self.table.packed
            sources = [(item, packed[offset + 2 * i], packed[offset + 2 * i + 1])
                       for i, item in enumerate(value)]
        else:
            sources = [(value, mark, offset)]
        for source, source_mark, _ in sources:
            if not isinstance(source, dict):
                shown = self.table.unpack(source_mark)
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", frame.start,
                    "a merge key (<<) needs a mapping or a list of mappings",
                    YamlMark(shown.file, 0, shown.line - 1, shown.column - 1, None, 0))
        if frame.merges is None:
            frame.merges = []
        frame.merges.append(sources)

    def _flatten(self, frame: _Frame) -> None:
        """Merge keys: explicit entries win over merged ones, and among merged mappings
        the first listed wins (YAML's merge key type)."""
        assert frame.merges is not None
        packed = self.table.packed
        merged: dict[str, tuple[Any, int, int, int]] = {}
        for sources in frame.merges:
            for source, _, offset in reversed(sources):
                for position, (key, value) in enumerate(source.items()):
                    start = offset + 3 * position
                    merged[key] = (value, packed[start], packed[start + 1], packed[start + 2])
        explicit, explicit_layout = frame.container, frame.layout
        container: dict[str, Any] = {}
        layout: list[int] = []
        for key, (value, key_mark, value_mark, value_offset) in merged.items():
            if key in explicit:
                continue
            self.stack.append(frame)   # the path of a merged value is inside this mapping
            frame.key = key
            try:
                self._expand(value, value_mark)
            finally:
                self.stack.pop()
            container[key] = value
            layout += (key_mark, value_mark, value_offset)
        container.update(explicit)
        layout += explicit_layout
        frame.container, frame.layout, frame.key = container, layout, _NO_KEY
