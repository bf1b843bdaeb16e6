"""``discover`` on a host where pyusb finds no libusb: the sysfs adapters are still listed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import usb.backend.libusb0
import usb.backend.libusb1
import usb.backend.openusb

import runner.launch
from runner.cli import main
from transports.endpoints import HostControl

BENCH = Path(__file__).resolve().parent / "data" / "bench.yaml"


@pytest.fixture
def no_libusb(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rehearsal's sysfs and I2C adapters, and the host's USB as pyusb sees it without
    libusb: no backend module finds its library, so pyusb raises NoBackendError."""
    bench = runner.launch.usb_bench

    @contextmanager
    def without_usb(plan: Any) -> Iterator[HostControl]:
        with bench(plan) as control:
            yield replace(control, usb_backend=None)

    monkeypatch.setattr(runner.launch, "usb_bench", without_usb)
    for module in (usb.backend.libusb1, usb.backend.openusb, usb.backend.libusb0):
        monkeypatch.setattr(module, "get_backend", lambda *_, **__: None)


@pytest.mark.usefixtures("no_libusb")
def test_without_libusb_the_adapters_are_listed_and_the_usb_walk_is_a_flag(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--json", "--simulate", str(BENCH)]) == 1
    report = json.loads(capsys.readouterr().out)
    kinds = {device["kind"] for device in report["devices"]}
    assert kinds == {"serial", "i2c", "can"}  # no probe, DFU device or hub
    (flag,) = [f for f in report["flags"] if f["problem"] == "usb-not-walked"]
    assert flag["message"].startswith("USB not walked: libusb is not installed")
    assert "sudo apt-get install libusb-1.0-0" in flag["message"]
    # Nobody looked for the probes: their links are not reported missing.
    assert not [m for m in report["missing"] if m["kind"] in ("stlink", "dfu")]


@pytest.mark.usefixtures("no_libusb")
def test_without_libusb_the_table_says_why_and_the_links_bind(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--simulate", str(BENCH), "--manifest", str(BENCH)]) == 1
    out = capsys.readouterr().out
    assert "! USB not walked: libusb is not installed, so no USB device can be reached" in out
    assert "serial-f" in out and "can-h" in out and "probe-gone" not in out


@pytest.mark.usefixtures("no_libusb")
def test_without_libusb_write_marks_no_probe_link_gone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "bench.yaml"
    shutil.copy(BENCH, inventory)
    before = inventory.read_text()
    assert main(["discover", "--simulate", str(BENCH), "--write", str(inventory),
                 "--prune"]) == 1
    captured = capsys.readouterr()
    assert "USB not walked" in captured.err
    assert "-  probe-gone" not in captured.out and "probe-a" in inventory.read_text()
    assert all(line in inventory.read_text() for line in before.splitlines()
               if "kind: stlink" in line or "kind: dfu" in line)
