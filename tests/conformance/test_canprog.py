"""canprog, a real peer from PyPI, drives our simulated CAN ROM (AN3154) unmodified.

canprog opens ``can.interface.Bus(channel=…, bustype='socketcan_native')`` and
builds frames with python-can 2.x's ``Message(extended_id=…)``. The launcher
attaches it at the python-can seam only: ``canprog.main.can`` and
``canprog.protocols.stm32.can`` get a ``can`` namespace whose ``Bus`` is a
``virtual`` bus on the channel our simulated F105 listens on and whose
``Message`` takes the old keyword. Every frame goes through the simulated ROM.

canprog returns normally (exit status 0 from its console script) after logging
an error, and calls ``sys.exit(0)`` only when every step succeeded, so the
launcher counts only that as success; the simulated flash is checked too.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import can
import pytest

from transports.chips import ChipDatabase
from transports.sim import SimChip
from transports.sim.bootloader import BootloaderCore, Link, bootloader_profile
from transports.sim.canbus import CanBootloaderNode

canprog_main = pytest.importorskip("canprog.main", reason="canprog is not installed")
import canprog.protocols.stm32 as canprog_stm32  # noqa: E402

pytestmark = pytest.mark.conformance

BASE = 0x08000000
IMAGE_SIZE = 2 * 1024


def _message(*args: Any, extended_id: bool | None = None, **kwargs: Any) -> can.Message:
    if extended_id is not None:
        kwargs["is_extended_id"] = extended_id
    return can.Message(*args, **kwargs)


class Board:
    """A simulated F105 ROM node on a virtual CAN channel, and canprog run against it."""

    def __init__(self, sim: SimChip, node: CanBootloaderNode) -> None:
        self.sim = sim
        self.node = node

    def canprog(self, *args: str) -> tuple[bool, str]:
        """Run canprog's ``main`` with ``args``; returns (succeeded, its log)."""
        channel = self.node.channel
        buses: list[can.BusABC] = []

        def open_bus(*_: Any, **__: Any) -> can.BusABC:
            bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
            buses.append(bus)
            return bus

        shim = types.SimpleNamespace(Bus=open_bus, interface=types.SimpleNamespace(Bus=open_bus),
                                     Message=_message, BusABC=can.BusABC, CanError=can.CanError)
        records: list[str] = []
        handler = logging.Handler()
        handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
        log = logging.getLogger("canprog")
        log.addHandler(handler)
        succeeded = False
        # canprog polls ``recv(0.0)`` in a loop; a short switch interval lets the
        # simulated node's thread answer promptly instead of once per 5 ms slice.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(0.0002)
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(canprog_main, "can", shim)
                patch.setattr(canprog_stm32, "can", shim)
                patch.setattr(sys, "argv", ["canprog", "-n", "sim", *args])
                try:
                    canprog_main.main()
                except SystemExit as stop:
                    succeeded = stop.code == 0
        finally:
            sys.setswitchinterval(interval)
            log.removeHandler(handler)
            for bus in buses:
                bus.shutdown()
        return succeeded, "\n".join(records)


@pytest.fixture
def board(chips: ChipDatabase) -> Iterator[Board]:
    chip = chips.part("stm32f105rc")
    sim = SimChip(chip)
    core = BootloaderCore(sim, bootloader_profile(chip, Link.CAN, {}))
    node = CanBootloaderNode(core, f"canprog-{id(sim):x}")
    try:
        yield Board(sim, node)
    finally:
        node.stop()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image.bin"
    path.write_bytes(os.urandom(IMAGE_SIZE))
    return path


def test_write_with_mass_erase_and_verify_programs_the_image(board: Board, image: Path) -> None:
    board.sim.program(BASE + 0x10000, b"\x00" * 8)
    ok, log = board.canprog("-f", "bin", "stm32", "write", "-e", "-v", str(image))
    assert ok, log
    assert board.sim.flash[:IMAGE_SIZE] == image.read_bytes()
    assert board.sim.flash[0x10000:0x10008] == b"\xff" * 8


def test_read_saves_what_the_flash_holds(board: Board, image: Path, tmp_path: Path) -> None:
    assert board.canprog("-f", "bin", "stm32", "write", "-e", str(image))[0]
    out = tmp_path / "out.bin"
    ok, log = board.canprog("-f", "bin", "stm32", "read", "-s", str(IMAGE_SIZE), str(out))
    assert ok, log
    assert out.read_bytes() == image.read_bytes()


def test_verify_against_other_data_fails(board: Board, image: Path, tmp_path: Path) -> None:
    assert board.canprog("-f", "bin", "stm32", "write", "-e", str(image))[0]
    board.sim.program(BASE + 100, b"\x00")
    ok, _ = board.canprog("-f", "bin", "stm32", "write", "-v", str(image))
    assert not ok


def test_erase_clears_the_flash(board: Board) -> None:
    board.sim.program(BASE, b"\x00" * 64)
    ok, log = board.canprog("stm32", "erase")
    assert ok, log
    assert board.sim.flash == b"\xff" * len(board.sim.flash)


def test_lock_then_unlock_mass_erases(board: Board, image: Path) -> None:
    assert board.canprog("-f", "bin", "stm32", "write", "-e", str(image))[0]
    ok, log = board.canprog("stm32", "lock")
    assert ok, log
    assert board.sim.rdp_level == 1
    ok, log = board.canprog("stm32", "unlock")
    assert ok, log
    assert board.sim.rdp_level == 0
    assert board.sim.flash[:IMAGE_SIZE] == b"\xff" * IMAGE_SIZE


def test_go_starts_the_application(board: Board, image: Path) -> None:
    assert board.canprog("-f", "bin", "stm32", "write", "-e", str(image))[0]
    ok, log = board.canprog("stm32", "go")
    assert ok, log
    assert not board.node.core.active


def test_speed_switches_the_node_bit_rate(board: Board) -> None:
    ok, log = board.canprog("stm32", "speed", "500000")
    assert ok, log
    # canprog sends Speed and leaves without waiting for the ACKs.
    deadline = time.monotonic() + 5
    while board.node.bitrate != 500_000 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert board.node.bitrate == 500_000
