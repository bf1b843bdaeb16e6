"""One run at a time on a link: an OS lock per link, held while a device uses it.

Two runs on one station (two hosts, or a farm run and a person at the bench)
must never drive the same probe, port or bus at once. Each device takes an
exclusive ``fcntl.flock`` on ``<lock dir>/<resource>.lock`` (the resource is
the plan's exclusive key: a probe's serial or port path, a serial device) for
as long as it runs. The holder writes who it is into the file, so a run that
has to wait, or gives up (``wait=False``), says who held the link.

The kernel drops the lock when the holder dies, however it dies: a stale lock
file is harmless. Simulated links lock under ``sim-`` names, so a rehearsal
never blocks real hardware on the same port path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import EnvironmentProblem, RunnerError

__all__ = ["LOCK_DIR_ENV", "LinkBusy", "LinkLocks", "default_lock_dir"]

#: Overrides where lock files live (every run on a machine must agree on it).
LOCK_DIR_ENV = "FLASHRUNNER_LOCK_DIR"

_POLL_S = 0.05


class LinkBusy(RunnerError, BlockingIOError):
    """Another run holds the link, and this run was told not to wait (``link-lock: fail``)."""

    category = "link-busy"


def default_lock_dir() -> Path:
    """``$FLASHRUNNER_LOCK_DIR``, else ``/run/lock/flashrunner`` if usable, else a user folder."""
    override = os.environ.get(LOCK_DIR_ENV)
    if override:
        return Path(override).expanduser()
    system = Path("/run/lock")
    if system.is_dir() and os.access(system, os.W_OK):
        return system / "flashrunner"
    return Path.home() / ".cache" / "flashrunner" / "locks"


def _file_name(resource: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", resource).strip("_")[:80]
    digest = hashlib.sha256(resource.encode()).hexdigest()[:10]
    return f"{readable}-{digest}.lock"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkLocks:
    """Where the locks are, whether to wait for one, and who we are (written into it)."""

    folder: Path
    wait: bool = True
    simulated: bool = False
    holder: dict[str, Any] | None = None

    def path(self, resource: str) -> Path:
        return self.folder / _file_name(("sim-" if self.simulated else "") + resource)

    @contextlib.contextmanager
    def hold(self, resource: str, *, device: str,
             waiting: Callable[[dict[str, Any]], None] | None = None) -> Iterator[Path]:
        """Hold ``resource`` for ``device``; call ``waiting(holder)`` once if it is taken.

        Raises:
            LinkBusy: it is taken and ``wait`` is false.
            EnvironmentProblem: the lock file cannot be created.
        """
        path = self.path(resource)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise EnvironmentProblem(f"cannot create the link lock {path}: {error.strerror}",
                                     hint=f"make the folder writable or set {LOCK_DIR_ENV}"
                                     ) from error
        try:
            told = False
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = _read_holder(handle)
                    if not self.wait:
                        raise LinkBusy(f"link {resource} is in use by {_describe(holder)}",
                                       hint="wait for that run to end, or set "
                                            "`link-lock: wait`") from None
                    if not told and waiting is not None:
                        waiting(holder)
                        told = True
                    time.sleep(_POLL_S)
            record = {**(self.holder or {}), "device": device, "resource": resource,
                      "pid": os.getpid(), "host": socket.gethostname(),
                      "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            os.ftruncate(handle, 0)
            os.pwrite(handle, (json.dumps(record) + "\n").encode(), 0)
            try:
                yield path
            finally:
                os.ftruncate(handle, 0)
        finally:
            os.close(handle)  # closing drops the flock


def _read_holder(handle: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(handle, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another run"
    parts = [f"run {holder['run_id']}" if holder.get("run_id") else "a run"]
    if holder.get("device"):
        parts.append(f"device {holder['device']}")
    if holder.get("operator"):
        parts.append(f"operator {holder['operator']}")
    if holder.get("host"):
        parts.append(f"on {holder['host']} (pid {holder.get('pid')})")
    return ", ".join(parts)
