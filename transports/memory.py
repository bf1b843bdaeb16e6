"""``kind: sim`` — a link with no protocol at all, straight onto a simulated chip.

It exists for rehearsing a plan's shape (scheduling, recovery, logs) without
any protocol in the way, and for the executor's own tests. A real link kind
run with ``simulate: true`` goes through its real protocol driver instead.

This is the near end: it chunks, reports progress and keeps the contract.
The far end, a :class:`~transports.endpoints.MemoryPort`, comes from the
run's endpoint provider, and only a rehearsal's provider has one. Wire time
is modelled by ``rate`` (bytes per second, default 100 kB/s); chip time
(erase, program) comes from the chip database.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

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
from transports.endpoints import MemoryPort
from transports.errors import LinkLost, Refused

__all__ = ["MemoryTransport"]

_CHUNK = 1024


class MemoryTransport(StaticCapabilities):
    """A session with a simulated chip through no protocol (``kind: sim``)."""

    kind: ClassVar[str] = "sim"
    #: Endpoints a rehearsal reaches through the endpoint seam (docs/architecture.md).
    simulation: ClassVar[frozenset[str]] = frozenset({"memory_port"})
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rate": {"type": "number", "exclusiveMinimum": 0,
                     "description": "Simulated wire speed in bytes per second."},
            "bus": {"type": "string",
                    "description": "Devices naming the same bus share it, one at a time."},
        },
    }

    def __init__(self, request: LinkRequest, port: MemoryPort) -> None:
        self.request = request
        self.port = port
        self._connected = False

    # ------------------------------------------------------------------ class side

    @classmethod
    def speed_model(cls, options: Mapping[str, Any], chip: Chip) -> SpeedModel:
        rate = float(options.get("rate", 100_000))
        return SpeedModel(connect_s=0.05, write_bytes_per_s=rate, read_bytes_per_s=rate,
                          checksum_bytes_per_s=rate * 20)

    @classmethod
    def resource_key(cls, link: str, options: Mapping[str, Any]) -> str:
        return f"sim:{options.get('bus', link)}"

    @classmethod
    def open(cls, request: LinkRequest) -> MemoryTransport:
        return cls(request, request.endpoints.memory_port(request))

    # ------------------------------------------------------------------ helpers

    @contextmanager
    def _session(self) -> Iterator[None]:
        """Require a connected session; a lost link ends it."""
        if not self._connected:
            raise LinkLost(f"session with {self.request.device} is not connected",
                           transport=self.request.link, device=self.request.device)
        try:
            yield
        except LinkLost:
            self._connected = False
            raise

    # ------------------------------------------------------------------ contract

    def connect(self) -> None:
        self.port.connect()
        self._connected = True

    def identify(self) -> ChipIdentity:
        with self._session():
            dev_id, uid, flash_size, rdp = self.port.identity()
            return ChipIdentity(dev_id=dev_id, uid=uid, flash_size=flash_size, rdp_level=rdp,
                                probe="simulated memory link")

    def erase(self, blocks: Sequence[FlashBlock], progress: Progress = no_progress) -> None:
        with self._session():
            if not blocks:
                self.port.mass_erase()
                progress(1, 1)
                return
            for done, block in enumerate(blocks, 1):
                self.port.erase(block)
                progress(done, len(blocks))

    def write(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        with self._session():
            for offset in range(0, len(data), _CHUNK):
                chunk = data[offset:offset + _CHUNK]
                self.port.program(address + offset, chunk)
                progress(offset + len(chunk), len(data))

    def read(self, address: int, length: int, progress: Progress = no_progress) -> bytes:
        with self._session():
            out = bytearray()
            for offset in range(0, length, _CHUNK):
                out += self.port.read(address + offset, min(_CHUNK, length - offset))
                progress(len(out), length)
            return bytes(out)

    def checksum(self, address: int, length: int) -> Checksum:
        with self._session():
            return Checksum(algorithm="stm32-crc32", value=self.port.crc(address, length))

    def reset(self, mode: ResetMode) -> None:
        with self._session():
            self.port.reset()

    def read_option_bytes(self) -> OptionBytes:
        with self._session():
            raw, rdp = self.port.option_bytes()
            return OptionBytes(raw=raw, rdp_level=rdp)

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        with self._session():
            if change.rdp_level is not None:
                if change.rdp_level == 2 and not change.confirmed_irreversible:
                    raise Refused("RDP level 2 is irreversible and was not confirmed",
                                  command="option-bytes", hint="add confirm: irreversible")
                self.port.set_rdp_level(change.rdp_level)

    def close(self) -> None:
        self._connected = False
