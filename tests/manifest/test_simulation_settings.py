"""simulation.devices: closed quirks per link kind, exactly typed faults parsed at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from runner.errors import ManifestError
from runner.manifest import load_manifest
from runner.manifest.simulated import quirks_of_kind
from schemas import load_schema
from transports.faults import FAULT_KINDS, FAULT_OPS, Fault
from transports.registry import BUILTIN

MANIFEST = """\
manifest: 1
name: rehearsal
simulate: true
simulation:
  time-scale: 0
  devices:
    board: {settings}
images:
  app: {{file: app.bin, address: 0x08000000}}
transports:
  link: {link}
recipes:
  std:
    - write: [app]
devices:
  board: {{chip: stm32l476rg, transport: link, recipe: std}}
"""

LINKS = {"uart": "{kind: uart, port: /dev/ttyUSB0}", "stlink": "{kind: stlink}",
         "i2c": "{kind: i2c, bus: 1}", "can": "{kind: can, interface: virtual, channel: c}",
         "dfu": "{kind: dfu}", "sim": "{kind: sim}"}


def write(tmp_path: Path, settings: str, kind: str = "uart") -> Path:
    (tmp_path / "app.bin").write_bytes(bytes(256))
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST.format(settings=settings, link=LINKS[kind]))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    return [str(issue) for issue in info.value.issues]


def test_faults_are_parsed_into_their_model_when_the_manifest_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "{faults: [{kind: nack, op: erase, at-byte: 0, times: 2}, "
                           "{kind: link-lost, permanent: true}]}")
    device = load_manifest(path).simulation.devices["board"]
    assert device.faults == (Fault(kind="nack", op="erase", at_byte=0, times=2),
                             Fault(kind="link-lost", op="write", times=None))


def test_a_typo_in_a_fault_is_located_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "{faults: [{kind: timeout, at-bite: 4096}]}")
    assert problems(path) == [
        f"{path}:7:38: simulation.devices.board.faults[0].at-bite: unknown key 'at-bite' in "
        f"simulation.devices.board.faults[0]; did you mean 'at-byte'?"]


def test_an_unknown_fault_kind_is_located(tmp_path: Path) -> None:
    [message] = problems(write(tmp_path, "{faults: [{kind: nak}]}"))
    assert ":7:" in message and "faults[0].kind" in message and "nack" in message


def test_times_and_permanent_together_are_refused(tmp_path: Path) -> None:
    [message] = problems(write(tmp_path, "{faults: [{kind: nack, times: 3, permanent: true}]}"))
    assert "faults[0].times: a permanent fault fires every time" in message


def test_a_typo_in_a_quirk_is_located_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "{quirks: {smbus_onyl: true}}", kind="i2c")
    assert problems(path) == [
        f"{path}:7:22: simulation.devices.board.quirks.smbus_onyl: unknown key 'smbus_onyl' "
        f"in simulation.devices.board.quirks; did you mean 'smbus-only'?"]


def test_a_quirk_of_another_link_kind_is_located(tmp_path: Path) -> None:
    [message] = problems(write(tmp_path, "{quirks: {smbus-only: true}}", kind="uart"))
    assert ":7:22: simulation.devices.board.quirks.smbus-only: quirk 'smbus-only' does not " \
           "apply to device board, whose link is of kind uart; the quirks of kind uart are " \
           "boot0, checksum," in message


def test_a_quirk_value_is_typed(tmp_path: Path) -> None:
    [message] = problems(write(tmp_path, "{quirks: {probe: v4}}", kind="stlink"))
    assert "quirks.probe: the text 'v4' is not allowed here; use one of v1, v2, v2-1, v3" \
        in message


def test_an_adapter_latency_timer_is_one_to_255_ms(tmp_path: Path) -> None:
    [message] = problems(write(tmp_path, "{quirks: {latency-timer: 0}}", kind="uart"))
    assert ":7:37: simulation.devices.board.quirks.latency-timer:" in message
    assert "minimum" in message or "at least 1" in message


@pytest.mark.parametrize(("kind", "quirks"), [
    ("uart", "{usart-version: 0x22, double-ack: true, boot0: rts, commands: [0, 1, 2], "
             "latency-timer: 16}"),
    ("i2c", "{i2c-version: 0x12, smbus-only: true}"),
    ("can", "{can-erase: fork, no-mass-erase: true}"),
    ("dfu", "{port-path: 1-4.2, getstatus-while-busy: answer, mass-erase-poll-ms: 100}"),
    ("stlink", "{probe: v1, clone: apm32, target-voltage: 0.0}"),
])
def test_each_kind_takes_its_own_quirks(tmp_path: Path, kind: str, quirks: str) -> None:
    device = load_manifest(write(tmp_path, f"{{quirks: {quirks}}}", kind=kind))
    assert device.simulation.devices["board"].quirks


def test_the_schema_describes_quirks_per_built_in_kind() -> None:
    definitions: dict[str, Any] = load_schema("manifest")["$defs"]
    union = set(definitions["quirks"]["properties"])
    per_kind = {kind: quirks_of_kind(kind) for kind in BUILTIN}
    assert union == set().union(*per_kind.values())
    for key, spec in definitions["quirks"]["properties"].items():   # one definition each
        owner = spec["$ref"].split("/")[2].removeprefix("quirks-")
        assert key in per_kind[owner]
    assert per_kind["sim"] == frozenset()


def test_the_schema_lists_exactly_the_fault_kinds_and_ops_the_model_takes() -> None:
    fault = load_schema("manifest")["$defs"]["fault"]["properties"]
    assert set(fault["kind"]["enum"]) == FAULT_KINDS
    assert set(fault["op"]["enum"]) == FAULT_OPS


def test_a_plugin_kind_takes_the_quirks_of_the_far_end_behind_its_endpoints() -> None:
    class SerialPlugin:
        kind: ClassVar[str] = "acme-serial"
        simulation: ClassVar[frozenset[str]] = frozenset({"serial_port", "clock"})

    assert quirks_of_kind("acme-serial", SerialPlugin) == quirks_of_kind("uart")  # type: ignore[arg-type]
    assert quirks_of_kind("acme-blind", None) == frozenset()
