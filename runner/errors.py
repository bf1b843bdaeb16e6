"""The one exception tree of flashrunner, as the engine sees it.

The root (:class:`RunnerError`) and the errors raised on a link live in
:mod:`transports.errors`, below the engine, so that a transport never imports
:mod:`runner`; this module re-exports them and adds the errors only the engine
raises: the manifest, the firmware images, the per-unit data, an interrupted run.

Scenarios, as python-can documents its tree:

* :class:`ManifestError` — a typo'd key, a dangling reference, an image that
  does not fit the chip's flash.
* :class:`ImageError` — a firmware file that is unreadable, malformed or not the
  one pinned.
* :class:`UnitDataError` — a counter exhausted, no CSV row for a chip's UID.
* the rest: see :mod:`transports.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transports.errors import (
    BusFault,
    ChipMismatch,
    ConnectError,
    EnvironmentProblem,
    EraseError,
    FlashError,
    LinkLost,
    LinkTimeout,
    PlanError,
    ProtocolError,
    ReadProtected,
    Refused,
    ReplyError,
    RunnerError,
    TransportError,
    VerifyError,
    WriteError,
    error_categories,
    error_class_name,
)

__all__ = [
    "BusFault",
    "ChipMismatch",
    "ConnectError",
    "EnvironmentProblem",
    "EraseError",
    "FlashError",
    "ImageError",
    "Interrupted",
    "LinkLost",
    "LinkTimeout",
    "ManifestError",
    "ManifestIssue",
    "PlanError",
    "ProtocolError",
    "ReadProtected",
    "Refused",
    "ReplyError",
    "RunnerError",
    "StorageFailed",
    "TransportError",
    "UnitDataError",
    "VerifyError",
    "WriteError",
    "error_categories",
    "error_class_name",
]


# --------------------------------------------------------------------------- manifest


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestIssue:
    """One problem found in a manifest, located to file:line:column.

    ``where`` is the path inside the manifest in a human form
    (``devices.sensor-1.transport``); ``message`` says what is wrong and what to
    do about it.
    """

    file: str
    line: int
    column: int
    where: str
    message: str

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class ManifestError(RunnerError, ValueError):
    """The manifest is invalid; ``issues`` lists every problem found in one pass."""

    category = "manifest"

    def __init__(self, issues: Sequence[ManifestIssue]) -> None:
        self.issues = tuple(issues)
        count = len(self.issues)
        summary = "\n".join(str(issue) for issue in self.issues)
        found = "1 problem found; fix it" if count == 1 else f"{count} problems found; fix them"
        super().__init__(f"{summary}\n{found}")

    def __str__(self) -> str:
        return self.message

    @property
    def first(self) -> ManifestIssue:
        return self.issues[0]


class ImageError(RunnerError, ValueError):
    """A firmware image cannot be used: unreadable, malformed, or its pin differs.

    Attributes:
        path: the file at fault.
        offset: byte offset (or line number, for text formats) of the problem.
    """

    category = "image"

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None,
                 line: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.offset = offset
        self.line = line


class UnitDataError(RunnerError, ValueError):
    """A per-unit value cannot be produced: a counter exhausted or its state file
    damaged, no CSV row for a chip's UID, a value that does not fit its field.

    Attributes:
        source: the file the value comes from (state file or CSV), when there is one.
    """

    category = "unit-data"

    def __init__(self, message: str, *, source: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.source = source


class StorageFailed(EnvironmentProblem):
    """A file the run keeps could not be written: the audit log, a ``.kept`` backup,
    a counter's state (a full disk, an I/O error). It stops the whole run, like an
    interrupt, with exit code 3."""


class Interrupted(RunnerError, KeyboardInterrupt):
    """The run was interrupted by the operator (Ctrl-C / SIGTERM)."""

    category = "interrupted"
