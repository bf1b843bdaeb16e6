"""``flashrunner stations check``: can every station of a manifest be used?

For each station: connect (host key checked, key authentication), run
``flashrunner station info`` there and report its version, free cache space
and the links it sees, noting each manifest link whose port or port path it
does not see. Stations are checked side by side; one failing does not stop
the others.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncssh

from runner.device_session import error_fields
from runner.model import LinkSpec, Manifest, StationSpec
from runner.stations.errors import StationError
from runner.stations.ssh import command_line, connect

__all__ = ["check_stations"]


async def check_stations(manifest: Manifest) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(_check(manifest, station)
                                       for station in manifest.stations.values())))


async def _check(manifest: Manifest, station: StationSpec) -> dict[str, Any]:
    report: dict[str, Any] = {"station": station.name, "ok": False}
    try:
        connection = await connect(station)
    except StationError as error:
        return {**report, **error_fields(error)}
    try:
        key = connection.get_server_host_key()
        report["address"] = f"{connection.get_extra_info('peername')[0]}:{station.port}"
        report["host_key"] = key.get_fingerprint() if key is not None else None
        argv = [station.flashrunner, "station", "info", "--work-dir", station.work_dir]
        try:
            done = await asyncio.wait_for(connection.run(command_line(argv)),
                                          station.inactivity_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return {**report, "error": "`flashrunner station info` did not answer",
                    "error_category": "timeout"}
        output = done.stdout if isinstance(done.stdout, str) else ""
        try:
            info = json.loads(output.strip().splitlines()[-1])
        except (ValueError, IndexError):
            stderr = done.stderr if isinstance(done.stderr, str) else ""
            return {**report, "error_category": "station-command",
                    "error": f"{station.flashrunner} did not run on the station "
                             f"(exit {done.exit_status}): {stderr.strip()[-300:]}"}
        report.update({k: v for k, v in info.items() if k != "station"}, ok=True)
        report["links_missing"] = [
            note for name in station.links
            if (note := _missing(manifest.links[name], info.get("links", []))) is not None]
        return report
    except (OSError, asyncssh.Error) as error:
        return {**report, "error": str(error), "error_category": "station-unreachable"}
    finally:
        connection.close()


def _missing(link: LinkSpec, seen: list[str]) -> str | None:
    for option in ("port-path", "port", "serial"):
        value = link.options.get(option)
        if isinstance(value, str) and not any(value in entry.split() for entry in seen):
            return f"link {link.name}: {option} {value} not seen"
    return None
