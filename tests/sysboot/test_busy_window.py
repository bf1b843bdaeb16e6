"""Per-chunk bookkeeping runs while the ROM is busy, never between an ACK and the next byte.

A write reports chunk i done once chunk i+1's data frame is on the wire and its
ACK is still to come; a read hands over chunk i once chunk i+1's request is
sent. The simulated ROM answers at once here (time scale 0), so "still to come"
shows as an answer waiting unread on the simulated port.
"""

from __future__ import annotations

import pytest

from transports.sim.endpoints import usart_key
from transports.sim.usart import UsartEndpoint, endpoint
from transports.uart import UsartTransport

from .conftest import OpenUsart, sim_of

BASE = 0x08000000


def pattern(size: int) -> bytes:
    return bytes((i * 13 + 5) & 0xFF for i in range(size))


def board(session: UsartTransport) -> UsartEndpoint:
    world = session.request.endpoints.world
    assert world is not None
    return endpoint(usart_key(world, "usart", "dut"))


def test_write_progress_comes_while_the_next_chunk_is_programmed(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    image = pattern(4 * 256)
    session.erase(session.chip.flash.blocks_covering(BASE, len(image)))
    sim, port = sim_of(session), board(session)
    seen: list[tuple[int, int, bool]] = []

    def progress(done: int, _total: int) -> None:
        next_chunk = done < len(image) and \
            bytes(sim.flash[done:done + 256]) == image[done:done + 256]
        seen.append((done, port.waiting, next_chunk))

    session.write(BASE, image, progress)
    # Chunks 0-2: reported with the next chunk programmed and its ACK unread; the last
    # one after its own ACK, with nothing left to send.
    assert seen == [(256, 1, True), (512, 1, True), (768, 1, True), (1024, 0, False)]
    assert sim.flash[:len(image)] == image


def test_read_chunks_are_handed_over_while_the_next_read_is_answered(
        open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    image = pattern(3 * 256 + 100)
    sim_of(session).program(BASE, image)
    port = board(session)
    seen: list[tuple[int, int]] = []
    data = session.read(BASE, len(image), lambda done, _total: seen.append((done, port.waiting)))
    assert data == image
    # The answer to the next Read Memory (its count's ACK, then the bytes) waits unread.
    assert seen == [(256, 1 + 256), (512, 1 + 256), (768, 1 + 100), (868, 0)]


class Stop(Exception):
    pass


def test_a_write_stopped_by_its_progress_leaves_the_session_in_step(
        open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    image = pattern(4 * 256)
    session.erase(session.chip.flash.blocks_covering(BASE, len(image)))

    def progress(done: int, _total: int) -> None:
        if done == 256:
            raise Stop

    with pytest.raises(Stop):
        session.write(BASE, image, progress)
    # The chunk on the wire when the progress stopped the write was acknowledged and
    # its ACK taken: the next command reads its own answers.
    assert board(session).waiting == 0
    assert session.read(BASE, 512) == image[:512]
    assert bytes(sim_of(session).flash[512:1024]) == b"\xff" * 512


def test_a_read_stopped_by_its_progress_leaves_the_session_in_step(
        open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    image = pattern(4 * 256)
    sim_of(session).program(BASE, image)

    def progress(done: int, _total: int) -> None:
        if done == 256:
            raise Stop

    with pytest.raises(Stop):
        session.read(BASE, len(image), progress)
    assert board(session).waiting == 0
    assert session.read(BASE + 512, 256) == image[512:768]
