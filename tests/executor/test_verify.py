"""Verification: checksum when the link has one, read-back otherwise, first mismatch named."""

from __future__ import annotations

import pytest

from runner.errors import PlanError, VerifyError
from runner.memmap import MemoryMap, Segment
from runner.model import VerifyMethod
from runner.plan import VerifyAction
from runner.verify import READ_BLOCK, _groups, verify_memory
from transports.base import Capability, Checksum
from transports.chips import ChipDatabase
from transports.memory import MemoryTransport
from transports.sim import SimulationWorld
from transports.sim.endpoints import simulated_request

FLASH = 0x08000000


class _NoChecksum(MemoryTransport):
    capabilities = frozenset(Capability) - {Capability.CHECKSUM}


def _session(world: SimulationWorld, chips: ChipDatabase,
             klass: type[MemoryTransport] = MemoryTransport) -> MemoryTransport:
    chip = chips.part("stm32g071rb")
    request = simulated_request(world, device="a", link="bench", kind="sim", options={}, chip=chip)
    transport = klass.open(request)
    transport.connect()
    return transport


def _verify(transport: MemoryTransport, memory: MemoryMap, method: VerifyMethod) -> str:
    return verify_memory(transport, VerifyAction(method=method, memory=memory), erased=0xFF,
                         link="bench", device="a", advance=lambda done: None)


def test_auto_uses_read_back_on_a_link_without_checksum(world: SimulationWorld,
                                                         chips: ChipDatabase) -> None:
    transport = _session(world, chips, _NoChecksum)
    transport.write(FLASH, b"\x12\x34\x56\x78" * 4)
    memory = MemoryMap((Segment(FLASH, b"\x12\x34\x56\x78" * 4),))
    assert _verify(transport, memory, VerifyMethod.AUTO) == "readback"


def test_checksum_method_on_a_link_without_checksum_is_an_error(
        world: SimulationWorld, chips: ChipDatabase) -> None:
    transport = _session(world, chips, _NoChecksum)
    with pytest.raises(PlanError, match="cannot compute checksums"):
        _verify(transport, MemoryMap((Segment(FLASH, b"\xff" * 8),)), VerifyMethod.CHECKSUM)


def test_checksum_mismatch_is_read_back_to_the_first_differing_address(
        world: SimulationWorld, chips: ChipDatabase) -> None:
    transport = _session(world, chips)
    transport.write(FLASH, bytes(range(64)))
    expected = bytearray(range(64))
    expected[37] ^= 0x80
    with pytest.raises(VerifyError) as info:
        _verify(transport, MemoryMap((Segment(FLASH, bytes(expected)),)), VerifyMethod.AUTO)
    assert info.value.address == FLASH + 37
    assert info.value.expected is not None and info.value.expected[0] == 37 ^ 0x80
    assert info.value.actual is not None and info.value.actual[0] == 37


def test_odd_length_segments_checksum_with_erased_padding(world: SimulationWorld,
                                                          chips: ChipDatabase) -> None:
    transport = _session(world, chips)
    transport.write(FLASH, b"\xa5" * 8)
    assert _verify(transport, MemoryMap((Segment(FLASH, b"\xa5" * 6),)),
                   VerifyMethod.CHECKSUM) == "checksum"


class _CountingChecksums(MemoryTransport):
    ranges: list[tuple[int, int]]

    def checksum(self, address: int, length: int) -> Checksum:
        self.ranges.append((address, length))
        return super().checksum(address, length)


def _verify_by_units(transport: MemoryTransport, memory: MemoryMap,
                     chips: ChipDatabase) -> str:
    return verify_memory(transport, VerifyAction(method=VerifyMethod.AUTO, memory=memory),
                         erased=0xFF, link="bench", device="a", advance=lambda done: None,
                         geometry=chips.part("stm32g071rb").flash)


def test_adjacent_units_are_summed_together_up_to_a_read_block(
        world: SimulationWorld, chips: ChipDatabase) -> None:
    transport = _session(world, chips, _CountingChecksums)
    assert isinstance(transport, _CountingChecksums)
    transport.ranges = []
    data = bytes(range(256)) * 384 + b"\x5a" * 6   # 96 KiB + 6 over 2 KiB pages
    transport.write(FLASH, data)
    assert _verify_by_units(transport, MemoryMap((Segment(FLASH, data),)), chips) == "checksum"
    assert transport.ranges == [(FLASH, READ_BLOCK), (FLASH + READ_BLOCK, len(data) - READ_BLOCK)]


def test_a_group_that_disagrees_is_read_back_to_the_first_differing_address(
        world: SimulationWorld, chips: ChipDatabase) -> None:
    transport = _session(world, chips)
    data = bytes(range(256)) * 64   # 16 KiB: eight 2 KiB pages
    transport.write(FLASH, data)
    expected = bytearray(data)
    expected[5 * 2048 + 3] ^= 0x01
    with pytest.raises(VerifyError) as info:
        _verify_by_units(transport, MemoryMap((Segment(FLASH, bytes(expected)),)), chips)
    assert info.value.address == FLASH + 5 * 2048 + 3


def test_only_adjacent_whole_word_pieces_are_grouped() -> None:
    pieces = [Segment(FLASH, b"\0" * 2048), Segment(FLASH + 2048, b"\0" * 6),
              Segment(FLASH + 2054, b"\0" * 2), Segment(FLASH + 4096, b"\0" * 4)]
    assert [[p.address for p in group] for group in _groups(pieces)] == \
        [[FLASH, FLASH + 2048], [FLASH + 2054], [FLASH + 4096]]
