"""The one-line commands (flash, read, erase, verify, reset) end to end, in simulation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from runner.cli import main
from runner.launch import execute
from runner.oneline import OneLine, parse_image, parse_link, prepare
from transports.sim.world import SimulationWorld

ROOT = Path(__file__).resolve().parent.parent.parent
IMAGES = ROOT / "manifests" / "images"

#: One chip per link kind whose ROM (or probe) reaches it, and the link's options.
LINKS = {
    "stlink": ("stm32f103c8", "stlink"),
    "uart": ("stm32f103cb", "uart,port=/dev/ttyUSB0,boot0=rts,reset=dtr"),
    "i2c": ("stm32g071rb", "i2c,bus=1"),
    "can": ("stm32l476rg", "can,interface=socketcan,channel=can0"),
    "dfu": ("stm32f411re", "dfu"),
    "sim": ("stm32f103c8", "sim"),
}
APP = f"{IMAGES / 'uart-f103-app.bin'}@0x08000000"


def records(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def one_log(folder: Path) -> Path:
    (log,) = folder.glob("*.jsonl")
    return log


def run(*args: str, folder: Path) -> tuple[int, list[dict[str, object]]]:
    code = main([*args, "--simulate", "--time-scale", "0", "--quiet",
                 "--log-file", str(folder / "{run_id}.jsonl")])
    return code, records(one_log(folder))


def finished_steps(log: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(r["action"], r["outcome"]) for r in log if r["event"] == "step.finished"]


@pytest.mark.parametrize("kind", sorted(LINKS))
def test_flash_erases_writes_verifies_and_resets_on_every_link(kind: str,
                                                                 tmp_path: Path) -> None:
    chip, link = LINKS[kind]
    code, log = run("flash", APP, "--chip", chip, "--link", link, "--reset", folder=tmp_path)
    assert code == 0
    assert finished_steps(log) == [("connect", "ok"), ("erase", "ok"), ("write", "ok"),
                                   ("verify", "ok"), ("reset", "ok")]
    started = log[0]
    assert started["event"] == "run.started" and started["manifest"] == "flash"
    assert log[-1]["event"] == "run.finished" and log[-1]["exit_code"] == 0


@pytest.mark.parametrize("kind", sorted(LINKS))
def test_read_saves_flash_on_every_link(kind: str, tmp_path: Path) -> None:
    chip, link = LINKS[kind]
    out = tmp_path / "out" / "flash.bin"
    # The whole flash by default; a region elsewhere keeps the slow links quick.
    region = () if kind == "stlink" else ("--size", "4096")
    code, log = run("read", str(out), "--chip", chip, "--link", link, *region,
                    folder=tmp_path)
    assert code == 0
    (read,) = [r for r in log if r["event"] == "step.finished" and r["action"] == "read"]
    assert read["bytes"] == out.stat().st_size == (64 * 1024 if kind == "stlink" else 4096)
    assert read["file"] == str(out.resolve())
    assert read["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", sorted(LINKS))
def test_erase_and_reset_on_every_link(kind: str, tmp_path: Path) -> None:
    chip, link = LINKS[kind]
    code, log = run("erase", "--chip", chip, "--link", link, folder=tmp_path / "erase")
    assert code == 0
    assert finished_steps(log) == [("connect", "ok"), ("erase", "ok")]
    erase = [r for r in log if r["event"] == "step.finished"][-1]
    assert erase["scope"] == "mass"
    code, log = run("reset", "--chip", chip, "--link", link, folder=tmp_path / "reset")
    assert code == 0
    assert finished_steps(log) == [("connect", "ok"), ("reset", "ok")]


@pytest.mark.parametrize("kind", sorted(LINKS))
def test_verify_compares_and_writes_nothing(kind: str, tmp_path: Path) -> None:
    chip, link = LINKS[kind]
    # A fresh simulated chip is erased: the image is not there.
    code, log = run("verify", APP, "--chip", chip, "--link", link, folder=tmp_path)
    assert code == 1
    assert finished_steps(log) == [("connect", "ok"), ("verify", "failed")]
    assert not [r for r in log if r.get("action") in ("write", "erase")]


def test_read_refuses_to_overwrite_without_force(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "backup.hex"
    out.write_text("precious")
    code = main(["read", str(out), "--chip", "stm32f103c8", "--link", "stlink", "--simulate",
                 "--log-file", str(tmp_path / "logs" / "{run_id}.jsonl")])
    assert code == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == "precious"
    assert not (tmp_path / "logs").exists()   # refused before anything ran
    code, _ = run("read", str(out), "--chip", "stm32f103c8", "--link", "stlink", "--force",
                  "--size", "1024", folder=tmp_path / "forced")
    assert code == 0
    assert out.read_text().startswith(":")   # Intel HEX, by its suffix


def test_read_of_a_region_saves_that_region(tmp_path: Path) -> None:
    out = tmp_path / "region.bin"
    code, log = run("read", str(out), "--chip", "stm32f103c8", "--link", "stlink",
                    "--address", "0x08000400", "--size", "0x100", folder=tmp_path / "logs")
    assert code == 0
    assert out.read_bytes() == b"\xff" * 256
    (read,) = [r for r in log if r.get("action") == "read" and r["event"] == "step.finished"]
    assert read["ranges"] == [["0x08000400", "0x08000500"]]


def test_read_outside_flash_is_refused_exit_2(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["read", str(tmp_path / "x.bin"), "--chip", "stm32f103c8", "--link", "stlink",
                 "--simulate", "--address", "0x08010000", "--size", "16",
                 "--log-file", str(tmp_path / "{run_id}.jsonl")])
    assert code == 2
    assert "outside stm32f103c8's flash" in capsys.readouterr().err


def _oneline(command: str, steps: tuple[dict[str, object], ...], images: tuple[str, ...] = ()
             ) -> OneLine:
    return OneLine(command=command, part="stm32f103c8", link=parse_link("stlink"),
                   steps=steps, images=tuple(parse_image(i) for i in images), simulate=True)


def test_read_flash_verify_round_trip_on_one_chip(tmp_path: Path) -> None:
    backup = tmp_path / "backup.hex"
    flash_steps = ({"erase": {"scope": "used"}}, {"write": "*"}, {"verify": {}})
    with SimulationWorld(time_scale=0) as world:
        def do(request: OneLine, name: str) -> int:
            plan = prepare(request, log_file=tmp_path / f"{name}.jsonl")
            return execute(plan, world=world).exit_code

        assert do(_oneline("flash", flash_steps, (APP,)), "flash-app") == 0
        assert do(_oneline("read", ({"read": {"file": str(backup)}},)), "read") == 0
        assert do(_oneline("erase", ({"erase": {"scope": "mass"}},)), "erase") == 0
        verify = ({"verify": {"images": "*"}},)
        assert do(_oneline("verify", verify, (APP,)), "verify-erased") == 1
        assert do(_oneline("flash", flash_steps, (str(backup),)), "flash-backup") == 0
        assert do(_oneline("verify", verify, (APP,)), "verify-app") == 0
        assert do(_oneline("verify", verify, (str(backup),)), "verify-backup") == 0
    app = (IMAGES / "uart-f103-app.bin").read_bytes()
    from runner.images import parse_image as parse_file

    memory = parse_file(backup.read_bytes(), "ihex", str(backup))
    assert memory.size == 64 * 1024
    assert memory.bytes_at(0x08000000, len(app)) == app


def test_print_manifest_is_a_valid_manifest(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flash", APP, "--chip", "STM32F103C8T6", "--link", "uart,/dev/ttyUSB1,baud=57600",
                 "--reset", "--print-manifest"]) == 0
    captured = capsys.readouterr()
    assert "STM32F103C8T6 is stm32f103c8" in captured.err
    text = captured.out
    assert "address: 0x08000000" in text
    assert "uart: {kind: uart, port: /dev/ttyUSB1, baud: 57600}" in text
    saved = tmp_path / "start.yaml"
    saved.write_text(text)
    assert main(["validate", str(saved)]) == 0


def test_the_manifest_a_command_ran_is_kept_beside_its_log(tmp_path: Path) -> None:
    code, log = run("erase", "--chip", "stm32f103c8", "--link", "stlink", folder=tmp_path)
    assert code == 0
    manifest = Path(str(log[0]["manifest_path"]))
    assert manifest.name == one_log(tmp_path).name + ".manifest.yaml"
    assert hashlib.sha256(manifest.read_bytes()).hexdigest() == log[0]["manifest_sha256"]


@pytest.mark.parametrize(("text", "kind", "options"), [
    ("stlink", "stlink", {}),
    ("stlink,serial=0123", "stlink", {"serial": "0123"}),
    ("uart,port=/dev/ttyUSB0,boot0=rts,reset=dtr,baud=57600", "uart",
     {"port": "/dev/ttyUSB0", "boot0": "rts", "reset": "dtr", "baud": 57600}),
    ("uart,/dev/ttyACM0", "uart", {"port": "/dev/ttyACM0"}),
    ("uart,port=x,invert-boot0=true", "uart", {"port": "x", "invert-boot0": True}),
    ("i2c,bus=3,address=0x51", "i2c", {"bus": 3, "address": 0x51}),
    ("dfu,alt=0", "dfu", {"alt": 0}),
])
def test_link_text_is_typed_by_the_kinds_options(text: str, kind: str,
                                                 options: dict[str, object]) -> None:
    link = parse_link(text)
    assert (link.kind, dict(link.options)) == (kind, options)


@pytest.mark.parametrize("text", ["", "warp", "uart,port=a,port=b", "stlink,abc,def",
                                  "i2c,bus=1,address=zz"])
def test_a_bad_link_is_exit_2(text: str, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["erase", "--chip", "stm32f103c8", "--link", text, "--simulate",
                 "--log-file", str(tmp_path / "{run_id}.jsonl")])
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_an_unknown_chip_names_near_misses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["erase", "--chip", "stm32f103x9", "--link", "stlink", "--simulate"]) == 2
    assert "did you mean" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "path", "address"), [
    ("fw.bin@0x08004000", "fw.bin", 0x08004000),
    ("fw.hex", "fw.hex", None),
    ("builds/v1@2/fw.hex", "builds/v1@2/fw.hex", None),
    ("fw.bin@134217728", "fw.bin", 0x08000000),
])
def test_image_arguments(text: str, path: str, address: int | None) -> None:
    image = parse_image(text)
    assert (str(image.path), image.address) == (path, address)


def test_flash_skip_unchanged_rewrites_nothing_the_second_time(tmp_path: Path) -> None:
    steps = ({"erase": {"scope": "used"}}, {"write": {"images": "*", "skip-unchanged": True}},
             {"verify": {}})
    with SimulationWorld(time_scale=0) as world:
        logs = []
        for attempt in range(2):
            log = tmp_path / f"flash-{attempt}.jsonl"
            assert execute(prepare(_oneline("flash", steps, (APP,)), log_file=log),
                           world=world).exit_code == 0
            logs.append(records(log))
    writes = [[r for r in log if r["event"] == "step.finished" and r["action"] == "write"][0]
              for log in logs]
    assert writes[0]["units_rewritten"] > 0
    assert writes[1]["units_rewritten"] == 0 and writes[1]["bytes_written"] == 0


def test_flash_command_passes_skip_unchanged_to_the_write(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flash", APP, "--chip", "stm32f103c8", "--link", "stlink",
                 "--skip-unchanged", "--print-manifest"]) == 0
    assert "- write: {images: [uart-f103-app], skip-unchanged: true}" in capsys.readouterr().out
