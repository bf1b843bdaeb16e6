"""stm32flash, a real peer, drives our simulated USART bootloader through a pty.

Success is judged by stm32flash's exit status and by the simulated chip's flash,
never by words in its output. A pty keeps no parity setting, hence ``-m 8n1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from transports.chips import ChipDatabase
from transports.sim import SimChip
from transports.sim.bootloader import BootloaderCore, Link, bootloader_profile
from transports.sim.bootloader_stream import StreamBootloader
from transports.sim.usart import PtyBootloader

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(shutil.which("stm32flash") is None,
                       reason="stm32flash is not installed (Debian package stm32flash)"),
]

IMAGE_SIZE = 64 * 1024
# One ROM with Erase (0x43, v2.2) and two with Extended Erase (0x44, v3.1).
PARTS = ["stm32f103cb", "stm32f411re", "stm32g071rb"]


class Board:
    def __init__(self, sim: SimChip, pty: PtyBootloader) -> None:
        self.sim = sim
        self.pty = pty

    def stm32flash(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["stm32flash", "-b", "115200", "-m", "8n1", *args, self.pty.path],
                              capture_output=True, timeout=120, check=False)


@pytest.fixture(params=PARTS)
def board(request: pytest.FixtureRequest, chips: ChipDatabase) -> Iterator[Board]:
    chip = chips.part(request.param)
    sim = SimChip(chip)
    core = BootloaderCore(sim, bootloader_profile(chip, Link.USART, {}))
    with PtyBootloader(StreamBootloader(core, Link.USART)) as pty:
        yield Board(sim, pty)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image.bin"
    path.write_bytes(os.urandom(IMAGE_SIZE))
    return path


def test_device_info_succeeds(board: Board) -> None:
    assert board.stm32flash().returncode == 0


def test_write_with_verify_programs_the_image(board: Board, image: Path) -> None:
    result = board.stm32flash("-w", str(image), "-v")
    assert result.returncode == 0, result.stderr
    assert board.sim.flash[:IMAGE_SIZE] == image.read_bytes()


def test_read_back_is_identical(board: Board, image: Path, tmp_path: Path) -> None:
    assert board.stm32flash("-w", str(image)).returncode == 0
    out = tmp_path / "out.bin"
    result = board.stm32flash("-r", str(out), "-S", f"0x08000000:{IMAGE_SIZE}")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == image.read_bytes()


def test_mass_erase_clears_flash(board: Board) -> None:
    board.sim.program(0x08000000, b"\x00" * 64)
    board.sim.program(board.sim.geometry.end - 64, b"\x00" * 64)
    result = board.stm32flash("-o")
    assert result.returncode == 0, result.stderr
    assert board.sim.flash == b"\xff" * len(board.sim.flash)


def test_read_protected_chip_makes_stm32flash_fail(board: Board, tmp_path: Path) -> None:
    board.sim.set_rdp_level(1)
    result = board.stm32flash("-r", str(tmp_path / "out.bin"), "-S", "0x08000000:256")
    assert result.returncode != 0


def test_readout_unprotect_erases_and_clears_rdp(board: Board) -> None:
    board.sim.program(0x08000000, b"\x00" * 64)
    board.sim.set_rdp_level(1, erase_on_regression=False)
    result = board.stm32flash("-k")
    assert result.returncode == 0, result.stderr
    assert board.sim.rdp_level == 0
    assert board.sim.flash[:64] == b"\xff" * 64


def test_software_reset_stub_restarts_the_chip(board: Board, image: Path) -> None:
    result = board.stm32flash("-w", str(image), "-R")
    assert result.returncode == 0, result.stderr
    assert board.sim.stats.resets == 1
    assert board.sim.flash[:IMAGE_SIZE] == image.read_bytes()
