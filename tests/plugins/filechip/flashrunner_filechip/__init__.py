"""Two link kinds written against flashrunner's plugin contract.

``filechip``: the far end is a file standing in for the chip's flash (a bench
fixture's dump, say). It reaches no endpoint flashrunner could simulate, so it
declares ``simulation = frozenset()`` and a rehearsal using it is refused.

``memchip``: a chip's memory reached through the endpoint provider's
``memory_port``; only a simulation provides one, so it runs in rehearsals only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from transports.base import (
    Capability,
    ChipIdentity,
    LinkRequest,
    Progress,
    ResetMode,
    SpeedModel,
    TransportClass,
)
from transports.chips import FlashBlock
from transports.endpoints import MemoryPort
from transports.errors import ConnectError, WriteError
from transports.plugin import TransportBase

__all__ = ["FileChipTransport", "MemoryPortTransport"]


class FileChipTransport(TransportBase):
    """A session with a file that holds the chip's flash, byte for byte."""

    kind: ClassVar[str] = "filechip"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.ERASE_PAGES, Capability.ERASE_MASS, Capability.WRITE, Capability.READ,
        Capability.RESET_HARDWARE, Capability.UID})
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": {"type": "string", "description": "The file standing for the flash."},
        },
    }
    default_speed: ClassVar[SpeedModel] = SpeedModel(
        connect_s=0.01, write_bytes_per_s=1e7, read_bytes_per_s=1e7)

    def __init__(self, request: LinkRequest) -> None:
        super().__init__(request)
        self.path = Path(str(request.options["path"]))
        self.flash = request.chip.flash

    def attach(self) -> None:
        try:
            if not self.path.exists():
                self.path.write_bytes(bytes([self.flash.erased]) * self.flash.size)
        except OSError as error:
            raise self.error(ConnectError, f"cannot open {self.path}: {error.strerror}") \
                from error

    def detach(self) -> None:
        pass

    def read_identity(self) -> ChipIdentity:
        uid = hashlib.sha256(str(self.path).encode()).hexdigest()[:24]
        return ChipIdentity(dev_id=self.request.chip.dev_id, uid=uid,
                            flash_size=self.flash.size, rdp_level=0)

    def _patch(self, address: int, data: bytes) -> None:
        image = bytearray(self.path.read_bytes())
        offset = address - self.flash.base
        image[offset:offset + len(data)] = data
        self.path.write_bytes(bytes(image))

    def erase_blocks(self, blocks: Sequence[FlashBlock], progress: Progress) -> None:
        for block in blocks or self.flash.blocks:
            self._patch(block.address, bytes([self.flash.erased]) * block.size)

    def program(self, address: int, data: bytes, progress: Progress) -> None:
        if not self.flash.contains(address, len(data)):
            raise self.error(WriteError, f"0x{address:08X}+{len(data)} is outside flash",
                             address=address)
        self._patch(address, data)
        progress(len(data), len(data))

    def read_memory(self, address: int, length: int, progress: Progress) -> bytes:
        offset = address - self.flash.base
        return self.path.read_bytes()[offset:offset + length]

    def reset_chip(self, mode: ResetMode) -> None:
        if mode is not ResetMode.HARDWARE:
            super().reset_chip(mode)


class MemoryPortTransport(TransportBase):
    """A session with a simulated chip's memory, through the provider's memory port."""

    kind: ClassVar[str] = "memchip"
    simulation: ClassVar[frozenset[str]] = frozenset({"memory_port"})

    def attach(self) -> None:
        self.port: MemoryPort = self.request.endpoints.memory_port(self.request)
        self.port.connect()

    def detach(self) -> None:
        pass

    def read_identity(self) -> ChipIdentity:
        dev_id, uid, flash_size, rdp = self.port.identity()
        return ChipIdentity(dev_id=dev_id, uid=uid, flash_size=flash_size, rdp_level=rdp)

    def erase_blocks(self, blocks: Sequence[FlashBlock], progress: Progress) -> None:
        if not blocks:
            self.port.mass_erase()
        for block in blocks:
            self.port.erase(block)

    def program(self, address: int, data: bytes, progress: Progress) -> None:
        self.port.program(address, data)

    def read_memory(self, address: int, length: int, progress: Progress) -> bytes:
        return self.port.read(address, length)


# mypy checks both classes against the contract (flashrunner ships py.typed).
_CHECKED: tuple[TransportClass, ...] = (FileChipTransport, MemoryPortTransport)
