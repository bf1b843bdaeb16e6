"""Schema checks already passed, remembered so that later runs skip them.

A production line runs the same manifest for every board, and checking its
structure with jsonschema costs each run ~50 ms of imports before the first
byte reaches a chip. A check's verdict is a pure function of the data, the
schema and the checking code, so a check that found *no* problem is remembered
by a digest of exactly those: the data in a strict canonical form, the schema,
flashrunner's version and the files of the checking code (our validator and
jsonschema, by size and modification time). A later check with the same digest
is skipped; any change — one value in the manifest, the schema, an upgrade —
gives another digest and the full check. Problems are never remembered: a file
that has one is checked, and its problems located, every time.

Only data JSON states exactly is remembered: mappings with text keys, lists,
text, integers, finite floats, booleans and null. Anything else (a YAML
timestamp or binary value, a non-text key, NaN) is checked every time.

The record of a passed check is an empty file named by its digest under
``$XDG_CACHE_HOME/flashrunner/checked`` (``~/.cache/flashrunner/checked``).
Deleting the folder costs only the time of checking again; a folder that
cannot be read or written is not used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import runner

__all__ = ["check_digest", "passed", "remember"]

_FORMAT = b"flashrunner-checked/2"


def _folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "flashrunner" / "checked"


def _exact(data: Any) -> bool:
    """True when JSON text states ``data`` exactly (no key or type blurred)."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            if not all(type(key) is str for key in value):
                return False
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif type(value) is float:
            if not math.isfinite(value):
                return False
        elif type(value) not in (str, int, bool, type(None)):
            return False
    return True


def _code_stamp() -> bytes:
    """The checking code as installed: each file's path, size and modification time."""
    files = [Path(__file__).with_name("structure.py"), Path(__file__).with_name("fastpath.py")]
    spec = importlib.util.find_spec("jsonschema")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
        files += [folder / "validators.py", folder / "_keywords.py", folder / "_types.py"]
    parts = [runner.__version__]
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            parts.append(f"{path}:missing")
        else:
            parts.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
    return "\n".join(parts).encode()


_STAMP: list[bytes] = []


def check_digest(kind: str, schema: Mapping[str, Any], data: Any) -> str | None:
    """The digest that names checking ``data`` against ``schema``; None: never remembered."""
    if not _exact(data) or not _exact(schema):
        return None
    if not _STAMP:
        _STAMP.append(_code_stamp())
    digest = hashlib.sha256(_FORMAT)
    for part in (kind.encode(), _STAMP[0], _json(schema).encode()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    for piece in _json_pieces(data):   # last, so it needs no length
        digest.update(piece.encode())
    return digest.hexdigest()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


#: Mappings and lists longer than this are encoded entry by entry.
_PIECEWISE = 256


def _json_pieces(value: Any) -> Iterator[str]:
    """The canonical JSON text of ``value`` in pieces: a 50,000-device section is hashed
    entry by entry instead of as one text of several megabytes."""
    if isinstance(value, dict) and len(value) > _PIECEWISE:
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield ("," if index else "") + _json(key) + ":"
            yield from _json_pieces(item)
        yield "}"
    elif isinstance(value, list) and len(value) > _PIECEWISE:
        yield "["
        for index, item in enumerate(value):
            if index:
                yield ","
            yield from _json_pieces(item)
        yield "]"
    else:
        yield _json(value)


def passed(digest: str | None) -> bool:
    """Has the check named ``digest`` passed before?"""
    return digest is not None and (_folder() / digest).is_file()


def remember(digest: str | None) -> None:
    """Record that the check named ``digest`` found no problem (best effort)."""
    if digest is None:
        return
    folder = _folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(folder / digest, os.O_WRONLY | os.O_CREAT, 0o644))
    except OSError:
        pass   # a read-only or full home: the check simply runs again next time
