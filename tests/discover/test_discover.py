"""``flashrunner discover`` on simulated benches: what is found, what is bound, what is flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli import main
from runner.compiler import compile_plan
from runner.discover import Discovery, Found, clone_pattern, discover_host, inventory_links
from runner.launch import usb_bench
from runner.manifest import load_manifest

DATA = Path(__file__).resolve().parent / "data"
BENCH = DATA / "bench.yaml"
GOLDEN = DATA / "bench.discover.json"


def walk(manifest: Path = BENCH, *, bind: bool = True) -> Discovery:
    plan = compile_plan(load_manifest(manifest), simulate=True)
    links = inventory_links(manifest) if bind else []
    with usb_bench(plan) as control:
        return discover_host(control, links=links)


def by_path(result: Discovery) -> dict[str, Found]:
    """The USB devices (not the adapters on their interfaces) by port path."""
    return {found.port_path: found for found in result.devices
            if found.kind in ("stlink", "dfu", "hub")}


def by_node(result: Discovery) -> dict[str, Found]:
    """The adapters by node (``/dev/ttyACM0``, ``/dev/i2c-1``, ``can0``)."""
    return {found.node: found for found in result.devices if found.node}


def test_probes_behind_a_hub_are_keyed_by_port_path() -> None:
    found = by_path(walk())
    probes = {path: f for path, f in found.items() if f.kind == "stlink"}
    assert sorted(probes) == ["1-4.1", "1-4.2", "1-4.3"]
    first = probes["1-4.1"]
    assert (first.hub, first.hub_port) == ("1-4", 1)
    assert first.usb_id == "0483:374b"
    assert first.model == "ST-Link/V2-1"
    assert first.firmware == "V2J40M27"
    assert first.target_voltage == pytest.approx(3.3, abs=0.01)


def test_hubs_report_their_power_switching_and_devices_their_hub() -> None:
    found = by_path(walk())
    hub, ganged = found["1-4"], found["1-5"]
    assert (hub.kind, hub.power_switching, hub.hub_ports) == ("hub", "per-port", 4)
    assert (ganged.kind, ganged.power_switching) == ("hub", "ganged")
    assert found["1-4.2"].hub_power_switching == "per-port"
    assert found["1-2"].hub_power_switching is None  # a root port


def test_binary_v2_serial_is_normalised_as_the_link_compares_it() -> None:
    probe = by_path(walk())["1-4.3"]
    assert probe.serial == "483F6E066772574857351967"
    assert probe.link == "probe-e"


def test_dfu_boards_show_product_and_decoded_regions() -> None:
    board = by_path(walk())["1-2"]
    assert board.kind == "dfu"
    assert board.product == "STM32  BOOTLOADER"
    flash = board.regions[0]
    assert (flash.name, flash.start, flash.size) == ("Internal Flash", 0x08000000, 512 * 1024)
    assert flash.sectors == 8
    assert [r.name for r in board.regions][1:3] == ["Option Bytes", "OTP Memory"]


def test_two_dfu_boards_with_one_serial_are_flagged_not_guessed() -> None:
    result = walk()
    collisions = [f for f in result.flags if f.problem == "dfu-serial-collision"]
    assert len(collisions) == 1
    assert collisions[0].port_paths == ("1-2", "1-3")
    # Bound by port path, each board keeps its own link.
    found = by_path(result)
    assert found["1-2"].link == "dfu-c"
    assert found["1-3"].link == "dfu-d"


def test_clone_probe_serial_is_flagged() -> None:
    flags = [f for f in walk().flags if f.problem == "clone-serial"]
    assert [(f.serial, f.port_paths) for f in flags] == [
        ("303030303030303030303031", ("1-4.2",))]


def test_links_whose_device_is_gone_are_reported_missing() -> None:
    result = walk()
    assert [link.name for link in result.missing] == ["probe-gone"]


def test_without_inventory_nothing_is_bound() -> None:
    assert all(found.link is None for found in walk(bind=False).devices)


@pytest.mark.parametrize("serial, clone", [
    ("303030303030303030303031", True), ("000000000000", True), ("FFFFFFFFFFFFFFFFFFFFFFFF", True),
    ("ABABABABABABABAB", True), ("066DFF485550755187121723", False),
    ("2059346B5744", False), ("", False)])
def test_clone_patterns(serial: str, clone: bool) -> None:
    assert clone_pattern(serial) is clone


def test_one_serial_at_two_paths_is_flagged(tmp_path: Path) -> None:
    text = BENCH.read_text().replace('b: {quirks: {probe: v3, serial: "303030303030303030303031"}}',
                                     'b: {quirks: {probe: v3, serial: "066DFF485550755187121723"}}')
    manifest = tmp_path / "twins.yaml"
    manifest.write_text(text)
    flags = [f for f in walk(manifest).flags if f.problem == "serial-at-two-paths"]
    assert [f.port_paths for f in flags] == [("1-4.1", "1-4.2")]


def test_json_output_matches_the_golden_file(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["discover", "--json", "--simulate", str(BENCH), "--manifest", str(BENCH)])
    out = capsys.readouterr().out
    assert code == 1  # flags were raised
    # A deliberate change of the output: regenerate with
    # python3 -m runner discover --json --simulate BENCH --manifest BENCH > GOLDEN
    assert json.loads(out) == json.loads(GOLDEN.read_text())


def test_table_lists_devices_flags_and_missing_links(capsys: pytest.CaptureFixture[str]) -> None:
    main(["discover", "--simulate", str(BENCH), "--manifest", str(BENCH)])
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["PORT", "KIND", "VID:PID", "SERIAL", "HUB", "LINK",
                                           "DETAILS"]
    assert "1-4.1  stlink  0483:374b  066DFF485550755187121723  1-4 port 1 (per-port)" in out
    assert "USB hub; 4 ports; power switching per-port" in out
    assert "! 2 DFU devices share serial 2059346B5744 (at 1-2, 1-3)" in out
    assert "? link probe-gone (stlink, serial 0671FF3833554B3043164817): no such device" in out


def test_a_station_the_manifest_does_not_define_is_refused(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--station", "st-1", "--simulate", str(BENCH)]) == 2
    assert "--station st-1: no such station in" in capsys.readouterr().err
