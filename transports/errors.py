"""The root of flashrunner's exception tree and the errors raised on a link.

Every error the tool raises derives from :class:`RunnerError`. Subclasses mix in
the matching builtin (``ValueError``, ``TimeoutError``, …) so that generic
callers can still catch what they expect, and carry structured fields so the
audit log and the recovery policies never have to parse messages.

This module sits below the engine: the transports (built-in or third-party)
raise these classes without importing :mod:`runner`. :mod:`runner.errors` adds
the manifest, image and unit-data errors and re-exports everything here, so
there is one tree and ``except RunnerError`` catches all of it.

Each message says what happened *and* what the user should do next.

Scenarios, as python-can documents its tree:

* :class:`PlanError` — the configuration is valid but cannot be used: a chip
  unknown to the database, a transport kind that is not installed, a step the
  link cannot perform.
* :class:`EnvironmentProblem` — libusb missing, no permission on a port, an
  optional package not installed.
* :class:`TransportError` and below — anything that went wrong on a link while
  talking to a chip.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BusFault",
    "ChipMismatch",
    "ConnectError",
    "EnvironmentProblem",
    "EraseError",
    "FlashError",
    "HardwareControlError",
    "LinkLost",
    "LinkTimeout",
    "PlanError",
    "ProtocolError",
    "ReadProtected",
    "Refused",
    "ReplyError",
    "RunnerError",
    "TransportError",
    "VerifyError",
    "WriteError",
    "error_categories",
    "error_class_name",
]


class RunnerError(Exception):
    """Root of every error raised by flashrunner.

    Attributes:
        hint: What the user should do about it; appended to ``str(error)``.
    """

    #: Short, stable classification used by recovery policies and the log
    #: (``timeout``, ``nack``, ``link-lost``, ``verify``, ``protected``, …).
    category: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message

    def fields(self) -> dict[str, object]:
        """Structured fields for the audit log (never the traceback)."""
        return {"error_type": type(self).__name__, "error_category": self.category,
                "error": str(self)}


# --------------------------------------------------------------------------- configuration


class PlanError(RunnerError, ValueError):
    """A valid manifest that cannot be compiled into a plan."""

    category = "plan"


class EnvironmentProblem(RunnerError, OSError):
    """The machine lacks something: a library, a permission, an optional package."""

    category = "environment"


# --------------------------------------------------------------------------- transports


class TransportError(RunnerError):
    """Something went wrong while talking to a chip over a link.

    Attributes:
        transport: the manifest name of the link, when known.
        device: the manifest name of the device, when known.
    """

    category = "transport"

    def __init__(self, message: str, *, hint: str | None = None,
                 transport: str | None = None, device: str | None = None,
                 also: Iterable[str] = ()) -> None:
        super().__init__(message, hint=hint)
        self.transport = transport
        self.device = device
        #: Further categories this instance belongs to, beyond its class's: a
        #: write the bootloader refused with a NACK is a ``write`` error *and* a ``nack``.
        self.also = frozenset(also)

    def fields(self) -> dict[str, object]:
        data = super().fields()
        if self.transport:
            data["transport"] = self.transport
        return data


class ConnectError(TransportError, ConnectionError):
    """The link or the chip could not be reached (no probe, no sync, no power)."""

    category = "connect"


class ChipMismatch(ConnectError):
    """The chip found is not the chip the manifest names; nothing was written."""

    category = "chip-mismatch"


class ReplyError(TransportError):
    """The chip (or the probe in front of it) answered, and the request did not succeed.

    Never raised itself: one of its three subclasses says why, and recovery
    policies choose between them: :class:`Refused` (``nack``), :class:`ProtocolError`
    (``protocol``) and :class:`BusFault` (``fault``). Catch this class to handle all three.

    Attributes:
        command: name or code of the command that failed.
        reply: the raw reply bytes, when there were any.
    """

    def __init__(self, message: str, *, command: str | None = None,
                 reply: bytes | None = None, hint: str | None = None,
                 transport: str | None = None, device: str | None = None,
                 also: Iterable[str] = ()) -> None:
        super().__init__(message, hint=hint, transport=transport, device=device, also=also)
        self.command = command
        self.reply = reply

    def fields(self) -> dict[str, object]:
        data = super().fields()
        if self.command is not None:
            data["command"] = self.command
        if self.reply is not None:
            data["reply"] = self.reply.hex()
        return data


class Refused(ReplyError):
    """The device understood the request and refused it: a bootloader NACK, a DFU error
    status, an ST-Link status error, an operation this link does not offer.

    Retrying helps when the refusal came from a transient state (a ROM still busy);
    a request the device can never accept fails the same way again.
    """

    category = "nack"


class ProtocolError(ReplyError):
    """A reply that makes no sense for the request: an unexpected byte, a short or
    malformed answer, a descriptor the protocol says must be there and is not.

    Usually a baud-rate mismatch, line noise, or a device that is not what the link
    expects.
    """

    category = "protocol"


class BusFault(ReplyError):
    """The request faulted below the protocol: an AP/DP fault or parity error on the
    target's debug bus, a memory access that faulted, a USB error with no better name.

    Not something a NACK-retrying policy should repeat: list ``fault`` to retry it.
    """

    category = "fault"


class LinkTimeout(TransportError, TimeoutError):
    """The chip did not answer in time."""

    category = "timeout"


class LinkLost(TransportError, ConnectionError):
    """The link went away mid-session (cable pulled, probe reset, brown-out)."""

    category = "link-lost"


class ReadProtected(TransportError, PermissionError):
    """The chip refuses the operation because readout protection is active."""

    category = "protected"


class HardwareControlError(TransportError):
    """A hub port, GPIO line or power adapter could not be switched as asked.

    Raised by the recovery actions that cut power or drive BOOT0/NRST: a ganged
    hub (switching one port would cut every board on it), a ``disable`` file the
    user may not write, a hub that re-powers a port by itself, a GPIO line that
    is not there, a power command that failed.
    """

    category = "hardware-control"


class FlashError(TransportError):
    """A flash operation failed at a known address.

    Attributes:
        address: the first address concerned.
    """

    category = "flash"

    def __init__(self, message: str, *, address: int | None = None, hint: str | None = None,
                 transport: str | None = None, device: str | None = None,
                 also: Iterable[str] = ()) -> None:
        super().__init__(message, hint=hint, transport=transport, device=device, also=also)
        self.address = address

    def fields(self) -> dict[str, object]:
        data = super().fields()
        if self.address is not None:
            data["address"] = f"0x{self.address:08X}"
        return data


class EraseError(FlashError):
    """Erasing a page, sector or the whole flash failed."""

    category = "erase"


class WriteError(FlashError):
    """Programming failed (write-protected, not erased, alignment)."""

    category = "write"


class VerifyError(FlashError):
    """The flash content differs from the image.

    Attributes:
        expected: expected byte(s) at ``address`` (the first mismatch).
        actual: the byte(s) read back there.
    """

    category = "verify"

    def __init__(self, message: str, *, address: int | None = None,
                 expected: bytes | None = None, actual: bytes | None = None,
                 hint: str | None = None, transport: str | None = None,
                 device: str | None = None) -> None:
        super().__init__(message, address=address, hint=hint, transport=transport,
                         device=device)
        self.expected = expected
        self.actual = actual

    def fields(self) -> dict[str, object]:
        data = super().fields()
        if self.expected is not None:
            data["expected"] = self.expected.hex()
        if self.actual is not None:
            data["actual"] = self.actual.hex()
        return data


def error_class_name(error: BaseException) -> str:
    """The recovery category of any exception (``"internal"`` for non-runner ones)."""
    if isinstance(error, RunnerError):
        return error.category
    if isinstance(error, TimeoutError):
        return "timeout"
    return "internal"


def error_categories(error: BaseException) -> frozenset[str]:
    """Every category an error belongs to, its own and its ancestors'.

    A recovery policy listing ``connect`` therefore also matches a
    :class:`ChipMismatch`, and one listing ``flash`` matches a :class:`VerifyError`.
    """
    if not isinstance(error, RunnerError):
        return frozenset({error_class_name(error)})
    categories = frozenset(
        klass.__dict__["category"]
        for klass in type(error).__mro__
        if isinstance(klass.__dict__.get("category"), str)
    )
    return categories | getattr(error, "also", frozenset())
