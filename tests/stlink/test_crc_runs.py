"""The on-target CRC through the runner: skip-unchanged and verify on the register path."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from runner import events as ev
from runner.console import ConsoleRenderer
from tests.stlink.test_crc_routine import LOOP, UDF, patched
from tests.stlink.test_loader_runs import finished, run
from transports.sim import SimulationWorld
from transports.stlink.loaders import CrcRoutine, LoaderError


def test_a_reflash_on_the_register_path_is_decided_by_on_target_crc(tmp_path: Path) -> None:
    world = SimulationWorld()
    data = os.urandom(40 * 1024)
    assert run(tmp_path, world, data, options="serial: A")[0] == 0
    status, sink = run(tmp_path, world, data, options="serial: A")
    assert status == 0
    assert sink.named("device.identified")[0]["checksum"] == "on-target CRC (CRC routine)"
    write = finished(sink, "write")
    assert write["compare_method"] == "checksum" and write["units_rewritten"] == 0
    verify = finished(sink, "verify")
    assert verify["method"] == "checksum" and verify["units_proven_by_write"] == verify["units"]
    assert not sink.named(ev.LINK_FALLBACK)


def test_a_routine_that_fails_its_self_check_falls_back_to_read_back_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = SimulationWorld()
    data = os.urandom(20 * 1024)
    assert run(tmp_path, world, data, options="serial: A")[0] == 0
    broken = patched(LOOP, UDF)
    monkeypatch.setattr("transports.stlink.loaders.crc.crc_routine", lambda: broken)
    status, sink = run(tmp_path, world, data, options="serial: A")
    assert status == 0
    [fallback] = sink.named(ev.LINK_FALLBACK)
    assert fallback["feature"] == "the on-target CRC" and fallback["instead"] == "read-back"
    assert "faulted" in fallback["reason"] and "warning" not in fallback["message"]
    assert finished(sink, "write")["compare_method"] == "readback"
    verify = finished(sink, "verify")
    assert verify["method"] == "readback" and verify["planned_method"] == "checksum"
    [warning] = [w for w in sink.named(ev.PLAN_WARNING) if w.get("step")]
    assert "fell back" in warning["message"]
    assert world.chips["board"].flash[:len(data)] == data


def test_a_checksum_the_read_back_proves_wrong_is_distrusted_loudly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The routine passed its self-check, then sums wrong: the verify catches it."""
    monkeypatch.setattr(CrcRoutine, "crc32", lambda self, address, length: 0x12345678)
    world = SimulationWorld()
    data = os.urandom(40 * 1024)
    status, sink = run(tmp_path, world, data, options="serial: A")
    assert status == 0
    write = finished(sink, "write")
    assert write["compare_method"] == "checksum" and write["units_skipped"] == 0
    verify = finished(sink, "verify")
    assert verify["outcome"] == "ok" and verify["method"] == "checksum+readback"
    [fallback] = sink.named(ev.LINK_FALLBACK)
    assert "disagreed with the flash" in fallback["reason"]
    assert world.chips["board"].flash[:len(data)] == data


def test_a_fallback_is_a_warning_line_on_the_console() -> None:
    out = io.StringIO()
    console = ConsoleRenderer(out, live=False, colour=False)
    console.emit(ev.LINK_FALLBACK, device="board", transport="probe", kind="stlink",
                 feature="the on-target CRC", instead="read-back", reason="it faulted",
                 message="board: the on-target CRC is not used, read-back instead: it faulted")
    assert "warning: board: the on-target CRC is not used, read-back instead: it faulted" \
        in out.getvalue()


def test_pyocd_1983_shape_on_the_register_path_rewrites_the_whole_sector(
        tmp_path: Path) -> None:
    """A change in the last 4 KiB of a 16 KiB F411 sector: the sector is rewritten whole."""
    world = SimulationWorld()
    first = bytearray(os.urandom(48 * 1024))
    assert run(tmp_path, world, bytes(first), options="serial: A")[0] == 0
    second = bytearray(first)
    second[0x4000 + 0x3000 + 17] ^= 0xFF
    status, sink = run(tmp_path, world, bytes(second), options="serial: A")
    assert status == 0
    write = finished(sink, "write")
    assert write["compare_method"] == "checksum"
    assert write["rewritten"] == [["0x08004000", "0x08008000"]]
    assert write["units_skipped"] == 2 and write["bytes_written"] == 0x4000
    assert world.chips["board"].flash[:len(second)] == second


def test_a_routine_that_fails_during_the_compare_leaves_the_verify_to_read_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = SimulationWorld()
    data = os.urandom(48 * 1024)
    assert run(tmp_path, world, data, options="serial: A")[0] == 0
    honest = CrcRoutine.crc32
    calls: list[int] = []

    def fails_on_the_third(self: CrcRoutine, address: int, length: int) -> int:
        calls.append(address)
        if len(calls) == 3:
            raise LoaderError("the on-target CRC routine's run did not finish in time")
        return honest(self, address, length)

    monkeypatch.setattr(CrcRoutine, "crc32", fails_on_the_third)
    status, sink = run(tmp_path, world, data, options="serial: A")
    assert status == 0 and len(calls) == 3
    [fallback] = sink.named(ev.LINK_FALLBACK)
    assert "did not finish in time" in fallback["reason"]
    write = finished(sink, "write")
    # The units summed before the failure do not rest on it: the compare read back.
    assert write["units_rewritten"] == 0 and write["compare_method"] == "readback"
    verify = finished(sink, "verify")
    assert verify["method"] == "readback" and verify["planned_method"] == "checksum"
    assert world.chips["board"].flash[:len(data)] == data


def test_the_flash_command_prints_the_fallback_as_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from runner.cli import main

    broken = patched(LOOP, UDF)
    monkeypatch.setattr("transports.stlink.loaders.crc.crc_routine", lambda: broken)
    image = tmp_path / "fw.bin"
    image.write_bytes(os.urandom(2048))
    assert main(["flash", f"{image}@0x08000000", "--chip", "stm32f411re", "--link", "stlink",
                 "--simulate", "--time-scale", "0",
                 "--log-file", str(tmp_path / "{run_id}.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "the on-target CRC is not used, read-back instead" in err
    log = next(tmp_path.glob("*.jsonl")).read_text()
    assert '"event": "link.fallback"' in log or '"event":"link.fallback"' in log


def test_a_verify_planned_by_checksum_reads_back_once_the_crc_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.stlink.test_loader_runs as runs

    monkeypatch.setattr(runs, "MANIFEST", runs.MANIFEST.replace("method: auto",
                                                                "method: checksum"))
    broken = patched(LOOP, UDF)
    monkeypatch.setattr("transports.stlink.loaders.crc.crc_routine", lambda: broken)
    world = SimulationWorld()
    data = os.urandom(8 * 1024)
    status, sink = run(tmp_path, world, data, options="serial: A")
    assert status == 0
    assert len(sink.named(ev.LINK_FALLBACK)) == 1
    verify = finished(sink, "verify")
    assert verify["method"] == "readback" and verify["planned_method"] == "checksum"
    assert world.chips["board"].flash[:len(data)] == data
