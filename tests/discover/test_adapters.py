"""``flashrunner discover``'s USB-serial, I2C and CAN adapters, their simulation and bindings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runner.cli import main
from runner.compiler import compile_plan
from runner.discover import Discovery, Found, discover_host, from_json, inventory_links, render_json
from runner.errors import PlanError
from runner.launch import usb_bench
from runner.manifest import load_manifest
from runner.sysdevices import i2c_adapters, id_path, serial_adapters
from transports.power.sysfs import HostSysfs

DATA = Path(__file__).resolve().parent / "data"
BENCH = DATA / "bench.yaml"


def walk(bench: Path = BENCH, inventory: Path | None = BENCH) -> Discovery:
    plan = compile_plan(load_manifest(bench), simulate=True)
    links = inventory_links(inventory) if inventory is not None else []
    with usb_bench(plan) as control:
        return discover_host(control, links=links, read_firmware=False)


def node(result: Discovery, name: str) -> Found:
    (found,) = [f for f in result.devices if f.node == name]
    return found


def probe(result: Discovery, port_path: str) -> Found:
    (found,) = [f for f in result.devices if f.kind == "stlink" and f.port_path == port_path]
    return found


MANIFEST = """\
manifest: 1
name: adapters
simulate: true
simulation:
  time-scale: 0
{simulation}
transports:
{transports}
recipes:
  check:
    - erase: {{scope: mass}}
