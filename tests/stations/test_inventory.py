"""The station inventory: schema, model, and the checks tying devices to stations."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.compiler import compile_plan
from runner.errors import ManifestError
from runner.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[2]
LINE = ROOT / "manifests" / "line-stations.yaml"

STATIONS = """\
stations:
  pi1:
    host: [10.0.0.21, pi1.local]
    port: 2222
    user: flash
    identity-file: keys/id_ed25519
    known-hosts: ~/farm/known_hosts
    flashrunner: /usr/local/bin/flashrunner
    max-parallel: 3
    connect-timeout: 5
    links: [probe-a]
  pi2:
    host: pi2.local
    user: flash
    identity-file: keys/id_ed25519
    known-hosts: known_hosts
    links: [probe-b]
transports:
  probe-a: {kind: stlink, port-path: "1-1.1"}
  probe-b: {kind: stlink, port-path: "1-1.1"}
"""

PRODUCT = """\
manifest: 1
name: board
include: [line/stations.yaml]
simulate: true
images:
  app: {file: app.bin, address: 0x08000000}
recipes:
  flash: [{write: [app]}]
devices:
"""


def write(tmp_path: Path, devices: str, stations: str = STATIONS) -> Path:
    (tmp_path / "line").mkdir()
    (tmp_path / "line" / "stations.yaml").write_text(stations)
    (tmp_path / "app.bin").write_bytes(bytes(range(256)) * 4)
    path = tmp_path / "board.yaml"
    path.write_text(PRODUCT + devices)
    return path


def messages(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return [f"{i.line}:{i.column} {i.message}" for i in caught.value.issues]


def test_stations_are_read_with_their_defaults_and_paths_beside_their_file(
        tmp_path: Path) -> None:
    path = write(tmp_path, "  a: {chip: stm32f411re, station: pi1, transport: probe-a, "
                           "recipe: flash}\n"
                           "  b: {chip: stm32f411re, station: pi2, transport: probe-b, "
                           "recipe: flash, after: [a]}\n")
    manifest = load_manifest(path)
    pi1, pi2 = manifest.stations["pi1"], manifest.stations["pi2"]
    assert pi1.hosts == ("10.0.0.21", "pi1.local") and pi1.port == 2222
    assert pi1.identity_file == tmp_path / "line" / "keys" / "id_ed25519"
    assert pi1.known_hosts == Path("~/farm/known_hosts").expanduser()
    assert (pi1.max_parallel, pi1.connect_timeout, pi1.links) == (3, 5.0, ("probe-a",))
    assert pi2.hosts == ("pi2.local",) and pi2.port == 22
    assert (pi2.flashrunner, pi2.max_parallel, pi2.link_lock) == ("flashrunner", 4, "wait")
    assert manifest.devices["b"].station == "pi2"
    plan = compile_plan(manifest)
    # The same port path on two stations is two resources.
    assert plan.device("a").resource != plan.device("b").resource
    assert plan.device("b").after == ("a",)


def test_a_device_names_a_defined_station_and_one_of_its_links(tmp_path: Path) -> None:
    path = write(tmp_path, "  a: {chip: stm32f411re, station: pi9, transport: probe-a, "
                           "recipe: flash}\n"
                           "  b: {chip: stm32f411re, station: pi1, transport: probe-b, "
                           "recipe: flash}\n")
    found = messages(path)
    assert any("station 'pi9', which is not defined" in m for m in found), found
    assert any("link 'probe-b' is not one of its links (it is on station pi2)" in m
               for m in found), found


def test_a_device_on_a_station_link_must_say_so_and_runs_are_all_on_stations(
        tmp_path: Path) -> None:
    stations = STATIONS + "  local: {kind: stlink, port-path: \"2-1\"}\n"
    path = write(tmp_path, "  a: {chip: stm32f411re, transport: probe-a, recipe: flash}\n"
                           "  b: {chip: stm32f411re, station: pi2, transport: probe-b, "
                           "recipe: flash}\n"
                           "  c: {chip: stm32f411re, transport: local, recipe: flash}\n",
                 stations)
    found = messages(path)
    assert any("which is on station pi1; add `station: pi1`" in m for m in found), found
    assert any(m.startswith("12:3 device c names no station") for m in found), found


def test_a_link_is_on_one_station_and_station_links_exist(tmp_path: Path) -> None:
    stations = STATIONS.replace("links: [probe-b]", "links: [probe-a, probe-z]")
    path = write(tmp_path, "  a: {chip: stm32f411re, station: pi1, transport: probe-a, "
                           "recipe: flash}\n", stations)
    found = messages(path)
    assert any("link 'probe-a' is already on station pi1" in m for m in found), found
    assert any("station pi2 uses transport 'probe-z', which is not defined" in m
               for m in found), found


@pytest.mark.parametrize(("entry", "text"), [
    ("known-hosts: null", "16:18 expected text"),
    ("known-hosts: known_hosts\n    accept-any-host-key: true", "accept-any-host-key"),
    ("known-hosts: known_hosts\n    port: 70000", "70000"),
])
def test_the_schema_refuses_a_station_without_host_key_checking(
        tmp_path: Path, entry: str, text: str) -> None:
    stations = STATIONS.replace("known-hosts: known_hosts", entry)
    path = write(tmp_path, "  a: {chip: stm32f411re, station: pi1, transport: probe-a, "
                           "recipe: flash}\n", stations)
    found = messages(path)
    assert any(text in m for m in found), found


def test_the_line_example_places_every_device_on_a_station() -> None:
    manifest = load_manifest(LINE)
    assert set(manifest.stations) == {"pi1", "pi2", "pi3"}
    assert all(device.station for device in manifest.devices.values())
    stations_of = {d.station for d in manifest.devices.values()}
    assert stations_of == {"pi1", "pi2", "pi3"}
    # One device waits for a device on another station.
    assert any(manifest.devices[up].station != device.station
               for device in manifest.devices.values() for up in device.after)
