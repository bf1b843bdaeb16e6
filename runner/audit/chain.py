"""The hash chain of an audit log: each record's ``prev`` is the SHA-256 of the line before.

The hash is taken over the exact bytes of the previous line as written (UTF-8,
without its newline), so no JSON canonicalisation is involved: any edit,
insertion, deletion or reordering breaks the chain at a line that can be
named. The first record's ``prev`` is derived from the run id:
``SHA-256("flashrunner-audit/2\\n" + run_id)``.
"""

from __future__ import annotations

import hashlib

__all__ = ["FORMAT", "genesis", "line_hash"]

#: The log format: version 2 added ``prev`` (version 1 had no format field).
FORMAT = "flashrunner-audit/2"


def genesis(run_id: str) -> str:
    """The ``prev`` of a log's first record."""
    return hashlib.sha256(f"{FORMAT}\n{run_id}".encode()).hexdigest()


def line_hash(line: str | bytes) -> str:
    """SHA-256 (hex) of one line's bytes, without its newline."""
    data = line.encode("utf-8") if isinstance(line, str) else line
    if data.endswith(b"\n"):
        data = data[:-1]
    return hashlib.sha256(data).hexdigest()
