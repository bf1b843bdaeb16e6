"""Where each value and key of a loaded document was written, kept compactly.

A 50,000-device manifest has about a million positions (every key and every
value). Kept as one object per position they cost more than the manifest
itself; here each is one 64-bit integer (file index, line, column packed) in
one array shared by every file of a manifest, laid out per container:

* a mapping of ``n`` entries is ``3n`` integers, entry by entry in the
  mapping's order: the key's mark, the value's mark, and where the value's own
  layout starts (0 for a scalar);
* a list of ``n`` items is ``2n`` integers: the item's mark and its layout.

A path is found by walking the data itself from the root: a mapping key's
position is its place in the dict's insertion order (the loader inserts in
the order it records), a list index is its own position. Large mappings get a
key → position index the first time one of their keys is looked up.

Containers that receive entries from several files (``include:`` merges named
sections by name) get a layout of their own, kept beside the shared array.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NO_MARK", "Mark", "MarkTable", "Marks", "Path", "Raw", "format_path"]

#: A position in the data: mapping keys and list indices.
Path = tuple[str | int, ...]
#: One mapping entry as stored: key mark, value mark, layout of the value.
Raw = tuple[int, int, int]

_FIELD = 24
_FIELD_MAX = (1 << _FIELD) - 1
#: Files a manifest may consist of (the file index has 16 bits).
MAX_FILES = 1 << 16
#: A packed mark that marks nothing (no file has index 0 with line 0).
NO_MARK = 0
#: Mappings up to this size are searched; larger ones get a position index.
_SCAN = 16


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based position in one file."""

    file: str
    line: int
    column: int


@dataclass(slots=True, eq=False)
class MarkTable:
    """The packed marks of every file of one manifest, and those files' names."""

    files: list[str] = field(default_factory=list)
    packed: array[int] = field(default_factory=lambda: array("Q"))

    def add_file(self, name: str) -> int:
        """The index of a newly read file (its marks carry it)."""
        if len(self.files) >= MAX_FILES:
            raise ValueError(f"a manifest may consist of at most {MAX_FILES} files")
        self.files.append(name)
        return len(self.files) - 1

    def pack(self, file_index: int, line: int, column: int) -> int:
        """A 1-based position packed into one integer (clamped to 24 bits each)."""
        return (file_index << (2 * _FIELD)) | (min(line, _FIELD_MAX) << _FIELD) \
            | min(column, _FIELD_MAX)

    def unpack(self, packed: int) -> Mark:
        return Mark(self.files[packed >> (2 * _FIELD)], (packed >> _FIELD) & _FIELD_MAX,
                    packed & _FIELD_MAX)


@dataclass(slots=True, eq=False)
class Marks:
    """The marks of one document (one file's, or the merged manifest's).

    ``data`` is the document the marks describe; it must not change shape
    except through :meth:`put`.
    """

    table: MarkTable = field(default_factory=MarkTable)
    data: Any = None
    #: The packed mark of the document itself (:data:`NO_MARK`: nothing was read).
    root: int = NO_MARK
    #: Where the root's layout starts in the table.
    offset: int = 0
    #: Layouts of containers merged from several files, by path.
    merged: dict[Path, array[int]] = field(default_factory=dict)
    _positions: dict[int, dict[Any, int]] = field(default_factory=dict)

    # ------------------------------------------------------------------ lookups

    def value(self, path: Path) -> Mark:
        """The mark of the value at ``path``, or of its nearest ancestor present."""
        return self.table.unpack(self._find(path)[1])

    def key(self, path: Path) -> Mark:
        """The mark of the key naming ``path``; the value's mark when it has no key."""
        key, value, found = self._find(path)
        return self.table.unpack(key if found and key != NO_MARK else value)

    def entry(self, path: Path) -> Raw | None:
        """The stored (key mark, value mark, layout) of the mapping entry at ``path``."""
        if not path:
            return None
        layout, base, stride, position = self._slot(path)
        if position is None or stride != 3:
            return None
        start = base + 3 * position
        return layout[start], layout[start + 1], layout[start + 2]

    def child_keys(self, path: Path) -> Iterator[tuple[Any, Mark]]:
        """Each key of the mapping at ``path`` with its mark, in order (one walk)."""
        container, layout, base = self._container(path)
        if not isinstance(container, dict):
            return
        unpack = self.table.unpack
        for position, key in enumerate(container):
            yield key, unpack(layout[base + 3 * position])

    # ------------------------------------------------------------------ merging

    def put(self, prefix: Path, container: dict[str, Any], key: str, raw: Raw) -> None:
        """Record ``raw`` for ``container[key]`` (``container`` at ``prefix``), before the
        caller sets or adds that entry."""
        layout = self.merged.get(prefix)
        if layout is None:
            _, old, base = self._container(prefix)
            layout = array("Q", old[base:base + 3 * len(container)]) if container \
                else array("Q")
            self.merged[prefix] = layout
        position = self._position(container, key)
        if position is None:
            layout.extend(raw)
        else:
            layout[3 * position:3 * position + 3] = array("Q", raw)
        self._positions.pop(id(container), None)

    # ------------------------------------------------------------------ walking

    def _container(self, path: Path) -> tuple[Any, array[int], int]:
        """The container at ``path`` (None when absent) and where its layout is."""
        container: Any = self.data
        layout, base = self.table.packed, self.offset
        for depth, part in enumerate(path):
            own = self.merged.get(path[:depth])
            if own is not None:
                layout, base = own, 0
            position = self._index(container, part)
            if position is None:
                return None, layout, base
            stride = 3 if isinstance(container, dict) else 2
            base = layout[base + stride * position + stride - 1]
            layout = self.table.packed
            container = container[part]
        own = self.merged.get(path)
        return (container, own, 0) if own is not None else (container, layout, base)

    def _slot(self, path: Path) -> tuple[array[int], int, int, int | None]:
        """(layout, base, stride, position) of the last part of ``path`` in its container."""
        container, layout, base = self._container(path[:-1])
        position = self._index(container, path[-1])
        return layout, base, 3 if isinstance(container, dict) else 2, position

    def _find(self, path: Path) -> tuple[int, int, bool]:
        """(key mark, value mark, found) of ``path``; the nearest ancestor's if absent."""
        if self.root == NO_MARK:
            raise KeyError(path)
        container: Any = self.data
        layout, base = self.table.packed, self.offset
        key, value = NO_MARK, self.root
        for depth, part in enumerate(path):
            own = self.merged.get(path[:depth]) if self.merged else None
            if own is not None:
                layout, base = own, 0
            position = self._index(container, part)
            if position is None:
                return NO_MARK, value, False
            if isinstance(container, dict):
                start = base + 3 * position
                key, value, base = layout[start], layout[start + 1], layout[start + 2]
            else:
                start = base + 2 * position
                key, value, base = NO_MARK, layout[start], layout[start + 1]
            layout = self.table.packed
            container = container[part]
        return key, value, True

    def _index(self, container: Any, part: str | int) -> int | None:
        if isinstance(container, dict):
            return self._position(container, part)
        if isinstance(container, list) and type(part) is int and 0 <= part < len(container):
            return part
        return None

    def _position(self, container: dict[Any, Any], key: Any) -> int | None:
        if key not in container:
            return None
        if len(container) <= _SCAN:
            for position, name in enumerate(container):
                if name == key:
                    return position
        index = self._positions.get(id(container))
        if index is None:
            index = self._positions[id(container)] = {
                name: position for position, name in enumerate(container)}
        return index[key]


def format_path(path: Path) -> str:
    """``("recipes", "std", 2, "verify")`` → ``recipes.std[2].verify``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
