"""stm32loader, a real peer from PyPI, drives our simulated USART ROM unmodified.

stm32loader opens its port with ``serial.Serial`` and toggles DTR (NRST) and
RTS (BOOT0) itself, which a pty cannot carry. The launcher below therefore
attaches it at the pyserial seam only: ``stm32loader.uart`` gets a ``serial``
namespace whose ``Serial`` opens our ``flashsim://`` board through
``serial.serial_for_url`` with the very arguments stm32loader passes (8E1 and
its timeout). The board is wired as stm32loader's defaults expect: DTR on
NRST, RTS on BOOT0, active-low adapter lines. Its sleeps pass on the board's
clock, so a 20 s wait after readout unprotect costs no wall time; every byte
still goes through the simulated ROM.

Success is judged by the exit status and by the simulated chip's flash.
"""

from __future__ import annotations

import contextlib
import io
import os
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from transports.chips import ChipDatabase
from transports.sim import SimChip
from transports.sim.bootloader import BootloaderCore, Link, bootloader_profile
from transports.sim.bootloader_stream import StreamBootloader
from transports.sim.usart import UsartEndpoint, Wiring, register_endpoint, unregister_endpoint

stm32loader_main = pytest.importorskip("stm32loader.main", reason="stm32loader is not installed")
import stm32loader.bootloader as loader_bootloader  # noqa: E402
import stm32loader.uart as loader_uart  # noqa: E402

pytestmark = pytest.mark.conformance

IMAGE_SIZE = 16 * 1024
BASE = 0x08000000
# (part, stm32loader family): an F1 ROM (Erase 0x43) and an F4 ROM (Extended Erase 0x44).
PARTS = [("stm32f103cb", "F1"), ("stm32f411re", "F4")]


class Board:
    """A simulated board on a flashsim:// port, and stm32loader run against it."""

    def __init__(self, core: BootloaderCore, url: str, family: str) -> None:
        self.core = core
        self.sim = core.sim
        self.url = url
        self.family = family

    def stm32loader(self, *args: str) -> tuple[int, str]:
        """Run stm32loader's own ``main`` with ``args``; returns (exit status, output)."""
        url, clock = self.url, self.sim.clock

        def open_port(**kwargs: Any) -> serial.SerialBase:
            kwargs.pop("port", None)
            return serial.serial_for_url(url, **kwargs)

        shim = types.SimpleNamespace(Serial=open_port)
        sleeps = types.SimpleNamespace(sleep=clock.advance, time=lambda: clock.elapsed)
        out = io.StringIO()
        status = 0
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(out):
            patch.setattr(loader_uart, "serial", shim)
            patch.setattr(loader_bootloader, "time", sleeps)
            try:
                stm32loader_main.main("-p", "flashsim", "-n", "-f", self.family, *args)
            except SystemExit as stop:
                status = stop.code if isinstance(stop.code, int) else 1
            except Exception as error:  # a peer crash is a failed job, with its reason
                status = 1
                out.write(f"{type(error).__name__}: {error}")
        return status, out.getvalue()


@pytest.fixture(params=PARTS, ids=[part for part, _ in PARTS])
def board(request: pytest.FixtureRequest, chips: ChipDatabase) -> Iterator[Board]:
    part, family = request.param
    chip = chips.part(part)
    sim = SimChip(chip)
    core = BootloaderCore(sim, bootloader_profile(chip, Link.USART, {}))
    key = f"stm32loader-{part}-{id(sim):x}"
    url = register_endpoint(key, UsartEndpoint(StreamBootloader(core, Link.USART),
                                               Wiring(boot0="rts", reset="dtr")))
    try:
        yield Board(core, url, family)
    finally:
        unregister_endpoint(key)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image.bin"
    path.write_bytes(os.urandom(IMAGE_SIZE))
    return path


def test_device_id_and_uid_are_read(board: Board) -> None:
    status, out = board.stm32loader()
    assert status == 0, out
    assert f"0x{board.sim.chip.dev_id:03X}".lower() in out.lower()


def test_erase_write_verify_programs_the_image(board: Board, image: Path) -> None:
    status, out = board.stm32loader("-e", "-w", "-v", str(image))
    assert status == 0, out
    assert board.sim.flash[:IMAGE_SIZE] == image.read_bytes()


def test_read_back_is_identical(board: Board, image: Path, tmp_path: Path) -> None:
    assert board.stm32loader("-e", "-w", str(image))[0] == 0
    out = tmp_path / "out.bin"
    status, text = board.stm32loader("-r", "-a", f"0x{BASE:08X}", "-l", str(IMAGE_SIZE), str(out))
    assert status == 0, text
    assert out.read_bytes() == image.read_bytes()


def test_verify_of_a_different_image_fails(board: Board, image: Path, tmp_path: Path) -> None:
    assert board.stm32loader("-e", "-w", str(image))[0] == 0
    other = tmp_path / "other.bin"
    other.write_bytes(bytes(b ^ 0x01 for b in image.read_bytes()))
    status, _ = board.stm32loader("-v", str(other))
    assert status != 0


def test_readout_protect_then_unprotect_erases_the_chip(board: Board, image: Path) -> None:
    assert board.stm32loader("-e", "-w", str(image))[0] == 0
    status, out = board.stm32loader("-x")
    assert status == 0, out
    assert board.sim.rdp_level == 1
    status, out = board.stm32loader("-u")
    assert status == 0, out
    assert board.sim.rdp_level == 0
    assert board.sim.flash[:IMAGE_SIZE] == b"\xff" * IMAGE_SIZE


def test_go_starts_the_application(board: Board, image: Path) -> None:
    assert board.stm32loader("-e", "-w", str(image))[0] == 0
    status, out = board.stm32loader("-g", f"0x{BASE:08X}")
    assert status == 0, out
    assert not board.core.active  # the ROM jumped: the application runs
