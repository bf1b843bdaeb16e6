"""``discover --station``: discover run on each station through real OpenSSH servers on
127.0.0.1, each station's flashrunner walking its own simulated USB topology."""

from __future__ import annotations

import getpass
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from station_farm import Farm, run_cli

from runner.stations.localsshd import free_port

PROBE_A = "066DFF485550755187121723"
PROBE_NEW = "483F6E066772574857351967"
GONE = "0671FF3833554B3043164817"
DFU = "2059346B5744"

INVENTORY = """\
# The line's stations (kept apart from the product).
stations:
  pi1:
    host: 127.0.0.1
    port: {pi1}
    user: {user}
    identity-file: {keys}/id_ed25519
    known-hosts: {keys}/known_hosts
    connect-timeout: 5
    links: [pi1-probe-a, pi1-probe-gone, pi1-any]   # the bench at the window
  pi2:
    host: 127.0.0.1
    port: {pi2}
    user: {user}
    identity-file: {keys}/id_ed25519
    known-hosts: {keys}/known_hosts
    connect-timeout: 5
    links:
      - pi2-dfu
  pi9:
    host: 127.0.0.1
    port: {pi9}
    user: {user}
    identity-file: {keys}/id_ed25519
    known-hosts: {keys}/known_hosts
    connect-timeout: 5
    links: [pi9-probe]

transports:
  pi1-probe-a: {{kind: stlink, serial: "{probe_a}"}}   # left
  pi1-probe-gone:
    kind: stlink
    serial: "{gone}"
  pi1-any: {{kind: stlink}}
  pi2-dfu: {{kind: dfu}}
  pi9-probe: {{kind: stlink, serial: "{probe_a}"}}
"""

PRODUCT = """\
manifest: 1
name: discover-line
include: [stations.yaml]
simulate: true
simulation:
  time-scale: 0
  hubs:
    "1-4": {{ports: 4}}
  devices:
    a: {{quirks: {{probe: v2-1, port-path: "1-4.1"}}}}
    b: {{quirks: {{probe: v3, serial: "{probe_new}", port-path: "1-4.2"}}}}
    c: {{quirks: {{serial: "{dfu}"}}}}
    d: {{quirks: {{serial: "{dfu}"}}}}
recipes:
  check:
    - erase: {{scope: mass}}
devices:
  a: {{chip: stm32f411re, station: pi1, transport: pi1-probe-a, recipe: check}}
  b: {{chip: stm32g071rb, station: pi1, transport: pi1-any, recipe: check}}
  c: {{chip: stm32f411re, station: pi2, transport: pi2-dfu, recipe: check}}
  d: {{chip: stm32f411re, station: pi2, transport: pi2-dfu, recipe: check}}
"""


@pytest.fixture
def line(farm: Farm, tmp_path: Path) -> Path:
    """The product manifest; its stations pi1 and pi2 are up, pi9 has no sshd."""
    folder = tmp_path / "line"
    folder.mkdir()
    (folder / "stations.yaml").write_text(INVENTORY.format(
        pi1=farm.stations["pi1"].port, pi2=farm.stations["pi2"].port, pi9=free_port(),
        user=getpass.getuser(), keys=farm.folder / "keys", probe_a=PROBE_A, gone=GONE))
    (folder / "product.yaml").write_text(PRODUCT.format(probe_new=PROBE_NEW, dfu=DFU))
    return folder / "product.yaml"


def _stations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert document["discover"] == 1
    return {entry["station"]: entry for entry in document["stations"]}


def test_each_station_reports_its_own_bench_and_an_unreachable_one_its_error(
        line: Path) -> None:
    done = run_cli("discover", "--station", "pi1", "pi2", "pi9", "--simulate", str(line),
                   "--json")
    assert done.returncode == 1, done.stderr
    stations = _stations(json.loads(done.stdout))
    assert list(stations) == ["pi1", "pi2", "pi9"]
    pi1, pi2, pi9 = stations["pi1"], stations["pi2"], stations["pi9"]
    # pi1: its two probes behind its hub, bound to pi1's own links; its gone link missing.
    assert pi1["ok"] and pi1["address"] == f"127.0.0.1:{pi1['port']}"
    probes = {d["port_path"]: d for d in pi1["devices"] if d["kind"] == "stlink"}
    assert {p: d["serial"] for p, d in probes.items()} == {"1-4.1": PROBE_A, "1-4.2": PROBE_NEW}
    assert probes["1-4.1"]["link"] == "pi1-probe-a" and probes["1-4.2"]["link"] is None
    assert probes["1-4.1"]["hub"] == "1-4" and probes["1-4.1"]["hub_port"] == 1
    assert [m["link"] for m in pi1["missing"]] == ["pi1-probe-gone"]
    assert pi1["flags"] == []
    # pi2: its own bench only, with its own ambiguity flagged.
    assert pi2["ok"]
    assert sorted(d["kind"] for d in pi2["devices"] if d["kind"] != "hub") == ["dfu", "dfu"]
    assert [f["problem"] for f in pi2["flags"]] == ["dfu-serial-collision"]
    assert pi2["missing"] == []
    # pi9: no sshd on its port: an error entry, the others still reported.
    assert not pi9["ok"] and "devices" not in pi9
    assert pi9["error"]["error_category"] == "station-unreachable"
    assert pi9["hosts"] == ["127.0.0.1"]


