"""The far end of ``kind: sim``: a simulated chip's memory with no protocol in the way.

The near end (:mod:`transports.memory`) only chunks, reports progress and
guards the contract; this port does what the chip does — erase, program,
read, CRC, reset, RDP — with the chip database's timing, the wire time of
the link's ``rate``, and the device's injected faults turned into the errors
a real link would raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from transports.checksums import stm32_crc32
from transports.chips import FlashBlock
from transports.errors import (
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

__all__ = ["SimMemoryPort"]

T = TypeVar("T")


class SimMemoryPort:
    """One device's simulated chip, reached at ``rate`` bytes per second."""

    def __init__(self, sim: SimChip, *, link: str, device: str, rate: float) -> None:
        self.sim = sim
        self.link = link
        self.device = device
        self.rate = rate

    def _guard(self, op: str, length: int, action: Callable[[], T],
               corrupted: Callable[[], T] | None = None) -> T:
        """Run ``action`` with fault injection and simulator errors mapped to ours.

        A ``corrupt`` fault runs ``corrupted`` instead (a silently wrong byte:
        only verification can catch it), or acts as a NACK where there is none.
        """
        link, device = self.link, self.device
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

    def _wire(self, nbytes: int) -> None:
        self.sim.clock.advance(nbytes / self.rate)

    def connect(self) -> None:
        self.sim.faults.reset_counters()
        self._guard("connect", 0, lambda: self.sim.clock.advance(0.05))

    def identity(self) -> tuple[int, str, int, int]:
        return (self.sim.dev_id, self.sim.uid_hex, self.sim.flash_size_register * 1024,
                self.sim.rdp_level)

    def mass_erase(self) -> None:
        self._guard("erase", 0, self.sim.mass_erase)

    def erase(self, block: FlashBlock) -> None:
        self._guard("erase", block.size, lambda: self.sim.erase_block(block))

    def program(self, address: int, data: bytes) -> None:
        self._guard("write", len(data), lambda: self._program(address, data),
                    lambda: self._program(address, bytes([data[0] ^ 0x01]) + data[1:]))

    def _program(self, address: int, data: bytes) -> None:
        """The chunk crosses the wire, then the chip programs it: one clock step for both.

        A refused chunk has still crossed the wire; a programmed one also
        took the chip's program time. (One step instead of two halves the
        sleeps a paced rehearsal makes; the simulated time is the same.)
        """
        wire = len(data) / self.rate
        try:
            self.sim.program(address, data, require_erased=True, timed=False)
        except SimFlashFault:
            self.sim.clock.advance(wire)
            raise
        self.sim.clock.advance(wire + self.sim.chip.timing.program_seconds(
            len(data), self.sim.geometry.write_unit))

    def read(self, address: int, length: int) -> bytes:
        def action() -> bytes:
            self._wire(length)
            return self.sim.read_flash(address, length)

        return self._guard("read", length, action)

    def crc(self, address: int, length: int) -> int:
        data = self._guard("read", 0, lambda: self.sim.read_flash(address, length))
        self.sim.clock.advance(length / (self.rate * 20))
        # The CRC unit takes whole words: the tail is padded with erased bytes.
        padded = data + bytes([self.sim.geometry.erased]) * (-len(data) % 4)
        return stm32_crc32(padded)

    def reset(self) -> None:
        self.sim.reset()

    def option_bytes(self) -> tuple[bytes, int]:
        return self.sim.option_bytes, self.sim.rdp_level

    def set_rdp_level(self, level: int) -> None:
        self._guard("write", 0, lambda: self.sim.set_rdp_level(level))
