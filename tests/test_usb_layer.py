"""The shared USB layer: one libusb error table, one selection rule, one udev hint.

The ST-Link and DFU links both go through it, so a device held by another
program (libusb EBUSY on claim) ends the same classified way on both, naming
the likely holder, through the simulated pyusb backend and the whole runner.
"""

from __future__ import annotations

import dataclasses
import errno
from pathlib import Path
from types import SimpleNamespace

import pytest
import usb.core

from runner import executor, launch
from runner.compiler import compile_plan
from runner.manifest import load_manifest
from runner.model import LogSpec
from runner.plan import Outcome
from transports import usb as shared
from transports.errors import (
    ConnectError,
    EnvironmentProblem,
    LinkLost,
    LinkTimeout,
    ProtocolError,
    TransportError,
)
from transports.sim import SimulationWorld

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
NAMES = shared.LinkNames(link="probe", device="board")


def _raise(error: Exception, *, stall_is_error: bool = True) -> None:
    with shared.usb_errors("claiming interface 0", NAMES, thing="the ST-Link",
                           stall_is_error=stall_is_error):
        raise error


@pytest.mark.parametrize(("code", "expected"), [
    (errno.EACCES, EnvironmentProblem), (errno.EPERM, EnvironmentProblem),
    (errno.EBUSY, ConnectError), (errno.ENODEV, LinkLost), (errno.EPIPE, ProtocolError),
    (errno.EIO, LinkLost)])
def test_each_errno_has_one_classification(code: int, expected: type[Exception]) -> None:
    with pytest.raises(expected):
        _raise(usb.core.USBError("libusb says no", -99, code))


def test_a_timeout_is_a_link_timeout() -> None:
    with pytest.raises(LinkTimeout):
        _raise(usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT))


def test_a_stall_inside_a_protocol_is_left_to_the_protocol() -> None:
    with pytest.raises(shared.Stalled):
        _raise(usb.core.USBError("Pipe error", -9, errno.EPIPE), stall_is_error=False)


def test_permission_points_at_the_one_udev_hint() -> None:
    with pytest.raises(EnvironmentProblem) as info:
        _raise(usb.core.USBError("Access denied", -3, errno.EACCES))
    assert info.value.hint == shared.UDEV_HINT
    assert "99-flashrunner.rules" in shared.UDEV_HINT


def test_busy_names_the_programs_that_usually_hold_the_device() -> None:
    with pytest.raises(ConnectError) as info:
        _raise(usb.core.USBError("Resource busy", -6, errno.EBUSY))
    text = f"{info.value} {info.value.hint}"
    for holder in ("OpenOCD", "STM32CubeProgrammer", "st-util"):
        assert holder in text


def test_port_paths_name_the_bus_and_each_hub_port() -> None:
    assert shared.port_path(SimpleNamespace(bus=3, port_numbers=(1, 4, 2))) == "3-1.4.2"
    assert shared.port_path(SimpleNamespace(bus=1, port_numbers=None, port_number=5)) == "1-5"
    assert shared.port_path(SimpleNamespace(bus=2, port_numbers=None, port_number=None)) == "2-?"


@dataclasses.dataclass(frozen=True)
class _Candidate:
    serial: str | None
    port_path: str

    def describe(self) -> str:
        return f"serial {self.serial} at port {self.port_path}"


def _select(serial: str | None = None, port: str | None = None) -> _Candidate:
    candidates = [_Candidate("ABC", "1-1"), _Candidate("abc", "1-2"), _Candidate("XYZ", "1-3")]
    return shared.select(candidates, serial=serial, port_path=port, what="widget",
                         plural="widgets", names=NAMES, missing_hint="plug it",
                         ambiguous_hint="set port-path")


def test_selection_refuses_an_ambiguous_serial_and_lists_both() -> None:
    with pytest.raises(ConnectError, match="2 widgets match serial ABC .*1-1.*1-2"):
        _select(serial="ABC")
    assert _select(serial="ABC", port="1-2").port_path == "1-2"
    assert _select(serial="xyz").port_path == "1-3"
    with pytest.raises(ConnectError, match="no widget with port 9-9"):
        _select(port="9-9")


def _held_run(manifest: str) -> tuple[str | None, str | None, Outcome]:
    plan = compile_plan(load_manifest(MANIFESTS / manifest), simulate=True)
    plan = dataclasses.replace(plan, log=LogSpec(), simulation=dataclasses.replace(
        plan.simulation, time_scale=0.0))
    with SimulationWorld(seed="held") as world:
        endpoints = launch.compose_endpoints(plan, world)
        for device in endpoints.backend.devices:
            device.held_by = "OpenOCD"  # another program claimed its interface
        run = executor.execute(plan, endpoints=endpoints)
    result = run.devices[0]
    return result.error, result.error_category, result.outcome


def test_a_held_stlink_ends_with_a_classified_error_naming_the_holder() -> None:
    error, category, outcome = _held_run("stlink-f103.yaml")
    assert outcome is Outcome.FAILED
    assert category == "connect"
    assert error is not None and "held by another program" in error
    assert "OpenOCD" in error and "internal" not in error


def test_a_held_dfu_device_says_the_same() -> None:
    stlink_error, _, _ = _held_run("stlink-f103.yaml")
    dfu_error, category, outcome = _held_run("dfu-f411.yaml")
    assert outcome is Outcome.FAILED and category == "connect"
    assert dfu_error is not None and stlink_error is not None
    # The same words after the device's name on both links, up to the failed operation.
    def wording(error: str) -> str:
        return error.partition(" is held ")[2].partition(":")[0]
    assert wording(dfu_error) == wording(stlink_error) != ""


def test_every_usb_error_the_layer_raises_is_a_transport_error() -> None:
    for code in (errno.EBUSY, errno.ENODEV, errno.EPIPE, errno.EIO):
        with pytest.raises(TransportError):
            _raise(usb.core.USBError("x", -1, code))
