"""Reading the files a manifest names: regular files only, never blocking, bounded.

A manifest, an included file, an image or a CSV data file is read through
:func:`read_input`. It opens without blocking (``O_NONBLOCK``: a FIFO would
otherwise wait forever for a writer), refuses anything that is not a regular
file (FIFOs, devices such as ``/dev/zero``, directories, sockets) and refuses a
file larger than its limit, both before reading and while reading (a file that
grows under us). The limits are documented in the README ("Limits").

Refusals are :class:`OSError` with ``strerror`` saying what is wrong, so every
caller's existing "cannot read FILE: reason" path reports them, located.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["DATA_FILE_LIMIT", "IMAGE_LIMIT", "MANIFEST_LIMIT", "read_input"]

#: Largest manifest or included file: 16 MiB, about 200,000 devices of one line each.
MANIFEST_LIMIT = 16 * 1024 * 1024
#: Largest image file: 128 MiB, room for an ELF with its debug sections (the largest
#: STM32 flash is 4 MiB; an Intel HEX file is about 2.8 times its data).
IMAGE_LIMIT = 128 * 1024 * 1024
#: Largest CSV data file of a unit-data source: 64 MiB.
DATA_FILE_LIMIT = 64 * 1024 * 1024

_CHUNK = 1 << 20


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MiB" if count >= 1024 * 1024 else f"{count} bytes"


def read_input(path: str | os.PathLike[str], *, limit: int) -> bytes:
    """The content of the regular file at ``path``, at most ``limit`` bytes.

    Raises:
        OSError: the file cannot be opened, is not a regular file, or is larger
            than ``limit`` (``strerror`` says which and what to do).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_BINARY", 0)
    descriptor = os.open(Path(path), flags)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"it is {_kind(info.st_mode)}; name a regular file",
                          os.fspath(path))
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"it is {_size(info.st_size)}, more than the limit of "
                                       f"{_size(limit)}", os.fspath(path))
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(descriptor, min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise OSError(errno.EFBIG, f"it grew past the limit of {_size(limit)} while "
                                           f"being read", os.fspath(path))
        return b"".join(chunks)
    finally:
        os.close(descriptor)
