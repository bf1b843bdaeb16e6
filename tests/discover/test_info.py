"""``flashrunner info`` on simulated chips: every field, RDP 1, and a chip that is not the part."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from runner.cli import main
from runner.compiler import compile_plan
from runner.info import ChipInfo, chip_info, plan_endpoints
from runner.launch import simulation_world
from runner.manifest import load_manifest
from transports.base import LinkRequest
from transports.chips import chip_database
from transports.sim.chip import SimChip

DATA = Path(__file__).resolve().parent / "data"
BENCH = DATA / "bench.yaml"


def info_json(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> dict[str, object]:
    assert main(["info", "--json", *args]) == code
    reports = json.loads(capsys.readouterr().out)
    assert len(reports) == 1
    report: dict[str, object] = reports[0]
    return report


@pytest.mark.parametrize("link, part, dev_id, version_key", [
    ("stlink", "stm32f411re", "0x431", "probe"),
    ("dfu", "stm32f411re", "0x431", "bootloader_version"),
    ("uart,/dev/ttyUSB0,boot0=rts,reset=dtr", "stm32f103rb", "0x410", "bootloader_version"),
])
def test_info_identifies_the_chip_on_each_link(capsys: pytest.CaptureFixture[str], link: str,
                                               part: str, dev_id: str, version_key: str) -> None:
    report = info_json(capsys, "--link", link, "--chip", part, "--simulate")
    identity = report["identity"]
    assert isinstance(identity, dict)
    assert identity["dev_id"] == dev_id
    assert len(str(identity["uid"])) == 24
    assert identity["flash_size"] == chip_database().part(part).flash.size
    assert identity["rdp_level"] == 0
    assert identity[version_key]
    assert report["parts"] and report["parts"][0] == part  # type: ignore[index]
    assert report["mismatch"] is None
    assert report["option_bytes"]["rdp_level"] == 0  # type: ignore[index]


def test_info_of_a_manifest_device_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(BENCH), "a", "--simulate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("a on link probe-a (stlink, expected stm32f411re)\n")
    assert "  chip            STM32F411RE, " in out
    assert "(DEV_ID 0x431, family f4)" in out
    assert "  rdp             level 0" in out
    assert "  option bytes    EDAAFF0F (user=0x7, bor_lev=0x3, nwrp=0xFFF)" in out
    assert "probe port      1-4.1" in out


def rdp1_manifest(tmp_path: Path, link: str) -> Path:
    text = (DATA / "one.yaml").read_text().replace("LINK", link)
    path = tmp_path / "rdp1.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("link", ["{kind: uart, port: /dev/ttyUSB0}", "{kind: dfu}",
                                  "{kind: stlink}"])
def test_an_rdp1_chip_reports_what_it_can(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          link: str) -> None:
    report = info_json(capsys, str(rdp1_manifest(tmp_path, link)), "board")
    identity = report["identity"]
    assert isinstance(identity, dict)
    assert identity["dev_id"] == "0x431" and identity["rdp_level"] == 1
    assert any("readout protection level 1" in str(n) for n in report["notes"])  # type: ignore[attr-defined]


def substituted(manifest: Path, device: str, part: str) -> ChipInfo:
    plan = compile_plan(load_manifest(manifest), simulate=True)
    world = simulation_world(plan)
    world.substitute(device, SimChip(chip_database().part(part)))
    try:
        with plan_endpoints(plan, world) as endpoints:
            return chip_info(next(d for d in plan.devices if d.device == device), endpoints)
    finally:
        world.close()


def test_a_chip_other_than_the_manifest_part_is_flagged_and_named(tmp_path: Path) -> None:
    report = substituted(rdp1_manifest(tmp_path, "{kind: uart, port: /dev/ttyUSB0}")
                         .with_name("rdp1.yaml"), "board", "stm32g071rb")
    assert report.mismatch is not None
    assert "names stm32f411re (DEV_ID 0x431) but the chip reports DEV_ID 0x460" in report.mismatch
    assert "stm32g071rb" in report.parts
    assert report.identity is not None and report.identity.dev_id == 0x460
    # Read again as the part it is: the UID comes from the G0's address.
    assert len(report.identity.uid) == 24


def test_a_stlink_chip_of_another_line_is_found_and_flagged(tmp_path: Path) -> None:
    report = substituted(rdp1_manifest(tmp_path, "{kind: stlink}"), "board", "stm32g071rb")
    assert report.mismatch is not None and "0x460" in report.mismatch
    assert report.family == "g0"


def test_a_dfu_chip_the_link_refuses_is_flagged_not_an_error(tmp_path: Path) -> None:
    report = substituted(rdp1_manifest(tmp_path, "{kind: dfu}"), "board", "stm32f405rg")
    assert report.mismatch is not None and "1024 KiB" in report.mismatch


def test_mismatch_exit_code_and_flag_line(tmp_path: Path) -> None:
    report = substituted(rdp1_manifest(tmp_path, "{kind: stlink}"), "board", "stm32f405rg")
    from runner.info import render_text

    text = render_text(report)
    assert "! chip differs: the manifest names stm32f411re" in text
    assert "STM32F405" in text


def test_info_without_target_or_link_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 2
    assert "info needs MANIFEST DEVICE, or --link" in capsys.readouterr().err
    assert main(["info", "--link", "stlink", "--simulate"]) == 2
    assert "needs --chip" in capsys.readouterr().err
    assert main(["info", str(BENCH), "nope", "--simulate"]) == 2
    assert "no device nope (devices: a, b, c, d, e, f, g, h)" in capsys.readouterr().err


@pytest.mark.parametrize("device, link, part", [("f", "serial-f (uart", "STM32F103RB"),
                                                ("g", "i2c-g (i2c", "STM32G071RB"),
                                                ("h", "can-h (can", "STM32F446RE")])
def test_info_works_on_the_benchs_uart_i2c_and_can_links(
        capsys: pytest.CaptureFixture[str], device: str, link: str, part: str) -> None:
    # The bench also simulates these links' adapters (discover lists them): info is unchanged.
    assert main(["info", str(BENCH), device, "--simulate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{device} on link {link}, expected {part.lower()})\n")
    assert f"  chip                 {part}, " in out


@pytest.mark.parametrize("link, why", [
    ("i2c,bus=1", "no I2C bootloader address is known for stm32f072rb (AN2606)"),
    ("can,interface=virtual,channel=can0", "stm32f072rb's ROM has no CAN bootloader (AN2606)"),
])
def test_a_link_the_parts_rom_cannot_answer_is_refused_naming_the_links_it_offers(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, link: str,
        why: str) -> None:
    monkeypatch.setattr("runner.info._read", opened)
    assert main(["info", "--link", link, "--chip", "stm32f072rb", "--simulate"]) == 2
    captured = capsys.readouterr()
    assert why in captured.err
    assert "use a link its ROM offers: uart, dfu (or stlink, over SWD)" in captured.err
    assert "chip differs" not in captured.out


def opened(*_: object) -> None:
    raise AssertionError("a link was opened")


def one_board(tmp_path: Path, link: str, part: str = "stm32f072rb") -> Path:
    path = rdp1_manifest(tmp_path, link)
    path.write_text(path.read_text().replace("{rdp: 1}", "{}").replace("stm32f411re", part))
    return path


def test_a_manifest_device_whose_rom_has_no_i2c_address_is_refused_before_opening(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("runner.info._read", opened)
    assert main(["info", str(one_board(tmp_path, "{kind: i2c, bus: 1}")), "board"]) == 2
    assert "device board on link link: no I2C bootloader address is known for stm32f072rb" \
        in capsys.readouterr().err


@pytest.mark.parametrize("link, part", [("{kind: i2c, bus: 1, address: 0x3B}", "stm32f072rb"),
                                        ("{kind: uart, port: /dev/ttyUSB0}", "stm32f072rb"),
                                        ("{kind: can, interface: virtual, channel: c}",
                                         "stm32f446re")])
def test_the_simulated_chip_is_the_manifests_part_and_is_reported_without_a_mismatch(
        tmp_path: Path, link: str, part: str) -> None:
    plan = compile_plan(load_manifest(one_board(tmp_path, link, part)), simulate=True)
    world = simulation_world(plan)
    try:
        with plan_endpoints(plan, world) as endpoints:
            assert world.chips["board"].chip.part == part  # before anything is opened
            report = chip_info(plan.devices[0], endpoints)
    finally:
        world.close()
    assert report.mismatch is None and report.parts[0] == part
    assert report.identity is not None and len(report.identity.uid) == 24


def test_info_link_chip_reports_that_part_over_i2c(capsys: pytest.CaptureFixture[str]) -> None:
    report = info_json(capsys, "--link", "i2c,bus=1,address=0x3B", "--chip", "stm32f072rb",
                       "--simulate")
    assert report["mismatch"] is None and report["parts"][0] == "stm32f072rb"  # type: ignore[index]


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The parts info opens the link as, in order."""
    import runner.info

    parts: list[str] = []
    read = runner.info._read

    def counted(request: LinkRequest) -> object:
        parts.append(request.chip.part)
        return read(request)

    monkeypatch.setattr("runner.info._read", counted)
    return parts


