"""The USART transport's hardware path (pyserial's POSIX port) on the pty simulator."""

from __future__ import annotations

import os
import socket
import threading
import time
import tty
from collections.abc import Iterator

import pytest
import serial

from runner.errors import ConnectError, LinkLost
from transports.base import LinkRequest
from transports.chips import ChipDatabase
from transports.sim import SimChip
from transports.sim.bootloader import BootloaderCore, Link, bootloader_profile
from transports.sim.bootloader_stream import StreamBootloader
from transports.sim.usart import PtyBootloader
from transports.sysboot.framing import NoReply
from transports.uart import UsartFraming, UsartTransport


@pytest.fixture
def board(chips: ChipDatabase) -> Iterator[tuple[SimChip, PtyBootloader]]:
    chip = chips.part("stm32g071rb")
    sim = SimChip(chip)
    core = BootloaderCore(sim, bootloader_profile(chip, Link.USART, {}))
    with PtyBootloader(StreamBootloader(core, Link.USART)) as pty:
        yield sim, pty


def session(chips: ChipDatabase, path: str, parity: str) -> UsartTransport:
    return UsartTransport.open(LinkRequest(device="dut", link="u", kind="uart",
                                           options={"port": path, "parity": parity},
                                           chip=chips.part("stm32g071rb")))


def test_real_serial_port_code_flashes_through_a_pty(
        chips: ChipDatabase, board: tuple[SimChip, PtyBootloader]) -> None:
    sim, pty = board
    link = session(chips, pty.path, "none")
    link.connect()
    try:
        assert link.identify().uid == sim.uid_hex
        link.erase(link.chip.flash.blocks[:1])
        link.write(0x08000000, bytes(range(256)) * 2)
        assert link.read(0x08000000, 512) == bytes(range(256)) * 2
    finally:
        link.close()
    assert sim.flash[:512] == bytes(range(256)) * 2


def test_an_adapter_latency_timer_behind_the_pty_holds_every_short_reply(
        chips: ChipDatabase) -> None:
    chip = chips.part("stm32g071rb")
    sim = SimChip(chip)
    core = BootloaderCore(sim, bootloader_profile(chip, Link.USART, {}))
    with PtyBootloader(StreamBootloader(core, Link.USART), latency_timer_s=0.016) as pty:
        link = session(chips, pty.path, "none")
        link.connect()
        try:
            # A pty takes no TIOCSSERIAL: the session goes on with the adapter as it is.
            assert link.engine.framing.low_latency.describe().startswith(  # type: ignore[attr-defined]
                "unsupported")
            link.write(0x08000000, bytes(range(256)))
        finally:
            link.close()
        assert pty.latency is not None and pty.latency.held >= 4 + 3   # connect, Write Memory
        assert pty.latency.waited_s <= pty.latency.held * 0.016


def test_the_port_is_not_reconfigured_while_a_session_reads(
        chips: ChipDatabase, board: tuple[SimChip, PtyBootloader]) -> None:
    # The POSIX port is waited on and read directly: no timeout change (a tcsetattr) per read.
    _, pty = board
    link = session(chips, pty.path, "none")
    link.connect()
    try:
        port = link.engine.framing.port   # type: ignore[attr-defined]
        before = port.timeout
        assert link.read(0x08000000, 256) == b"\xff" * 256
        assert port.timeout == before
    finally:
        link.close()


@pytest.fixture
def bare_pty() -> Iterator[tuple[int, UsartFraming]]:
    """A pty nobody answers on unless the test does, with a framing on its port."""
    master, slave = os.openpty()
    tty.setraw(slave)
    port = serial.Serial()
    port.port, port.baudrate, port.parity = os.ttyname(slave), 115200, serial.PARITY_NONE
    port.timeout = 0.5
    port.open()
    framing = UsartFraming(port, name="USART pty", options={})
    framing._adopt_descriptor()
    try:
        yield master, framing
    finally:
        framing.close()
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass


def test_a_reply_that_arrives_in_pieces_is_read_whole(
        bare_pty: tuple[int, UsartFraming]) -> None:
    master, framing = bare_pty
    reply = bytes(range(256))

    def answer() -> None:
        os.write(master, reply[:100])
        time.sleep(0.05)
        os.write(master, reply[100:])

    sender = threading.Thread(target=answer)
    sender.start()
    assert framing.receive(256, timeout=2.0, code=0x11) == reply
    sender.join()


def test_silence_on_the_port_is_no_reply_within_the_timeout(
        bare_pty: tuple[int, UsartFraming]) -> None:
    master, framing = bare_pty
    os.write(master, b"\x79")
    with pytest.raises(NoReply):
        framing.receive(2, timeout=0.2, code=0x11)   # one byte came, the second never does


def test_a_port_that_goes_away_is_link_lost(bare_pty: tuple[int, UsartFraming]) -> None:
    master, framing = bare_pty
    os.close(master)   # the adapter unplugged: the port hangs up
    with pytest.raises(LinkLost, match="serial port USART pty failed"):
        framing.receive(1, timeout=1.0, code=0x11)


def test_settings_a_port_cannot_keep_are_a_connect_error(
        chips: ChipDatabase, board: tuple[SimChip, PtyBootloader]) -> None:
    _, pty = board
    with pytest.raises(ConnectError, match="parity"):
        session(chips, pty.path, "even").connect()


def test_missing_port_is_a_connect_error(chips: ChipDatabase) -> None:
    with pytest.raises(ConnectError, match="cannot open"):
        session(chips, "/dev/does-not-exist", "even").connect()


class TcpBoard:
    """The simulated ROM behind a loopback TCP socket, as ser2net would serve a port."""

    def __init__(self, stream: StreamBootloader) -> None:
        self.stream = stream
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        try:
            connection, _ = self.server.accept()
        except OSError:
            return
        with connection:
            while True:
                try:
                    data = connection.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                self.stream.feed(data)
                connection.sendall(self.stream.take())

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=2)


def test_socket_url_reaches_a_networked_port(chips: ChipDatabase) -> None:
    chip = chips.part("stm32f411re")
    sim = SimChip(chip)
    board = TcpBoard(StreamBootloader(BootloaderCore(sim, bootloader_profile(
        chip, Link.USART, {})), Link.USART))
    link = UsartTransport.open(LinkRequest(
        device="dut", link="u", kind="uart", chip=chip,
        options={"port": f"socket://127.0.0.1:{board.port}"}))
    try:
        link.connect()
        assert link.identify().dev_id == 0x431
        link.write(0x08000000, b"\x5a" * 16)
    finally:
        link.close()
        board.close()
    assert sim.flash[:16] == b"\x5a" * 16
