"""``kind: sim`` — a link with no protocol at all, straight onto a :class:`SimChip`.

It exists for rehearsing a plan's shape (scheduling, recovery, logs) without
any protocol in the way, and for the executor's own tests. A real link kind
run with ``simulate: true`` goes through its real protocol driver instead.

Wire time is modelled by ``rate`` (bytes per second, default 100 kB/s); chip
time (erase, program) comes from the chip database through the SimChip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
from transports.checksums import stm32_crc32
from transports.chips import Chip, FlashBlock
from transports.errors import (
    ConnectError,
    EraseError,
    LinkLost,
    LinkTimeout,
    ProtocolError,
    ReadProtected,
    Refused,
    WriteError,
)
from transports.sim.chip import SimChip, SimFlashFault
from transports.sim.faults import InjectedFault

__all__ = ["MemoryTransport"]

T = TypeVar("T")

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

    def __init__(self, request: LinkRequest, sim: SimChip) -> None:
        self.request = request
        self.sim = sim
        self.rate = float(request.options.get("rate", 100_000))
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
        if request.simulation is None:
            raise ConnectError(f"link {request.link} is of kind sim, which only exists "
                               f"in simulation", hint="run with --simulate or set simulate: true",
                               transport=request.link, device=request.device)
        return cls(request, request.simulation.chip(request.device, request.chip))

    # ------------------------------------------------------------------ helpers

    def _guard(self, op: str, length: int, action: Callable[[], T],
               corrupted: Callable[[], T] | None = None) -> T:
        """Run ``action`` with fault injection and simulator errors mapped to ours.

        A ``corrupt`` fault runs ``corrupted`` instead (a silently wrong byte:
        only verification can catch it), or acts as a NACK where there is none.
        """
        link, device = self.request.link, self.request.device
        try:
            try:
                self.sim.faults.check(op, length)
            except InjectedFault as fault:
                if fault.kind == "corrupt" and corrupted is not None:
                    return corrupted()
                raise
            return action()
        except InjectedFault as fault:
            message = f"{fault} on {device}"
            if fault.kind == "timeout":
                raise LinkTimeout(message, transport=link, device=device) from fault
            if fault.kind == "nack":
                raise Refused(message, command=op, transport=link, device=device) from fault
            if fault.kind == "corrupt":
                raise ProtocolError(message, command=op, transport=link, device=device)\
                    from fault
            self._connected = False
            raise LinkLost(message, transport=link, device=device,
                           hint="check the cable and the target's power") from fault
        except SimFlashFault as fault:
            if fault.reason == "read-protected":
                raise ReadProtected(str(fault), transport=link, device=device,
                                    hint="remove readout protection (option-bytes: {rdp: 0}); "
                                         "this mass-erases the chip") from fault
            klass = EraseError if op == "erase" else WriteError
            raise klass(str(fault), address=fault.address, transport=link,
                        device=device) from fault

    def _require(self) -> None:
        if not self._connected:
            raise LinkLost(f"session with {self.request.device} is not connected",
                           transport=self.request.link, device=self.request.device)

    def _wire(self, nbytes: int) -> None:
        self.sim.clock.advance(nbytes / self.rate)

    # ------------------------------------------------------------------ contract

    def connect(self) -> None:
        def action() -> None:
            self.sim.clock.advance(0.05)
            self._connected = True
        self.sim.faults.reset_counters()
        self._guard("connect", 0, action)

    def identify(self) -> ChipIdentity:
        self._require()
        return ChipIdentity(dev_id=self.sim.dev_id, uid=self.sim.uid_hex,
                            flash_size=self.sim.flash_size_register * 1024,
                            rdp_level=self.sim.rdp_level, probe="simulated memory link")

    def erase(self, blocks: Sequence[FlashBlock], progress: Progress = no_progress) -> None:
        self._require()
        if not blocks:
            self._guard("erase", 0, self.sim.mass_erase)
            progress(1, 1)
            return
        for done, block in enumerate(blocks, 1):
            def action(unit: FlashBlock = block) -> None:
                self.sim.erase_block(unit)
            self._guard("erase", block.size, action)
            progress(done, len(blocks))

    def write(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        self._require()
        for offset in range(0, len(data), _CHUNK):
            chunk = data[offset:offset + _CHUNK]

            def action(at: int = address + offset, payload: bytes = chunk) -> None:
                self._wire(len(payload))
                self.sim.program(at, payload, require_erased=True)

            def corrupted(at: int = address + offset, payload: bytes = chunk) -> None:
                self._wire(len(payload))
                self.sim.program(at, bytes([payload[0] ^ 0x01]) + payload[1:],
                                 require_erased=True)

            self._guard("write", len(chunk), action, corrupted)
            progress(offset + len(chunk), len(data))

    def read(self, address: int, length: int, progress: Progress = no_progress) -> bytes:
        self._require()
        out = bytearray()
        for offset in range(0, length, _CHUNK):
            size = min(_CHUNK, length - offset)

            def action(at: int = address + offset, n: int = size) -> bytes:
                self._wire(n)
                return self.sim.read_flash(at, n)

            out += self._guard("read", size, action)
            progress(len(out), length)
        return bytes(out)

    def checksum(self, address: int, length: int) -> Checksum:
        self._require()
        data = self._guard("read", 0, lambda: self.sim.read_flash(address, length))
        self.sim.clock.advance(length / (self.rate * 20))
        # The CRC unit takes whole words: the tail is padded with erased bytes.
        padded = data + bytes([self.sim.geometry.erased]) * (-len(data) % 4)
        return Checksum(algorithm="stm32-crc32", value=stm32_crc32(padded))

    def reset(self, mode: ResetMode) -> None:
        self._require()
        self.sim.reset()

    def read_option_bytes(self) -> OptionBytes:
        self._require()
        return OptionBytes(raw=self.sim.option_bytes, rdp_level=self.sim.rdp_level)

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        self._require()
        if change.rdp_level is not None:
            if change.rdp_level == 2 and not change.confirmed_irreversible:
                raise Refused("RDP level 2 is irreversible and was not confirmed",
                              command="option-bytes", hint="add confirm: irreversible")
            level = change.rdp_level
            self._guard("write", 0, lambda: self.sim.set_rdp_level(level))

    def close(self) -> None:
        self._connected = False
