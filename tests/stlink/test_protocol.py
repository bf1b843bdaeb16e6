"""The command protocol: versions, gates, status mapping, WAIT, memory splitting."""

from __future__ import annotations

import struct

import pytest

from runner.errors import BusFault, ConnectError, Refused
from tests.stlink.conftest import Open, probe_of
from transports.sim import SimulationWorld
from transports.stlink.protocol import STATUS, MemoryFault, ProbeVersion, StLink, parse_version


class ScriptedFraming:
    """Answers each exchange with the next scripted reply; records the blocks."""

    packet = 64

    def __init__(self, *replies: bytes) -> None:
        self.replies = list(replies)
        self.blocks: list[bytes] = []

    def exchange(self, block: bytes, *, data_out: bytes = b"", reply: int = 0) -> bytes:
        self.blocks.append(block)
        return self.replies.pop(0) if reply else b""

    def close(self) -> None:
        pass


class NoClock:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def now(self) -> float:
        return sum(self.slept)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def stlink(*replies: bytes, jtag: int = 37) -> tuple[StLink, ScriptedFraming, NoClock]:
    framing, clock = ScriptedFraming(*replies), NoClock()
    link = StLink(framing, clock, pid=0x3748, generation="v2")
    link.version = ProbeVersion(hardware=2, jtag=jtag)
    return link, framing, clock


def test_v2_version_word_is_big_endian() -> None:
    reply = struct.pack(">H", (2 << 12) | (37 << 6) | 7) + struct.pack("<HH", 0x0483, 0x3748)
    version = parse_version(reply, None, 0x3748, "v2")
    assert (version.hardware, version.jtag, version.swim, str(version)) == (2, 37, 7, "V2J37S7")


def test_v2_1_low_bits_are_the_mass_storage_version() -> None:
    reply = struct.pack(">H", (2 << 12) | (40 << 6) | 27) + struct.pack("<HH", 0x0483, 0x374B)
    assert str(parse_version(reply, None, 0x374B, "v2-1")) == "V2J40M27"


def test_v3_reads_the_extended_version() -> None:
    reply = struct.pack(">H", 3 << 12) + struct.pack("<HH", 0x0483, 0x374F)
    extended = bytes([3, 0, 7, 3, 1, 0, 0, 0]) + struct.pack("<HH", 0x0483, 0x374F)
    version = parse_version(reply, extended, 0x374F, "v3")
    assert (version.api, str(version)) == (3, "V3J7M3B1")


def test_feature_gates_follow_the_firmware_number() -> None:
    assert not ProbeVersion(hardware=2, jtag=25).has("mem-16bit")
    assert ProbeVersion(hardware=2, jtag=26).has("mem-16bit")
    assert ProbeVersion(hardware=3, jtag=2).has("com-freq")
    assert not ProbeVersion(hardware=3, jtag=7).has("swd-set-freq")
    assert not ProbeVersion(hardware=1, jtag=13).has("target-voltage")


def test_every_status_code_has_one_handling() -> None:
    assert {info.kind for info in STATUS.values()} == {"ok", "wait", "fault", "bus", "connect",
                                                       "error"}
    assert STATUS[0x10].kind == STATUS[0x14].kind == "wait"
    assert STATUS[0x09].kind == "connect"


@pytest.mark.parametrize(("status", "error"), [
    (0x05, ConnectError), (0x09, ConnectError), (0x0B, ConnectError),
    (0x42, Refused), (0x0A, Refused), (0x12, BusFault)])
def test_status_codes_raise_their_error_class(status: int, error: type[Exception]) -> None:
    link, _framing, _clock = stlink(bytes([status, 0]))
    with pytest.raises(error) as info:
        link.enter_swd()
    assert f"status 0x{status:02X}" in str(info.value)


def test_fault_status_on_a_register_read_is_a_memory_fault_with_its_address() -> None:
    link, _framing, _clock = stlink(bytes([0x11]) + bytes(7))
    with pytest.raises(MemoryFault) as info:
        link.read_word(0x40000000)
    assert info.value.address == 0x40000000


def test_wait_is_retried_with_growing_back_off() -> None:
    ok = bytes([0x80, 0, 0, 0]) + struct.pack("<I", 0x1234)
    link, framing, clock = stlink(bytes([0x10]) + bytes(7), bytes([0x14]) + bytes(7), ok)
    assert link.read_word(0x20000000) == 0x1234
    assert len(framing.blocks) == 3
    assert clock.slept == [0.001, 0.002]


def test_endless_wait_gives_up_with_a_bus_fault() -> None:
    link, _framing, _clock = stlink(*[bytes([0x10]) + bytes(7)] * 9)
    with pytest.raises(BusFault, match="kept answering WAIT"):
        link.read_word(0x20000000)


def test_wait_from_the_simulated_probe_is_absorbed(open_session: Open) -> None:
    session = open_session("stm32f103c8", quirks={"wait-replies": 3})
    assert session.identify().dev_id == 0x410


def test_unaligned_head_and_tail_use_byte_access(open_session: Open,
                                                 world: SimulationWorld) -> None:
    session = open_session("stm32f103c8")
    assert session.link is not None
    data = bytes(range(1, 40))
    session.link.write_memory(0x20000103, data)
    assert session.link.read_memory(0x20000103, len(data)) == data
    commands = [sub for cmd, sub in probe_of(world).commands if cmd == 0xF2]
    assert 0x0D in commands and 0x0C in commands  # 8-bit write and read


def test_transfers_never_cross_the_auto_increment_window(open_session: Open) -> None:
    session = open_session("stm32g071rb")  # Cortex-M0+: 1 KiB window
    assert session.link is not None and session.link.window == 1024
    data = bytes((i * 7) & 0xFF for i in range(5000))
    session.link.write_memory(0x20000200, data)
    assert session.link.read_memory(0x20000200, len(data)) == data


def test_an_unmapped_read_is_a_memory_fault(open_session: Open) -> None:
    session = open_session("stm32f103c8")
    assert session.link is not None
    with pytest.raises(MemoryFault) as info:
        session.link.read_memory(0x60000000, 16)
    assert info.value.address == 0x60000000
