"""Editing YAML by splicing text at the node marks PyYAML reports.

``flashrunner pin`` and ``flashrunner discover --write`` change a few values
of a file the user wrote. Re-dumping the YAML would lose its comments, order,
quoting and layout; replacing the text between two node marks keeps all of
it, by construction.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["Edit", "apply_edits", "child", "last_index", "write_atomically"]


@dataclass(frozen=True, slots=True)
class Edit:
    start: int
    end: int
    text: str


def last_index(node: yaml.Node) -> int:
    """Where ``node``'s text ends (block collections end at their last leaf)."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return last_index(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return last_index(node.value[-1])
    return int(node.end_mark.index)


def child(mapping: yaml.MappingNode, key: str) -> yaml.Node | None:
    for key_node, value_node in mapping.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            found: yaml.Node = value_node
            return found
    return None


def apply_edits(text: str, edits: list[Edit]) -> str:
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        text = text[:edit.start] + edit.text + text[edit.end:]
    return text


def write_atomically(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o7777
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
