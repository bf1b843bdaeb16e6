"""What each station needs for a run: its own manifest and the images, named by digest.

The station's manifest is the product manifest cut down to the station: its
devices (without ``station:``; ``after`` kept where the other device is on the
same station), the recipes and recovery policies they use, the station's
links, the simulation settings of its devices, and ``execution.max-parallel``
set to the station's share of the run's bound. Every image is rewritten to
``file: <sha256>`` with its ``sha256`` pinned: the manifest and the images sit
side by side in the station's content-addressed cache
(``<work-dir>/cache/<sha256>``), and the station refuses any byte that
differs from its digest before using it.

Per-unit values from a counter are allocated by the host, never by a station
(two stations would hand out the same serial): the station's manifest asks
for them (``assigned``), and the host answers each request from its own
journaled counter (:mod:`.dispatch`). A UID-derived value is computed on the
station as usual.

A device that comes after a device of another station is *gated* on its
station: it waits there until the host, which sees every station, opens its
gate (:mod:`.dispatch`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import yaml

from runner.errors import PlanError
from runner.manifest.checks import entries, steps
from runner.manifest.sources import read_sources
from runner.model import Manifest, StationSpec
from runner.plan import Plan
from runner.unitdata import source_from_mapping, unit_size

__all__ = ["StationBundle", "put_files", "share_parallel", "station_bundles", "value_key"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StationBundle:
    """One station's part of a run."""

    station: StationSpec
    devices: tuple[str, ...]
    manifest: bytes
    manifest_sha256: str
    #: sha256 → the host file holding those bytes.
    images: Mapping[str, Path]
    #: device → its upstream devices on other stations.
    gated: Mapping[str, tuple[str, ...]]
    max_parallel: int

    @property
    def files(self) -> dict[str, Path | bytes]:
        """Everything to stage: digest → a file on the host, or the bytes themselves."""
        return {self.manifest_sha256: self.manifest, **self.images}


async def put_files(sftp: asyncssh.SFTPClient, cache: str, files: Mapping[str, Path | bytes], *,
                    force: frozenset[str] = frozenset()) -> tuple[int, int]:
    """Stage ``files`` (digest → host file or bytes) into the station's ``cache`` by SFTP.

    Each file is written under a temporary name and renamed to its digest, so
    a reader never sees half a file; a digest already there is not sent again
    unless it is in ``force`` (the station found it differs). Returns the
    number of files and bytes sent.

    Raises:
        OSError, asyncssh.Error: the transfer failed (the caller classifies it).
    """
    await sftp.makedirs(cache, exist_ok=True)
    sent = size = 0
    for digest, source in files.items():
        target = f"{cache}/{digest}"
        if digest not in force and await sftp.exists(target):
            continue
        part = f"{cache}/.{digest}.{secrets.token_hex(4)}.part"
        if isinstance(source, bytes):
            async with sftp.open(part, "wb") as handle:
                await handle.write(source)
            size += len(source)
        else:
            await sftp.put(os.fspath(source), part)
            size += Path(source).stat().st_size
        await sftp.posix_rename(part, target)
        sent += 1
    return sent, size


def share_parallel(wanted: Mapping[str, int], bound: int) -> dict[str, int]:
    """Split the run's ``bound`` over stations wanting ``wanted`` slots each.

    Every station keeps at least one slot (a station with none could never
    finish); slots beyond that go round-robin, so the total stays within the
    bound whenever there are no more stations than it.
    """
    share = {name: 1 for name in wanted}
    left = bound - len(share)
    while left > 0:
        grown = False
        for name in wanted:
            if left > 0 and share[name] < wanted[name]:
                share[name] += 1
                left -= 1
                grown = True
        if not grown:
            break
    return share


