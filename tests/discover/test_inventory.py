"""``discover --write``: links added and marked by text splicing; comments and order survive."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from runner.cli import main
from runner.compiler import compile_plan
from runner.discover import discover, inventory_links
from runner.inventory import ADDED, GONE, sync_inventory
from runner.launch import usb_bench
from runner.manifest import load_manifest

DATA = Path(__file__).resolve().parent / "data"
BENCH = DATA / "bench.yaml"


@pytest.fixture
def station(tmp_path: Path) -> Path:
    path = tmp_path / "station-3.yaml"
    shutil.copy(DATA / "station.yaml", path)
    return path


def write(path: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["discover", "--simulate", str(BENCH), "--write", str(path), *extra]) == 0
    return capsys.readouterr().out


def test_write_adds_new_links_marks_gone_ones_and_keeps_the_rest(
        station: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = station.read_text()
    out = write(station, capsys=capsys)
    after = station.read_text()
    assert out.startswith(f"--- {station}\n+++ {station}\n")
    assert "+  stlink-351967: {kind: stlink, serial: \"483F6E066772574857351967\"}" in out
    # Every line the user wrote is still there, in order, comments included.
    kept = [line for line in after.splitlines() if GONE not in line]
    original = [line for line in before.splitlines() if "probe-gone" not in line]
    assert [line for line in kept if line in original] == original
    assert "  probe-a: {kind: stlink, serial: \"066DFF485550755187121723\"}   # left" in after
    assert f"  probe-gone:  {GONE}" in after
    links = yaml.safe_load(after)["transports"]
    # DFU boards sharing a serial and the clone probe are selected by port path.
    assert links["dfu-1-3"] == {"kind": "dfu", "port-path": "1-3"}
    assert links["stlink-1-4-2"] == {"kind": "stlink", "port-path": "1-4.2"}
    assert list(links)[:3] == ["probe-a", "probe-gone", "dfu-c"]
    assert after.count(ADDED) == 1


def test_second_run_is_a_no_op(station: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(station, capsys=capsys)
    first = station.read_text()
    out = write(station, capsys=capsys)
    assert "already in sync" in out
    assert station.read_text() == first


def test_dry_run_prints_the_diff_and_writes_nothing(
        station: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = station.read_text()
    out = write(station, "--dry-run", capsys=capsys)
    assert "+  # found by flashrunner discover" in out
    assert station.read_text() == before


def test_prune_removes_the_gone_link_and_only_it(
        station: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(station, capsys=capsys)
    out = write(station, "--prune", capsys=capsys)
    assert "-  probe-gone:" in out
    text = station.read_text()
    assert "probe-gone" not in text and "0671FF" not in text
    assert "# the Nucleo on the left" in text and "# end of the station file" in text
    assert write(station, "--prune", capsys=capsys).endswith("nothing to change\n")


def test_a_link_whose_device_returns_loses_its_mark(tmp_path: Path) -> None:
    path = tmp_path / "station.yaml"
    path.write_text("transports:\n"
                    f"  probe-a: {{kind: stlink, serial: \"066DFF485550755187121723\"}}  {GONE}\n")
    plan = compile_plan(load_manifest(BENCH), simulate=True)
    with usb_bench(plan) as control:
        result = discover(control.usb_backend, links=inventory_links(path))
    change = sync_inventory(path, result)
    assert GONE not in path.read_text()
    assert change.written


def test_a_file_without_transports_gets_a_section(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "new.yaml"
    path.write_text("# a new station\n")
    write(path, capsys=capsys)
    data = yaml.safe_load(path.read_text())
    assert set(data["transports"]) == {"dfu-1-2", "dfu-1-3", "stlink-121723", "stlink-1-4-2",
                                       "stlink-351967", "uart-1-4-4", "can0", "i2c-1"}
    assert path.read_text().startswith("# a new station\n")


def test_flow_style_transports_are_refused_with_the_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text("name: x\ntransports: {a: {kind: stlink, serial: X}}\n")
    assert main(["discover", "--simulate", str(BENCH), "--write", str(path)]) == 2
    assert f"{path}:2: transports is written in flow style" in capsys.readouterr().err
    assert path.read_text() == "name: x\ntransports: {a: {kind: stlink, serial: X}}\n"


BY_PATH = "/dev/serial/by-path/pci-0000:00:14.0-usb-0:4.4:1.0-port0"


def test_write_adds_links_for_unbound_serial_i2c_and_can_adapters(
        station: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = station.read_text()
    shown = write(station, "--dry-run", capsys=capsys)
    assert f'+  uart-1-4-4: {{kind: uart, port: "{BY_PATH}"}}\n' in shown
    assert station.read_text() == before
    write(station, capsys=capsys)
    text = station.read_text()
    links = yaml.safe_load(text)["transports"]
    # The FT232R by its by-path name (stable; ttyUSB0 is not), the plain I2C bus, can0.
    assert links["uart-1-4-4"] == {"kind": "uart", "port": BY_PATH}
    assert links["i2c-1"] == {"kind": "i2c", "bus": 1}
    assert links["can0"] == {"kind": "can", "interface": "socketcan", "channel": "can0"}
    # Not added: probe a's VCP (its probe's link is the bench position), the SMBus-only bus.
    assert "/dev/ttyACM0" not in text and "4.1:1.2" not in text
    assert "bus: 5" not in text and "i2c-5" not in text
    # The block's comment says what discovery could not know.
    block = text[text.index(ADDED):]
    assert "  # uart links: set boot0/reset (rts, dtr or a GPIO line) for the ROM's entry\n" \
        in block
    assert "  # i2c links: set address unless the part's chip data has it (AN2606)" in block
    assert "  # can links: run the interface at 125 kbit/s (AN3154)" in block
    assert all(len(line) <= 100 for line in text.splitlines())
    # Second run: every adapter is bound to its new link, nothing changes.
    assert write(station, capsys=capsys).endswith("already in sync, nothing to change\n")
    # The links satisfy their kinds' schemas: a product using them loads.
    product = tmp_path / "product.yaml"
    product.write_text(f"manifest: 1\nname: p\ninclude: [{station.name}]\n"
                       "recipes: {check: [{erase: {scope: mass}}]}\n"
                       "devices:\n"
                       "  f: {chip: stm32f103rb, transport: uart-1-4-4, recipe: check}\n"
                       "  g: {chip: stm32g071rb, transport: i2c-1, recipe: check}\n"
                       "  h: {chip: stm32f446re, transport: can0, recipe: check}\n")
    devices = load_manifest(product).devices
    assert {name: devices[name].link.link for name in "fgh"} == \
        {"f": "uart-1-4-4", "g": "i2c-1", "h": "can0"}


def test_adapters_the_inventory_already_binds_are_not_added(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bench.yaml"
    shutil.copy(BENCH, path)
    write(path, capsys=capsys)
    added = yaml.safe_load(path.read_text())["transports"]
    kinds = [spec["kind"] for name, spec in added.items()
             if name not in yaml.safe_load(BENCH.read_text())["transports"]]
    assert not [k for k in kinds if k in ("uart", "i2c", "can")]  # serial-f, i2c-g, can-h
    assert "uart links:" not in path.read_text()


def test_a_gone_adapter_link_is_marked_and_pruned(
        station: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(station, capsys=capsys)
    # The same bench without the FT232R behind the hub.
    bench = tmp_path / "bench.yaml"
    ft232r = '    ttyUSB0: {port-path: "1-4.4", serial: "A10K3XYZ"}  # board f\'s FT232R, behind ' \
        'the hub\n'
    serial_f = f'  serial-f: {{kind: uart, port: "{BY_PATH}"}}\n'
    device_f = "  f: {chip: stm32f103rb, transport: serial-f, recipe: check}\n"
    bench.write_text(BENCH.read_text().replace(ft232r, "").replace(serial_f, "")
                     .replace(device_f, ""))
    assert "ttyUSB0" not in bench.read_text()
    args = ["discover", "--simulate", str(bench), "--write", str(station)]
    assert main(args) == 0
    assert f'  uart-1-4-4: {{kind: uart, port: "{BY_PATH}"}}  {GONE}' in station.read_text()
    assert main([*args, "--prune"]) == 0
    assert "uart-1-4-4" not in station.read_text() and "i2c-1" in station.read_text()
    capsys.readouterr()
