"""DFU pacing: blocks of the device's wTransferSize, waits of exactly bwPollTimeout,
and a reflash that skips unchanged sectors by upload compare."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.compiler import compile_plan
from runner.events import CapturingSink
from runner.launch import execute
from runner.manifest import load_manifest
from tests.dfu.conftest import OpenLink, board_of, make_world
from transports.chips import Chip
from transports.dfu.protocol import DfuProtocol, DfuState, StatusReply
from transports.sim.world import DeviceProfile

FLASH = 0x08000000


def test_a_rom_that_takes_1024_byte_blocks_gets_them_whatever_the_option(
        f411: Chip, open_link: OpenLink) -> None:
    """DFU 1.1 §4.1.3: wTransferSize is the most the device takes in one DNLOAD."""
    with make_world({"board": DeviceProfile(quirks={"transfer-size": 1024})}) as world:
        link = open_link(world, f411, **{"transfer-size": 2048})
        assert link.identify().details["transfer_size"] == 1024
        link.erase(f411.flash.blocks[:1])
        data = os.urandom(8192)
        link.write(FLASH, data)
        assert board_of(world).sim.flash[:len(data)] == data
        assert link.read(FLASH, len(data)) == data


def test_the_host_waits_exactly_the_poll_timeout_the_rom_asks_for(
        f411: Chip, open_link: OpenLink, monkeypatch: pytest.MonkeyPatch) -> None:
    replies: list[StatusReply] = []
    original = DfuProtocol.get_status

    def recording(self: DfuProtocol) -> StatusReply:
        reply = original(self)
        replies.append(reply)
        return reply

    monkeypatch.setattr(DfuProtocol, "get_status", recording)
    quirks = {"getstatus-while-busy": "answer"}
    with make_world({"board": DeviceProfile(quirks=quirks)}) as world:
        link = open_link(world, f411)
        assert link.protocol is not None
        slept: list[float] = []
        inner = link.protocol.sleep
        link.protocol.sleep = lambda seconds: (slept.append(seconds), inner(seconds))[1]
        replies.clear()
        link.erase(f411.flash.blocks[:1])
        link.write(FLASH, os.urandom(4096))
    busy = [r.poll_ms / 1000 for r in replies if r.state == DfuState.DNBUSY]
    assert busy and slept == busy  # one wait per busy answer, of exactly its length
    # ... and waiting that long was enough: no command was found busy twice in a row
    states = [r.state for r in replies]
    assert not any(a == b == DfuState.DNBUSY for a, b in zip(states, states[1:], strict=False))


MANIFEST = """\
manifest: 1
name: dfu-line
simulate: true
images:
  app: {file: app.bin, address: 0x08000000, format: bin}
transports:
  rom: {kind: dfu}
recipes:
  flash:
    - erase: {scope: used}
    - write: {images: [app], skip-unchanged: true}
    - verify: {method: auto}
devices:
  board: {chip: stm32f411re, transport: rom, recipe: flash}
"""


def test_a_reflash_skips_unchanged_sectors_by_upload_compare(tmp_path: Path) -> None:
    data = os.urandom(40 * 1024)
    (tmp_path / "app.bin").write_bytes(data)
    (tmp_path / "line.yaml").write_text(MANIFEST)
    plan = compile_plan(load_manifest(tmp_path / "line.yaml"))
    with make_world() as world:
        assert execute(plan, world=world).exit_code == 0
        sink = CapturingSink()
        assert execute(plan, world=world, events=sink).exit_code == 0
        write = next(e for e in sink.named("step.finished") if e["action"] == "write")
        assert write["compare_method"] == "readback"
        assert write["units_rewritten"] == 0 and write["bytes_written"] == 0
        assert board_of(world).sim.flash[:len(data)] == data
