"""The USART transport's hardware path (pyserial's POSIX port) on the pty simulator."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from runner.errors import ConnectError
from transports.base import LinkRequest
from transports.chips import ChipDatabase
from transports.sim import SimChip
from transports.sim.bootloader import BootloaderCore, Link, bootloader_profile
from transports.sim.bootloader_stream import StreamBootloader
from transports.sim.usart import PtyBootloader
from transports.uart import UsartTransport


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