def test_a_link_refusing_its_settings_is_the_error_and_no_other_family_is_tried(
        capsys: pytest.CaptureFixture[str], asked: list[str]) -> None:
    assert main(["info", "--link", "stlink,min-voltage=3.6", "--chip", "stm32f411re",
                 "--simulate"]) != 0
    assert "chip differs" not in capsys.readouterr().out
    assert asked == ["stm32f411re"]


def test_a_read_faulting_at_the_parts_uid_address_tries_the_other_families(
        tmp_path: Path, asked: list[str]) -> None:
    report = substituted(rdp1_manifest(tmp_path, "{kind: stlink}"), "board", "stm32g071rb")
    assert report.family == "g0" and asked[0] == "stm32f411re" and len(asked) > 1


def test_a_long_option_byte_block_is_printed_in_rows_that_fit_100_columns(
        capsys: pytest.CaptureFixture[str]) -> None:
    link = ["--link", "uart,/dev/ttyUSB0", "--chip", "stm32g071rb", "--simulate"]
    raw = str(info_json(capsys, *link)["option_bytes"]["raw"]).upper()  # type: ignore[index]
    assert len(raw) == 256  # the G0's 128-byte block; JSON keeps it in one string
    assert main(["info", *link]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100
    start = next(i for i, line in enumerate(lines) if line.startswith("  option bytes"))
    rows = [line[line.index("+0x"):] for line in lines[start:start + 8]]
    assert [row.split()[0] for row in rows] == [f"+0x{16 * n:02X}" for n in range(8)]
    assert "".join("".join(row.split()[1:]) for row in rows) == raw
    assert rows[0].split()[1] == raw[:8] and "bootloader" in lines[start + 8]


def test_decoded_fields_of_a_long_block_wrap_under_it() -> None:
    from runner.info import render_text
    from transports.base import ChipIdentity, OptionBytes

    fields = {f"field_{n}": n for n in range(30)}
    info = ChipInfo(device="board", link="l", kind="stlink", expected=None,
                    identity=ChipIdentity(dev_id=0x460), parts=("stm32g071rb",),
                    option_bytes=OptionBytes(raw=bytes(range(128)), rdp_level=0,
                                             fields=fields))
    lines = render_text(info).splitlines()
    assert max(len(line) for line in lines) <= 100
    text = " ".join(line.strip() for line in lines)
    assert "(field_0=0x0, field_1=0x1," in text and "field_29=0x1D)" in text
    # A narrow key column leaves room for 8 words a row.
    assert "+0x60  " + " ".join(bytes(range(n, n + 4)).hex().upper()
                                for n in range(0x60, 0x80, 4)) in text
    # A short block stays on its line, its fields beside it.
    short = replace(info, option_bytes=OptionBytes(raw=b"\xaa\x55", rdp_level=0,
                                                   fields={"user": 7}))
    assert "  option bytes  AA55 (user=0x7)" in render_text(short)
