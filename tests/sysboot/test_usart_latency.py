"""Low latency on the serial port: asked for, honoured by the simulated FT232R, given back."""

from __future__ import annotations

import array
import dataclasses
import errno
import fcntl
import os
import termios
from typing import Any

import pytest
import serial

from transports.lowlatency import ASYNC_LOW_LATENCY, Outcome, request_low_latency
from transports.sim.clock import SimClock
from transports.sim.endpoints import usart_key
from transports.sim.latency import PACKET_BYTES, LatencyTimer
from transports.sim.usart import UsartEndpoint, endpoint
from transports.sim.world import DeviceProfile
from transports.trace import Trace
from transports.uart import UsartTransport

from .conftest import OpenUsart, sim_of

BASE = 0x08000000
FT232R = DeviceProfile(quirks={"latency-timer": 16})


def _board(session: UsartTransport) -> UsartEndpoint:
    world = session.request.endpoints.world
    assert world is not None
    return endpoint(usart_key(world, session.request.link, session.request.device))


def _write_8k(session: UsartTransport) -> None:
    data = bytes(range(256)) * 32
    session.engine.erase_pages(list(range(8)))
    session.engine.write_blocks([(BASE + offset, data[offset:offset + 256])
                                 for offset in range(0, len(data), 256)], lambda index: None)
    assert bytes(sim_of(session).flash[:len(data)]) == data


def test_the_session_asks_for_low_latency_and_the_adapter_answers_within_1_ms(
        open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb", FT232R)
    board = _board(session)
    assert session.engine.framing.low_latency.outcome is Outcome.SET  # type: ignore[attr-defined]
    assert board.latency is not None and board.latency.low_latency
    held_before, waited_before = board.latency.held, board.latency.waited_s
    _write_8k(session)
    held = board.latency.held - held_before
    assert held >= 3 * 32                      # every ACK of 32 Write Memory commands
    assert board.latency.waited_s - waited_before <= held * 0.001
    session.close()
    assert not board.latency.low_latency       # given back with the port


def test_without_low_latency_each_ack_waits_for_the_16_ms_timer(open_usart: OpenUsart) -> None:
    fast = open_usart("stm32f103cb", FT232R)
    slow = open_usart("stm32f103cb", FT232R, low_latency=False)
    assert slow.engine.framing.low_latency.outcome is Outcome.NOT_ASKED  # type: ignore[attr-defined]
    for session in (fast, slow):
        _write_8k(session)
    fast_s, slow_s = sim_of(fast).clock.elapsed, sim_of(slow).clock.elapsed
    slow_board = _board(slow)
    assert slow_board.latency is not None and not slow_board.latency.low_latency
    # ~100 replies, each held to the next tick of a 16 ms timer instead of a 1 ms one.
    assert slow_s - fast_s > 100 * 0.004


def test_a_reply_of_whole_packets_is_not_held() -> None:
    clock = SimClock()
    timer = LatencyTimer(clock, 0.016)
    clock.advance(0.0031)
    timer.hold(2 * PACKET_BYTES)
    assert timer.held == 0 and clock.elapsed == pytest.approx(0.0031)
    timer.hold(1)
    assert timer.held == 1 and clock.elapsed == pytest.approx(0.016)  # the timer's next tick
    timer.low_latency = True
    clock.advance(0.0002)
    timer.hold(257)
    assert clock.elapsed == pytest.approx(0.017)


def test_the_trace_says_what_asking_for_low_latency_did(open_usart: OpenUsart) -> None:
    records: list[dict[str, Any]] = []

    class Sink:
        def record(self, record: dict[str, Any]) -> None:
            records.append(record)

    session = open_usart("stm32f103cb", FT232R, connect=False)
    session.request = dataclasses.replace(
        session.request, trace=Trace(Sink(), level=1, device="dut", link="usart", kind="uart"))
    session.connect()
    assert {"command": "ASYNC_LOW_LATENCY", "reply": "set"}.items() <= records[0].items()


# ------------------------------------------------------------------ the ioctl, on POSIX ports


class _Driver:
    """A tty driver's ``struct serial_struct`` behind TIOCGSERIAL / TIOCSSERIAL."""

    def __init__(self, flags: int = 0, refuse: int | None = None) -> None:
        self.flags, self.refuse, self.sets = flags, refuse, 0

    def ioctl(self, fd: int, request: int, buffer: array.array[int]) -> int:
        if self.refuse is not None:
            raise OSError(self.refuse, os.strerror(self.refuse))
        if request == termios.TIOCGSERIAL:
            buffer[4] = self.flags
        else:
            assert request == termios.TIOCSSERIAL
            self.flags, self.sets = buffer[4], self.sets + 1
        return 0


class _Port(serial.Serial):
    """A POSIX port on descriptor 7, never opened here."""

    fd = 7


def test_the_flag_is_set_and_cleared_again_on_a_tty_that_has_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    driver = _Driver(flags=0x40)   # another flag the driver keeps
    monkeypatch.setattr(fcntl, "ioctl", driver.ioctl)
    grant = request_low_latency(_Port())
    assert grant.outcome is Outcome.SET
    assert driver.flags == 0x40 | ASYNC_LOW_LATENCY
    grant.release()
    assert driver.flags == 0x40


def test_a_flag_set_before_the_session_is_left_set(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = _Driver(flags=ASYNC_LOW_LATENCY)   # a udev rule, or another tool, set it
    monkeypatch.setattr(fcntl, "ioctl", driver.ioctl)
    grant = request_low_latency(_Port())
    assert grant.outcome is Outcome.ALREADY
    grant.release()
    assert driver.flags == ASYNC_LOW_LATENCY and driver.sets == 0


def test_a_driver_without_the_ioctl_leaves_the_port_as_it_is(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fcntl, "ioctl", _Driver(refuse=errno.ENOTTY).ioctl)
    grant = request_low_latency(_Port())
    assert grant.outcome is Outcome.UNSUPPORTED
    assert grant.describe() == f"unsupported ({os.strerror(errno.ENOTTY)})"
    grant.release()


def test_a_pty_has_no_serial_struct_and_still_works() -> None:
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave))
    try:
        assert request_low_latency(port).outcome is Outcome.UNSUPPORTED
    finally:
        port.close()
        os.close(master)
        os.close(slave)


def test_a_network_port_is_not_asked() -> None:
    assert request_low_latency(serial.serial_for_url("loop://")).outcome is Outcome.UNSUPPORTED


def test_a_port_not_yet_open_is_not_asked_and_nothing_is_cleared_later() -> None:
    port = serial.Serial()   # pyserial's POSIX port, no descriptor yet
    grant = request_low_latency(port)
    assert grant.outcome is Outcome.UNSUPPORTED and grant.detail == "not open"
    grant.release()
