"""The simulated probe answers the commands its advertised firmware has (reference §3.4, §4.3)."""

from __future__ import annotations

import struct

import pytest

from tests.stlink.conftest import Open
from transports.stlink.protocol import StLink

OK, FAULT, UNKNOWN, CONF_CHANGED = 0x80, 0x81, 0x42, 0x40


def raw(link: StLink, *command: int, reply: int, tail: bytes = b"") -> bytes:
    block = (bytes(command) + tail).ljust(16, b"\0")
    return link.command(block, reply=reply, name="raw", status=False)


def test_readcoreid_answers_the_dp_idcode(open_session: Open) -> None:
    session = open_session("stm32f103c8")
    assert session.link is not None
    assert struct.unpack("<I", raw(session.link, 0xF2, 0x22, reply=4))[0] == 0x1BA01477


def test_core_registers_are_read_and_written_while_halted(open_session: Open) -> None:
    session = open_session("stm32f411re")
    link = session.link
    assert link is not None
    assert raw(link, 0xF2, 0x34, 5, reply=2, tail=struct.pack("<I", 0xCAFE))[0] == OK
    reply = raw(link, 0xF2, 0x33, 5, reply=8)
    assert reply[0] == OK and struct.unpack_from("<I", reply, 4)[0] == 0xCAFE
    every = raw(link, 0xF2, 0x3A, reply=88)
    assert every[0] == OK and struct.unpack_from("<I", every, 4 + 5 * 4)[0] == 0xCAFE
    assert struct.unpack_from("<I", every, 4 + 16 * 4)[0] & (1 << 24)  # xPSR.T


def test_core_registers_fault_while_the_core_runs(open_session: Open) -> None:
    session = open_session("stm32f411re")
    assert session.link is not None and session.target is not None
    session.target.run()
    assert raw(session.link, 0xF2, 0x33, 0, reply=8)[0] == FAULT


def test_dap_registers_reach_the_dp_and_the_ahb_ap(open_session: Open) -> None:
    session = open_session("stm32f411re")
    link = session.link
    assert link is not None

    def read(port: int, address: int) -> int:
        reply = raw(link, 0xF2, 0x45, reply=8, tail=struct.pack("<HH", port, address))
        assert reply[0] == OK
        return int(struct.unpack_from("<I", reply, 4)[0])

    def write(port: int, address: int, value: int) -> None:
        tail = struct.pack("<HHI", port, address, value)
        assert raw(link, 0xF2, 0x46, reply=2, tail=tail)[0] == OK

    assert read(0xFFFF, 0x0) == 0x2BA01477
    write(0xFFFF, 0x4, 0x50000000)  # CSYSPWRUPREQ | CDBGPWRUPREQ
    assert read(0xFFFF, 0x4) & 0xA0000000 == 0xA0000000  # both acknowledged
    assert read(0, 0xFC) == 0x24770011  # AHB-AP
    assert read(0, 0xF8) == 0xE00FF003  # the ROM table
    write(0, 0x04, 0xE0042000)  # TAR
    assert read(0, 0x0C) & 0xFFF == 0x431  # DRW: DBGMCU_IDCODE of the F411
    assert read(1, 0xFC) == 0  # no second AP


@pytest.mark.parametrize("sub", [0x45, 0x46])
def test_dap_registers_are_unknown_before_j24(open_session: Open, sub: int) -> None:
    session = open_session("stm32f103c8", quirks={"firmware": 23})
    assert session.link is not None
    assert raw(session.link, 0xF2, sub, reply=2, tail=b"\xff\xff")[0] == UNKNOWN


def test_board_identifiers_are_answered_from_j36(open_session: Open) -> None:
    session = open_session("stm32f103c8")
    assert session.link is not None
    reply = raw(session.link, 0xF2, 0x56, reply=128)
    assert reply[0] == OK and len(reply) == 128


def test_board_identifiers_are_unknown_before_j36(open_session: Open) -> None:
    older = open_session("stm32f103c8", quirks={"firmware": 35})
    assert older.link is not None
    assert raw(older.link, 0xF2, 0x56, reply=2)[0] == UNKNOWN


def test_a_v3_switches_its_own_clock(open_session: Open) -> None:
    session = open_session("stm32f411re", quirks={"probe": "v3"})
    assert session.link is not None
    assert raw(session.link, 0xF2, 0x63, 2, reply=8)[0] == CONF_CHANGED


def test_a_v2_has_no_v3_clock_commands(open_session: Open) -> None:
    session = open_session("stm32f411re")
    assert session.link is not None
    for sub in (0x61, 0x62, 0x63):
        assert raw(session.link, 0xF2, sub, reply=2)[0] == UNKNOWN
