"""Saving flash read from a chip to a file: what a ``read`` step does with its bytes.

The file is written durably (a temporary file beside it, fsynced, renamed over)
so that a crash never leaves half a read-out under the final name, and an
existing file is kept unless the step says ``overwrite``: a read-out is often
the only copy of a board's content before a risky change.
"""

from __future__ import annotations

import os
from pathlib import Path

from runner.errors import EnvironmentProblem

__all__ = ["expand_read_path", "save_region"]


def expand_read_path(path: Path, *, device: str) -> Path:
    """``{device}`` in a read step's file name replaced by the device's name."""
    return Path(str(path).replace("{device}", device))


def save_region(path: Path, address: int, data: bytes, *, format: str,
                overwrite: bool = False) -> None:
    """Write ``data`` (read at ``address``) to ``path`` as a raw binary or Intel HEX.

    Raises:
        EnvironmentProblem: the file exists and ``overwrite`` is false, or it
            cannot be written.
    """
    if path.exists() and not overwrite:
        raise EnvironmentProblem(f"{path} already exists; a read never replaces a file",
                                 hint="choose another file name, move the old one away, or "
                                      "set overwrite: true (--force on the command line)")
    if format == "hex":
        import bincopy

        binfile = bincopy.BinFile()
        binfile.add_binary(data, address=address)
        content = binfile.as_ihex().encode("ascii")
    else:
        content = data
    temporary = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise EnvironmentProblem(f"cannot write {path}: {error.strerror or error}",
                                 hint="check the folder exists, is writable and has room") \
            from error