devices:
{devices}
"""


def manifest(tmp_path: Path, *, simulation: str = "", transports: str, devices: str,
             name: str = "adapters.yaml") -> Path:
    path = tmp_path / name
    path.write_text(MANIFEST.format(simulation=simulation, transports=transports,
                                    devices=devices))
    return path


# ------------------------------------------------------------------------------ the kinds


def test_a_probe_and_its_virtual_com_port_name_each_other() -> None:
    result = walk()
    vcp, stlink = node(result, "/dev/ttyACM0"), probe(result, "1-4.1")
    assert stlink.vcp == "/dev/ttyACM0"
    assert vcp.vcp_of == stlink.serial == "066DFF485550755187121723"
    assert (vcp.kind, vcp.port_path, vcp.usb_id, vcp.interface) == ("serial", "1-4.1",
                                                                     "0483:374b", 2)
    assert vcp.by_path == "/dev/serial/by-path/pci-0000:00:14.0-usb-0:4.1:1.2"
    assert vcp.by_id == \
        "/dev/serial/by-id/usb-STMicroelectronics_STM32_STLink_066DFF485550755187121723-if02"
    # The other probes have no VCP (a V2 has none; the V3's is not connected here).
    assert probe(result, "1-4.2").vcp is None


def test_the_vcp_pairing_is_in_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    main(["discover", "--simulate", str(BENCH), "--manifest", str(BENCH), "--no-firmware"])
    out = capsys.readouterr().out
    probe_line = next(line for line in out.splitlines() if line.startswith("1-4.1  stlink"))
    assert probe_line.endswith("VCP /dev/ttyACM0")
    assert "VCP of ST-Link/V2-1 066DFF485550755187121723 (link probe-a)" in out


def test_a_usb_serial_adapter_behind_a_hub_has_its_by_path_name() -> None:
    adapter = node(walk(), "/dev/ttyUSB0")
    assert (adapter.port_path, adapter.hub, adapter.hub_port) == ("1-4.4", "1-4", 4)
    assert adapter.hub_power_switching == "per-port"
    assert (adapter.usb_id, adapter.serial, adapter.product) == ("0403:6001", "A10K3XYZ",
                                                                 "FT232R USB UART")
    assert adapter.by_path == "/dev/serial/by-path/pci-0000:00:14.0-usb-0:4.4:1.0-port0"
    assert adapter.by_id == "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K3XYZ-if00-port0"
    assert adapter.vcp_of is None


def test_an_smbus_only_i2c_adapter_is_flagged_next_to_a_plain_one() -> None:
    result = walk()
    plain, smbus = node(result, "/dev/i2c-1"), node(result, "/dev/i2c-5")
    assert plain.plain_i2c is True and smbus.plain_i2c is False
    assert smbus.adapter_name == "SMBus I801 adapter at efa0"
    assert plain.functionality is not None and plain.functionality & 0x1
    (flag,) = [f for f in result.flags if f.problem == "smbus-only"]
    assert flag.node == "/dev/i2c-5"
    assert "cannot reach the ROM bootloader: needs plain I2C transfers" in flag.message


def test_a_can_interface_reports_its_state_and_its_usb_adapter() -> None:
    can = node(walk(), "can0")
    assert (can.kind, can.operstate, can.bitrate) == ("can", "up", None)  # not in sysfs
    assert can.usb_id == "1d50:606f" and can.port_path.startswith("3-")
    assert can.link == "can-h"


def test_a_bitrate_the_tree_shows_is_reported_and_a_virtual_interface_has_no_usb(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, simulation="  can:\n    vcan0: {virtual: true, bitrate: 500000, "
                                         "state: down}\n",
                    transports="  link: {kind: can, interface: socketcan, channel: can1}",
                    devices="  x: {chip: stm32f446re, transport: link, recipe: check}")
    result = walk(path, path)
    virtual, derived = node(result, "vcan0"), node(result, "can1")
    assert (virtual.port_path, virtual.bitrate, virtual.operstate) == ("", 500000, "down")
    assert derived.link == "link" and derived.bitrate is None
    main(["discover", "--simulate", str(path), "--no-firmware"])
    out = capsys.readouterr().out
    assert "vcan0 down; bitrate 500000" in out
    assert "can1 up; bitrate unknown" in out


def test_a_links_adapters_are_simulated_without_yaml_and_others_with_nothing_attached(
        tmp_path: Path) -> None:
    path = manifest(tmp_path, simulation="  serial:\n    ttyUSB1: {}\n  i2c:\n    \"7\": {}\n"
                                         "    \"8\": {port-path: \"1-5.1\"}\n",
                    transports="  uart: {kind: uart, port: /dev/ttyUSB3}\n"
                               "  bus: {kind: i2c, bus: /dev/i2c-2}",
                    devices="  x: {chip: stm32f103rb, transport: uart, recipe: check}\n"
                            "  y: {chip: stm32g071rb, transport: bus, recipe: check}")
    result = walk(path, path)
    uart, spare = node(result, "/dev/ttyUSB3"), node(result, "/dev/ttyUSB1")
    assert (uart.link, uart.usb_id, uart.hub) == ("uart", "0403:6001", "usb3")
    assert spare.link is None and spare.port_path != uart.port_path
    assert node(result, "/dev/i2c-2").link == "bus"
    assert node(result, "/dev/i2c-7").plain_i2c is True
    bridge = node(result, "/dev/i2c-8")  # a USB-to-I2C bridge: on USB, its interface the parent
    assert (bridge.usb_id, bridge.port_path, bridge.hub, bridge.parent) == (
        "10c4:ea90", "1-5.1", "1-5", "1-5.1:1.0")
    assert result.missing == () and result.flags == ()


def test_an_smbus_only_adapter_refuses_the_i2c_link_in_a_rehearsal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, simulation="  i2c:\n    \"3\": {smbus-only: true}\n",
                    transports="  bus: {kind: i2c, bus: 3}",
                    devices="  y: {chip: stm32g071rb, transport: bus, recipe: check}")
    assert main(["info", str(path), "y", "--simulate"]) != 0
    assert "SMBus-only" in capsys.readouterr().err


# ------------------------------------------------------------------------------ bindings


def test_uart_i2c_and_can_links_bind_by_node_and_by_path_name() -> None:
    result = walk()
    assert node(result, "/dev/ttyUSB0").link == "serial-f"  # its port is the by-path name
    assert node(result, "/dev/i2c-1").link == "i2c-g"
    assert node(result, "/dev/i2c-5").link is None
    assert node(result, "can0").link == "can-h"
    assert node(result, "/dev/ttyACM0").link is None


def test_a_uart_link_binds_by_its_by_id_name_and_an_on_board_uart_is_not_missing(
        tmp_path: Path) -> None:
    inventory = manifest(tmp_path, transports=(
        "  vcp: {kind: uart, port: /dev/serial/by-id/usb-STMicroelectronics_STM32_STLink_"
        "066DFF485550755187121723-if02}\n"
        "  header: {kind: uart, port: /dev/ttyAMA0}\n"
        "  remote: {kind: uart, port: \"rfc2217://10.0.0.5:4000\"}"),
        devices="  x: {chip: stm32f103rb, transport: vcp, recipe: check}")
    result = walk(BENCH, inventory)
    assert node(result, "/dev/ttyACM0").link == "vcp"
    assert result.missing == ()  # discovery lists USB adapters only: the others are unknown


def test_a_devices_own_selectors_bind_across_the_inventorys_includes(tmp_path: Path) -> None:
    (tmp_path / "links.yaml").write_text(
        "transports:\n"
        "  probe: {kind: stlink}                    # boards swapped under probes by port\n"
        "  console: {kind: uart, port: /dev/ttyUSB0}\n")
    inventory = tmp_path / "line.yaml"
    inventory.write_text(MANIFEST.format(
        simulation="", transports="  bus: {kind: i2c, bus: 1}",
        devices="  left: {chip: stm32f411re, transport: {use: probe, port-path: \"1-4.2\"}, "
                "recipe: check}\n"
                "  right: {chip: stm32f411re, transport: {use: probe, port-path: \"1-4.9\"}, "
                "recipe: check}\n"
                "  tty: {chip: stm32f103rb, transport: {use: console, port: /dev/ttyACM0}, "
                "recipe: check}\n"
                "  i2c: {chip: stm32g071rb, transport: {use: bus, bus: 5}, recipe: check}"
    ).replace("transports:\n", "include: [links.yaml]\ntransports:\n"))
    result = walk(BENCH, inventory)
    assert (probe(result, "1-4.2").link, probe(result, "1-4.2").link_device) == ("probe", "left")
    assert (node(result, "/dev/ttyACM0").link, node(result, "/dev/ttyACM0").link_device) == (
        "console", "tty")
    assert node(result, "/dev/ttyUSB0").link == "console"  # the link's own port
    assert node(result, "/dev/i2c-5").link_device == "i2c"
    assert [(m.name, m.device, m.port_path) for m in result.missing] == [
        ("probe", "right", "1-4.9")]


def test_missing_links_name_the_device_whose_selectors_they_are(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = manifest(tmp_path, transports="  probe: {kind: stlink}",
                         devices="  right: {chip: stm32f411re, transport: {use: probe, "
                                 "port-path: \"1-4.9\"}, recipe: check}")
    main(["discover", "--simulate", str(BENCH), "--manifest", str(inventory), "--no-firmware"])
    assert "? link probe (stlink, device right: port-path 1-4.9): no such device attached" \
        in capsys.readouterr().out


def test_an_include_that_cannot_be_read_is_a_located_error(tmp_path: Path) -> None:
    inventory = tmp_path / "station.yaml"
    inventory.write_text("include: [nowhere.yaml]\ntransports:\n  a: {kind: stlink}\n")
    with pytest.raises(PlanError, match=r"station.yaml:1: cannot read included file"):
        inventory_links(inventory)


def test_json_names_the_new_fields(capsys: pytest.CaptureFixture[str]) -> None:
    main(["discover", "--json", "--simulate", str(BENCH), "--manifest", str(BENCH),
          "--no-firmware"])
    devices = json.loads(capsys.readouterr().out)["devices"]
    i2c = next(d for d in devices if d.get("node") == "/dev/i2c-5")
    assert (i2c["port_path"], i2c["usb_id"], i2c["plain_i2c"]) == (None, None, False)
    tty = next(d for d in devices if d.get("node") == "/dev/ttyACM0")
    assert tty["vcp_of"] == "066DFF485550755187121723" and tty["interface"] == 2


# ------------------------------------------------------------------------------ a host's tree


def _tree(root: Path, links: dict[str, str], files: dict[str, str]) -> HostSysfs:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text + "\n")
    for path, target in links.items():
        (root / target).mkdir(parents=True, exist_ok=True)
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(root / target, (root / path).parent), root / path)
    return HostSysfs(root)


def test_by_path_names_follow_path_id_through_platform_and_pci(tmp_path: Path) -> None:
    """A Raspberry Pi 4's VL805: the USB controller on PCIe behind a platform bridge."""
    pcie = "devices/platform/scb/fd500000.pcie"
    device = f"{pcie}/pci0000:00/0000:00:00.0/0000:01:00.0/usb1/1-1/1-1.2"
    sysfs = _tree(tmp_path, links={
        f"{pcie}/subsystem": "bus/platform", "devices/platform/scb/subsystem": "bus/platform",
        f"{pcie}/pci0000:00/0000:00:00.0/subsystem": "bus/pci",
        f"{pcie}/pci0000:00/0000:00:00.0/0000:01:00.0/subsystem": "bus/pci",
        **{f"{device.rsplit('/', n)[0]}/subsystem": "bus/usb" for n in range(3)},
        f"{device}/1-1.2:1.0/subsystem": "bus/usb",
        f"{device}/1-1.2:1.0/ttyUSB0/subsystem": "bus/usb-serial",
        f"{device}/1-1.2:1.0/ttyUSB0/tty/ttyUSB0/device": f"{device}/1-1.2:1.0/ttyUSB0",
        "class/tty/ttyUSB0": f"{device}/1-1.2:1.0/ttyUSB0/tty/ttyUSB0",
        "class/tty/tty1": "devices/virtual/tty/tty1"},
        files={f"{device}/idVendor": "10c4", f"{device}/idProduct": "ea60",
               f"{device}/serial": "0001", f"{device}/product": "CP2102 USB to UART Bridge",
               f"{device}/1-1.2:1.0/bInterfaceNumber": "00",
               f"{device}/1-1.2:1.0/ttyUSB0/port_number": "0"})
    assert id_path(sysfs, f"{device}/1-1.2:1.0") == \
        "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.2:1.0"
    (adapter,) = serial_adapters(sysfs)  # the virtual console is not an adapter
    assert adapter.by_path == \
        "/dev/serial/by-path/platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.2:1.0-port0"
    assert (adapter.port_path, adapter.usb_id, adapter.hub) == ("1-1.2", "10c4:ea60", "1-1")