def station_bundles(manifest: Manifest, plan: Plan, run_id: str, *,
                    stations: Iterable[str] = ()) -> dict[str, StationBundle]:
    """Each station's bundle, for the devices of ``plan`` (and ``stations``, even without).

    Raises:
        PlanError: a device needs something that cannot travel to its station yet.
    """
    data = read_sources(manifest.path, str(manifest.path)).data
    selected = [d.device for d in plan.devices]
    by_station: dict[str, list[str]] = {station: [] for station in stations}
    for name in selected:
        station = manifest.devices[name].station
        assert station is not None
        by_station.setdefault(station, []).append(name)
    shares = share_parallel({s: manifest.stations[s].max_parallel for s in by_station},
                            plan.execution.max_parallel)
    bundles = {}
    for station, names in by_station.items():
        document = _station_document(data, manifest, plan, station, names, shares[station],
                                     run_id)
        text = ("# flashrunner: the part of a run on station " + station + "\n"
                + yaml.safe_dump(document, sort_keys=False)).encode()
        images = {plan.image_digests[n]: manifest.images[n].path
                  for n in document.get("images", {})}
        gated = {name: tuple(u for u in plan.device(name).after
                             if manifest.devices[u].station != station)
                 for name in names}
        bundles[station] = StationBundle(
            station=manifest.stations[station], devices=tuple(names), manifest=text,
            manifest_sha256=hashlib.sha256(text).hexdigest(), images=images,
            gated={k: v for k, v in gated.items() if v}, max_parallel=shares[station])
    return bundles


def _unit_data(recipe: str, step: dict[str, Any], run_id: str) -> dict[str, Any]:
    """A unit-data step as the station runs it: counters become values the host assigns."""
    source = step["source"]
    if "uid" in source:
        return step
    if "counter" not in source:
        raise PlanError(f"recipe {recipe} takes per-unit values from a CSV file, which runs on "
                        f"stations do not carry yet", hint="flash it from a run on this host")
    return {**step, "source": {"assigned": {
        "folder": f"../runs/{run_id}/values", "key": value_key(step["address"]),
        "size": unit_size(source_from_mapping(source, Path(".")))}}}


def value_key(address: int) -> str:
    """How a station names the unit-data field at ``address`` when it asks for a value."""
    return f"0x{address:08X}"


def _station_document(data: dict[str, Any], manifest: Manifest, plan: Plan, station: str,
                      names: list[str], max_parallel: int, run_id: str) -> dict[str, Any]:
    devices: dict[str, Any] = {}
    for name in names:
        device = {k: v for k, v in entries(data, "devices")[name].items() if k != "station"}
        after = [u for u in plan.device(name).after if manifest.devices[u].station == station]
        device.pop("after", None)
        if after:
            device["after"] = after
        devices[name] = device
    recipes = {manifest.devices[n].recipe for n in names}
    used_recipes = {name: [dict(step) for step in recipe]
                    for name, recipe in data.get("recipes", {}).items() if name in recipes}
    images: dict[str, Any] = {}
    for recipe_name, recipe in used_recipes.items():
        for index, kind, value, step in steps(recipe):
            if kind == "unit-data":
                recipe[index] = {**step, "unit-data": _unit_data(recipe_name, value, run_id)}
                continue
            if kind != "write":
                continue
            for image in value["images"] if isinstance(value, dict) else value:
                spec = dict(entries(data, "images")[image])
                spec["file"] = plan.image_digests[image]
                spec["sha256"] = plan.image_digests[image]
                images[image] = spec
    document: dict[str, Any] = {
        "manifest": 1, "name": data["name"],
        "description": f"station {station} of {data['name']}",
        "simulate": plan.simulate,
    }
    simulation = dict(data.get("simulation") or {})
    simulated = {n: v for n, v in (simulation.get("devices") or {}).items() if n in names}
    simulation.pop("devices", None)
    if simulated:
        simulation["devices"] = simulated
    if simulation:
        document["simulation"] = simulation
    document["images"] = images
    links = manifest.stations[station].links
    document["transports"] = {n: v for n, v in data["transports"].items() if n in links}
    document["recipes"] = used_recipes
    if data.get("recovery"):
        document["recovery"] = data["recovery"]
    document["devices"] = devices
    document["execution"] = {"max-parallel": max_parallel,
                             "fail-fast": plan.execution.fail_fast}
    return document
