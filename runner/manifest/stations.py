"""Semantic checks of the station inventory (``stations:``) and of devices placed on it.

A station lists the links attached to it (``links:``); a link is on one
station at most. A device names the station holding its link
(``station:``), so a reviewer reads where every chip is flashed from the
device line alone, and the name is checked against the link:

* ``station:`` names a defined station, each of its ``links`` a defined transport;
* a device on a station uses one of that station's links; a device whose link
  is on a station says so;
* a manifest that flashes on stations does so for every device (the host
  orchestrates and holds no links of its own in such a run).
"""

from __future__ import annotations

from runner.manifest.checks import Checker, device_link, entries

__all__ = ["check_stations"]


def check_stations(checker: Checker) -> None:
    stations = entries(checker.data, "stations")
    owner_of: dict[str, str] = {}
    for name, station in stations.items():
        links = station.get("links")
        for index, link in enumerate(links if isinstance(links, list) else ()):
            at = ("stations", name, "links", index)
            if not checker.reference(at, link, "transports", "transport",
                                     owner=f"station {name}"):
                continue
            if link in owner_of:
                checker.at(at, f"link '{link}' is already on station {owner_of[link]}; "
                               f"a link is attached to one station")
                continue
            owner_of[link] = name
    devices = entries(checker.data, "devices")
    placed = [name for name, device in devices.items() if isinstance(device.get("station"), str)]
    for name, device in devices.items():
        _device(checker, name, device, stations, owner_of, remote_run=bool(placed))


def _device(checker: Checker, name: str, device: dict[str, object],
            stations: dict[str, dict[str, object]], owner_of: dict[str, str], *,
            remote_run: bool) -> None:
    link, _, link_path = device_link(device)
    station = device.get("station")
    if isinstance(station, str):
        if not checker.reference(("devices", name, "station"), station, "stations", "station",
                                 owner=f"device {name}"):
            return
        if isinstance(link, str) and link in checker.data.get("transports", {}) \
                and owner_of.get(link) != station:
            links = stations[station].get("links")
            listed = ", ".join(str(n) for n in links) if isinstance(links, list) else ""
            elsewhere = f" (it is on station {owner_of[link]})" if link in owner_of else ""
            checker.at(("devices", name, *link_path),
                       f"device {name} is on station {station}, but link '{link}' is not one "
                       f"of its links{elsewhere}; station {station} has: {listed or 'none'}")
        return
    if isinstance(link, str) and link in owner_of:
        checker.at(("devices", name, *link_path),
                   f"device {name} uses link '{link}', which is on station {owner_of[link]}; "
                   f"add `station: {owner_of[link]}` to the device")
    elif remote_run:
        checker.at(("devices", name), f"device {name} names no station, but this manifest "
                                      f"flashes on stations; give it a `station:` (a run is "
                                      f"either all on this host or all on stations)", key=True)
