"""A base class for a transport, with defaults for the optional parts of the contract.

A third-party link kind (registered under the entry-point group
``flashrunner.transports``, see :mod:`transports.registry`) can implement the
:class:`~transports.base.TransportClass` and :class:`~transports.base.Transport`
protocols from scratch; deriving from :class:`TransportBase` leaves it six
primitives to write (:meth:`~TransportBase.attach`, :meth:`~TransportBase.detach`,
:meth:`~TransportBase.read_identity`, :meth:`~TransportBase.erase_blocks`,
:meth:`~TransportBase.program`, :meth:`~TransportBase.read_memory`) and gives it:

* ``open``, a conservative ``speed_model``, ``resource_key`` (one session per link
  at a time) and ``planned_capabilities`` (the static set);
* a guard on every operation: calling one before :meth:`~TransportBase.connect`
  is a :class:`~transports.errors.ConnectError` that says so, not an
  ``AttributeError`` deep in the plugin; :meth:`~TransportBase.close` is safe to
  call twice and after errors;
* a clear :class:`~transports.errors.Refused` for what the link does not offer
  (on-target checksum, reset modes, option bytes), naming the link and device;
* :meth:`~TransportBase.error`, which fills in the link and device of any error
  from :mod:`transports.errors`.

A class declares in :attr:`~TransportBase.simulation` the endpoints it reaches
through the endpoint seam (docs/architecture.md) when the run is a rehearsal;
empty (the default) means the kind cannot be simulated, and the runner refuses a
simulated run that uses it instead of letting it touch hardware.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from transports.base import (
    Capability,
    Checksum,
    ChipIdentity,
    LinkRequest,
    OptionBytes,
    OptionBytesChange,
    Progress,
    ResetMode,
    SpeedModel,
    StaticCapabilities,
    no_progress,
)
from transports.chips import Chip, FlashBlock
from transports.errors import ConnectError, Refused, TransportError

__all__ = ["TransportBase"]

_Error = TypeVar("_Error", bound=TransportError)
_Self = TypeVar("_Self", bound="TransportBase")


class TransportBase(StaticCapabilities, ABC):
    """One session with one chip; subclass it and write the six primitives.

    Class attributes a subclass sets: :attr:`kind` (the manifest's ``kind:``, the
    entry point's name), :attr:`capabilities`, :attr:`options_schema` and, when it
    can be rehearsed, :attr:`simulation`.
    """

    kind: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.ERASE_PAGES, Capability.WRITE, Capability.READ})
    #: JSON Schema (draft 2020-12) of the link's and a device's options; closed, so
    #: a typo'd option is a located error at validate time.
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object", "additionalProperties": False, "properties": {}}
    #: Endpoints (method names of the endpoint provider) a rehearsal of this kind
    #: uses; empty: this kind cannot be simulated.
    simulation: ClassVar[frozenset[str]] = frozenset()
    #: Estimates used by :meth:`speed_model` unless a subclass knows better.
    default_speed: ClassVar[SpeedModel] = SpeedModel(
        connect_s=1.0, write_bytes_per_s=10_000.0, read_bytes_per_s=10_000.0)

    def __init__(self, request: LinkRequest) -> None:
        self.request = request
        self._connected = False

    # ------------------------------------------------------------------ class side

    @classmethod
    def open(cls: type[_Self], request: LinkRequest) -> _Self:
        """Create (not yet connect) a session for ``request``."""
        return cls(request)

    @classmethod
    def speed_model(cls, options: Mapping[str, Any], chip: Chip) -> SpeedModel:
        return cls.default_speed

    @classmethod
    def resource_key(cls, link: str, options: Mapping[str, Any]) -> str:
        return f"{cls.kind}:{link}"

    # ------------------------------------------------------------------ primitives

    @abstractmethod
    def attach(self) -> None:
        """Open the link and bring the chip to where it takes commands."""

    @abstractmethod
    def detach(self) -> None:
        """Release the link (called once per successful :meth:`attach`)."""

    @abstractmethod
    def read_identity(self) -> ChipIdentity:
        """Read who the chip is (DEV_ID at least)."""

    @abstractmethod
    def erase_blocks(self, blocks: Sequence[FlashBlock], progress: Progress) -> None:
        """Erase these units (``()``: the whole flash)."""

    @abstractmethod
    def program(self, address: int, data: bytes, progress: Progress) -> None:
        """Program erased, aligned flash."""

    @abstractmethod
    def read_memory(self, address: int, length: int, progress: Progress) -> bytes:
        """Read ``length`` bytes."""

    # ------------------------------------------------------------------ optional parts

    def target_checksum(self, address: int, length: int) -> Checksum:
        """On-target checksum; offer :attr:`Capability.CHECKSUM` when overriding this."""
        raise self.unsupported("an on-target checksum", "verify by read-back (the default)")

    def reset_chip(self, mode: ResetMode) -> None:
        """Leave the chip running; override for the modes the link can do."""
        raise self.unsupported(f"reset {mode.value}", "choose a reset mode this link offers")

    def read_options(self) -> OptionBytes:
        raise self.unsupported("reading option bytes", "use a link that offers option-bytes")

    def write_options(self, change: OptionBytesChange) -> None:
        raise self.unsupported("changing option bytes", "use a link that offers option-bytes")

    # ------------------------------------------------------------------ helpers

    def error(self, error_class: type[_Error], message: str, **fields: Any) -> _Error:
        """``error_class`` for this session: its message names the device, and its
        ``transport``/``device`` fields are set for the audit log."""
        return error_class(f"{message} on {self.request.device}", transport=self.request.link,
                           device=self.request.device, **fields)

    def unsupported(self, what: str, hint: str) -> Refused:
        """The error for an operation this kind of link does not offer."""
        return self.error(Refused, f"link {self.request.link} (kind {self.kind}) does not "
                                   f"offer {what}", hint=hint)

    def require_connected(self, operation: str) -> None:
        if not self._connected:
            raise self.error(ConnectError, f"{operation} on link {self.request.link} before "
                                           f"it was connected",
                             hint="call connect() first; a session is unusable after close()")

    # ------------------------------------------------------------------ the Transport protocol

    def connect(self) -> None:
        if not self._connected:
            self.attach()
            self._connected = True

    def identify(self) -> ChipIdentity:
        self.require_connected("identify")
        return self.read_identity()

    def erase(self, blocks: Sequence[FlashBlock], progress: Progress = no_progress) -> None:
        self.require_connected("erase")
        self.erase_blocks(blocks, progress)

    def write(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        self.require_connected("write")
        self.program(address, data, progress)

    def read(self, address: int, length: int, progress: Progress = no_progress) -> bytes:
        self.require_connected("read")
        return self.read_memory(address, length, progress)

    def checksum(self, address: int, length: int) -> Checksum:
        self.require_connected("checksum")
        return self.target_checksum(address, length)

    def reset(self, mode: ResetMode) -> None:
        self.require_connected("reset")
        self.reset_chip(mode)

    def read_option_bytes(self) -> OptionBytes:
        self.require_connected("read option bytes")
        return self.read_options()

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        self.require_connected("write option bytes")
        self.write_options(change)

    def close(self) -> None:
        if self._connected:
            self._connected = False
            self.detach()