def test_an_adapter_that_cannot_be_opened_is_unknown_not_guessed(tmp_path: Path) -> None:
    sysfs = _tree(tmp_path, links={
        "class/i2c-dev/i2c-0": "devices/platform/soc/fe205000.i2c/i2c-0/i2c-dev/i2c-0",
        "devices/platform/soc/fe205000.i2c/i2c-0/i2c-dev/i2c-0/device":
            "devices/platform/soc/fe205000.i2c/i2c-0"},
        files={"devices/platform/soc/fe205000.i2c/i2c-0/i2c-dev/i2c-0/name": "SMBus adapter"})

    def refuse(bus: int) -> object:
        raise PermissionError(13, "Permission denied", f"/dev/i2c-{bus}")

    (adapter,) = i2c_adapters(sysfs, refuse)  # type: ignore[arg-type]
    assert adapter.plain_i2c is None  # its name says SMBus; only the adapter may say so
    assert adapter.parent == "fe205000.i2c"
    assert "no permission to open /dev/i2c-0" in adapter.problems[0]


def test_simulated_adapters_are_checked_by_the_schema(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = manifest(tmp_path, simulation="  serial:\n    ttyUSB0: {baud: 9600}\n",
                    transports="  uart: {kind: uart, port: /dev/ttyUSB0}",
                    devices="  x: {chip: stm32f103rb, transport: uart, recipe: check}")
    assert main(["discover", "--simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "adapters.yaml:7:15: simulation.serial.ttyUSB0.baud" in err


def test_a_stations_json_report_reads_back_with_its_adapters() -> None:
    result = walk()
    assert from_json(json.loads(render_json(result))) == result


def test_a_device_selector_finding_nothing_does_not_mark_its_link_gone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = manifest(tmp_path, transports="  probe: {kind: stlink}",
                         devices="  right: {chip: stm32f411re, transport: {use: probe, "
                                 "port-path: \"1-4.9\"}, recipe: check}")
    assert main(["discover", "--simulate", str(BENCH), "--write", str(inventory), "--prune",
                 "--dry-run", "--no-firmware"]) in (0, 1)
    diff = capsys.readouterr().out
    assert "-  probe: {kind: stlink}" not in diff and "gone" not in diff
