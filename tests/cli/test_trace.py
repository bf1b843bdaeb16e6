"""-v / -vv: each link's protocol commands and raw transfers, on the console and in a trace file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from runner.cli import main
from runner.tracelog import Tracing
from transports.trace import NO_TRACE, Trace

#: What ``flash small.bin@0x08000000 -v`` shows of each link's write, in order (golden
#: excerpts: durations dropped; every line must appear, in this order, among the others).
EXCERPTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "stlink": ("stm32f411re", (
        "GET_VERSION → V2J37S7",
        "SWD_SET_FREQ → OK",
        "READ_IDCODES → OK",
        "WRITEMEM_32BIT 0x08000000 512 B → sent",
        "GETLASTRWSTATUS2 → OK",
        # the verify: the on-target CRC routine's parameters in, its result out
        "WRITEMEM_32BIT 0x20000050 16 B → sent",
        "READMEM_32BIT 0x20000060 12 B → 12 B",
    )),
    "uart,/dev/ttyUSB0": ("stm32f103cb", (
        "ASYNC_LOW_LATENCY → set",  # the converter's latency timer at 1 ms for the session
        "Get Version (0x01) → ACK v2.2",
        "Get (0x00) → ACK v2.2, 11 commands",
        "Get ID (0x02) → ACK PID 0x0410",
        "Erase (0x43) 0x08000000 → ACK (1 page)",
        "Write Memory (0x31) 0x08000000 256 B → ACK",
        "Write Memory (0x31) 0x08000100 256 B → ACK",
        "Read Memory (0x11) 0x08000100 256 B → ACK",
    )),
    "i2c,bus=1": ("stm32g071rb", (
        "Get Version (0x01) → ACK v1.2",
        "Get ID (0x02) → ACK PID 0x0460",
        "No-Stretch Erase (0x45) 0x08000000 → ACK (1 page)",
        "No-Stretch Write Memory (0x32) 0x08000000 256 B → ACK",
        "No-Stretch Write Memory (0x32) 0x08000100 256 B → ACK",
        "Get Checksum (0xA1) 0x08000000 512 B → ACK CRC 0xEA3BEC76",
    )),
    "can,interface=socketcan,channel=can0": ("stm32l476rg", (
        "Get Version (0x01) → ACK v2.0",
        "Get ID (0x02) → ACK PID 0x0415",
        "Erase (0x43) 0x08000000 → ACK (1 page)",
        "Write Memory (0x31) 0x08000000 256 B → ACK",
        "Write Memory (0x31) 0x08000100 256 B → ACK",
        "Read Memory (0x11) 0x08000000 256 B → ACK",
    )),
    "dfu": ("stm32f411re", (
        "DFU_GETSTATUS → dfuIDLE OK 0 ms",
        "DFU_DNLOAD (erase) 0x08000000 5 B → ok",
        "DFU_GETSTATUS → dfuDNBUSY OK 256 ms",
        "DFU_DNLOAD (write) 0x08000000 512 B → ok",
        "DFU_GETSTATUS → dfuDNBUSY OK 3 ms",
        "DFU_GETSTATUS → dfuDNLOAD-IDLE OK 0 ms",
        "DFU_UPLOAD → 512 B",
    )),
}


@pytest.fixture
def image(tmp_path: Path) -> str:
    path = tmp_path / "small.bin"
    path.write_bytes(bytes(range(256)) * 2)
    return f"{path}@0x08000000"


def _flash(image: str, link: str, chip: str, folder: Path, *flags: str) -> int:
    return main(["flash", image, "--chip", chip, "--link", link, "--simulate", "--time-scale",
                 "0", "--log-file", str(folder / "{run_id}.jsonl"), *flags])


def _commands(err: str) -> list[str]:
    return [re.sub(r" \([\d.]+ ms\)$", "", line.removeprefix("target: "))
            for line in err.splitlines() if line.startswith("target: ") and " → " in line]


def _in_order(expected: tuple[str, ...], lines: list[str]) -> None:
    position = 0
    for wanted in expected:
        assert wanted in lines[position:], f"{wanted!r} missing after line {position}:\n" \
                                           + "\n".join(lines)
        position = lines.index(wanted, position) + 1


@pytest.mark.parametrize("link", sorted(EXCERPTS))
def test_verbose_shows_the_commands_of_a_write(link: str, image: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    chip, expected = EXCERPTS[link]
    assert _flash(image, link, chip, tmp_path, "-v") == 0
    err = capsys.readouterr().err
    _in_order(expected, _commands(err))
    assert " >> " not in err and " << " not in err   # raw bytes only with -vv
    audit = (next(tmp_path.glob("*.jsonl"))).read_text()
    assert "GET_VERSION" not in audit and "Write Memory" not in audit \
        and "DFU_DNLOAD" not in audit


@pytest.mark.parametrize("link", sorted(EXCERPTS))
def test_very_verbose_adds_raw_transfers_and_the_trace_file_is_json_lines(
        link: str, image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chip, _ = EXCERPTS[link]
    trace = tmp_path / "trace" / "run.trace.jsonl"
    assert _flash(image, link, chip, tmp_path, "-vv", "--trace-file", str(trace)) == 0
    err = capsys.readouterr().err
    raw = [line for line in err.splitlines() if re.match(r"target: (>>|<<) ", line)]
    assert raw and all(re.search(r" [0-9a-f]*$", line) for line in raw)
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert {r["level"] for r in records} == {"command", "raw"}
    for record in records:
        assert record["device"] == "target" and record["link"] == link.partition(",")[0]
        assert record["kind"] == link.partition(",")[0] and record["ts"].endswith("Z")
    outs = [r for r in records if r["level"] == "raw"]
    assert {r["direction"] for r in outs} == {"in", "out"}
    assert all(len(bytes.fromhex(r["hex"])) == r["bytes"] for r in outs)
    commands = [r for r in records if r["level"] == "command"]
    assert all("duration_ms" in r and r["reply"] for r in commands)


def test_the_trace_file_alone_records_commands_and_prints_nothing(
        image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "run.trace.jsonl"
    chip, expected = EXCERPTS["uart,/dev/ttyUSB0"]
    assert _flash(image, "uart,/dev/ttyUSB0", chip, tmp_path, "--trace-file", str(trace)) == 0
    assert " → " not in capsys.readouterr().err
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert {r["level"] for r in records} == {"command"}
    lines = [" ".join(p for p in (r["command"], r.get("detail", "")) if p) + " → " + r["reply"]
             for r in records]
    _in_order(expected, lines)


def test_run_takes_verbose_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parent.parent.parent
    assert main(["run", str(root / "manifests" / "uart-f103.yaml"), "--time-scale", "0", "-v",
                 "--log-file", str(tmp_path / "run.jsonl")]) == 0
    assert "blue-pill: Write Memory (0x31) 0x08000000 256 B → ACK" in capsys.readouterr().err


def test_without_verbose_no_trace_is_formatted(image: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a trace record was made with tracing off")

    monkeypatch.setattr(Trace, "command", refuse)
    monkeypatch.setattr(Trace, "transfer", refuse)
    for link, (chip, _) in EXCERPTS.items():
        assert _flash(image, link, chip, tmp_path / link.partition(",")[0], "-q") == 0
    assert Tracing(0).trace_for("d", "l", "k") is NO_TRACE
    assert not NO_TRACE.commands and not NO_TRACE.raw