def test_the_table_is_grouped_by_station(line: Path) -> None:
    done = run_cli("discover", "--station", "pi1", "pi9", "--simulate", str(line),
                   "--no-firmware")
    assert done.returncode == 1, done.stderr
    pi1, pi9 = done.stdout.split("\n== ")
    assert pi1.startswith("== station pi1 (127.0.0.1:")
    assert "1-4.1  stlink" in pi1 and "pi1-probe-a" in pi1
    assert "? link pi1-probe-gone (stlink, serial " + GONE in pi1
    assert pi9.startswith("station pi9 (127.0.0.1:") and "FAILED station-unreachable" in pi9


def test_an_unknown_station_is_refused_with_the_close_name(line: Path) -> None:
    done = run_cli("discover", "--station", "pi1", "pi3", "--manifest", str(line))
    assert done.returncode == 2
    assert f"--station pi3: no such station in {line.parent / 'stations.yaml'}:3 " \
        "(stations: pi1, pi2, pi9)" in done.stderr
    assert "did you mean 'pi1'?" in done.stderr or "did you mean 'pi9'?" in done.stderr
    assert done.stdout == ""


def test_station_needs_the_manifest_that_defines_it() -> None:
    done = run_cli("discover", "--station", "pi1")
    assert done.returncode == 2 and "--station needs the manifest" in done.stderr


def test_write_edits_each_station_section_and_leaves_the_unreachable_one(
        line: Path) -> None:
    inventory = line.parent / "stations.yaml"
    before = inventory.read_text()
    done = run_cli("discover", "--station", "pi1", "pi2", "pi9", "--simulate", str(line),
                   "--write", str(inventory), "--no-firmware")
    assert done.returncode == 1, done.stderr     # pi9 did not answer
    assert "pi9" in done.stderr and "left as it is" in done.stderr
    after = inventory.read_text()
    assert done.stdout.startswith(f"--- {inventory}")
    # pi1: the new probe is a link of pi1, listed in its links; the gone link is marked.
    assert 'pi1-stlink-351967: {kind: stlink, serial: "' + PROBE_NEW + '"}' in after
    assert "links: [pi1-probe-a, pi1-probe-gone, pi1-any, pi1-stlink-351967]   # the bench" \
        in after
    assert "  pi1-probe-gone:  # gone: not attached at the last discover\n" in after
    # pi2: the colliding DFU boards are named and selected by port path, in its block list.
    assert "  # found by flashrunner discover on station pi1\n  pi1-stlink-351967" in after
    added = [line for line in after.splitlines() if line.startswith("  pi2-dfu-")]
    assert len(added) == 2 and all("port-path" in a for a in added)
    assert "      - pi2-dfu\n      - pi2-dfu-" in after
    # pi9 (unreachable): its link is not marked gone; comments and the rest survive.
    assert "  pi9-probe: {kind: stlink, serial: \"" + PROBE_A + "\"}\n" in after
    assert after.startswith("# The line's stations (kept apart from the product).\n")
    assert "  pi1-probe-a: {kind: stlink, serial: \"" + PROBE_A + "\"}   # left\n" in after
    assert len(after.splitlines()) == len(before.splitlines()) + 7
    # A second run changes nothing.
    again = run_cli("discover", "--station", "pi1", "pi2", "--simulate", str(line),
                    "--write", str(inventory), "--no-firmware")
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"{inventory}: already in sync, nothing to change\n"
    assert inventory.read_text() == after


def test_prune_takes_a_gone_link_out_of_the_station_list_too(line: Path) -> None:
    inventory = line.parent / "stations.yaml"
    done = run_cli("discover", "--station", "pi1", "--simulate", str(line), "--write",
                   str(inventory), "--prune", "--no-firmware")
    assert done.returncode == 0, done.stderr
    after = inventory.read_text()
    assert "pi1-probe-gone" not in after
    assert "links: [pi1-probe-a, pi1-any, pi1-stlink-351967]   # the bench" in after


def test_write_refuses_a_file_that_does_not_hold_the_station(line: Path,
                                                             tmp_path: Path) -> None:
    other = tmp_path / "other.yaml"
    shutil.copy(line.parent / "stations.yaml", other)
    text = other.read_text().replace("  pi1:\n", "  pi7:\n")
    other.write_text(text)
    done = run_cli("discover", "--station", "pi1", "--simulate", str(line), "--write",
                   str(other), "--no-firmware")
    assert done.returncode == 2
    assert "station pi1 is not listed here" in done.stderr
    assert other.read_text() == text


def test_a_station_whose_host_key_is_not_trusted_is_refused_before_anything_is_sent(
        line: Path, tmp_path: Path) -> None:
    inventory = line.parent / "stations.yaml"
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    text = inventory.read_text()
    pi2 = text.index("  pi2:")
    trusted = text[pi2:].split("known-hosts: ", 1)[1].split("\n", 1)[0]
    inventory.write_text(text[:pi2] + text[pi2:].replace(trusted, str(empty), 1))
    done = run_cli("discover", "--station", "pi1", "pi2", "--simulate", str(line), "--json",
                   "--no-firmware")
    assert done.returncode == 1, done.stderr
    stations = _stations(json.loads(done.stdout))
    assert stations["pi1"]["ok"]
    assert stations["pi2"]["error"]["error_category"] == "host-key"
    assert "nothing was sent" in stations["pi2"]["error"]["hint"]
