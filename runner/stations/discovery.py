"""``flashrunner discover --station NAME…``: discover run on each station, over SSH.

For every named station, side by side (one failing does not stop the others):

1. connect as a run does (:func:`.ssh.connect`: the host key from
   ``known-hosts`` only, key authentication, bounded connect and login) and
   open SFTP;
2. stage the station's inventory into its content-addressed cache
   (:func:`.staging.put_files`): the station's links and the devices on them,
   or with ``--simulate`` the station's part of the rehearsal exactly as a run
   stages it (its devices, images and simulation settings);
3. run ``flashrunner station discover`` there: the station's own flashrunner
   walks its own USB bus (or that rehearsal bench), binds what it finds to
   the station's links and prints the document ``discover --json`` prints.

A station that cannot be reached or used gets an error entry with the
classified category of :mod:`.errors` (``station-unreachable``, ``host-key``,
``auth``, ``timeout``, ``station-command``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncssh
import yaml

from runner.device_session import error_fields
from runner.discover import JSON_VERSION, Discovery, from_json, render_table
from runner.errors import PlanError
from runner.manifest.checks import device_link, entries
from runner.manifest.sources import read_sources
from runner.manifest.structure import did_you_mean
from runner.model import Manifest, StationSpec
from runner.stations.errors import (
    StationCommandError,
    StationError,
    StationTimeout,
    StationUnreachable,
)
from runner.stations.ssh import command_line, connect
from runner.stations.staging import put_files, station_bundles

__all__ = ["StationReport", "StationScan", "discover_on_stations", "pick_stations",
           "render_station_tables", "station_scans", "stations_json"]

#: The run id the staged rehearsal of a discover names (nothing runs under it).
_RUN_ID = "discover"
#: How long the station's discover may take at least (probes are opened one by one).
_MIN_COMMAND_S = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class StationScan:
    """What one station is asked: the files to stage and its inventory's digest."""

    station: StationSpec
    inventory: str
    files: Mapping[str, Path | bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class StationReport:
    """One station's answer: its discover document, or why there is none."""

    station: StationSpec
    address: str | None = None
    document: Mapping[str, Any] | None = None
    error: Mapping[str, Any] = field(default_factory=dict)

    @property
    def result(self) -> Discovery | None:
        return None if self.document is None else from_json(self.document)

    @property
    def problem(self) -> str:
        """Why there is no document: ``category: message``."""
        return f"{self.error.get('error_category', 'station')}: " \
               f"{self.error.get('error', 'no answer')}"


def pick_stations(manifest: Manifest, names: Sequence[str]) -> list[StationSpec]:
    """The stations ``names`` asks for, in that order, each once.

    Raises:
        PlanError: a name is not a station of ``manifest`` (with the close one).
    """
    picked: list[StationSpec] = []
    for name in dict.fromkeys(names):
        station = manifest.stations.get(name)
        if station is None:
            known = ", ".join(manifest.stations) or "none"
            first = next(iter(manifest.stations.values()), None)
            where = f"{first.location.file}:{first.location.line}" if first is not None \
                else str(manifest.path)
            raise PlanError(f"--station {name}: no such station in {where} (stations: "
                            f"{known}){did_you_mean(name, manifest.stations)}")
        picked.append(station)
    return picked


def station_scans(manifest: Manifest, stations: Sequence[StationSpec], *,
                  simulate: bool) -> list[StationScan]:
    """What to stage on each station for its discover.

    Raises:
        PlanError: with ``simulate``, the stations' part of the rehearsal cannot be built.
    """
    if simulate:
        from runner.compiler import compile_plan

        plan = compile_plan(manifest, simulate=True)
        bundles = station_bundles(manifest, plan, _RUN_ID, stations=[s.name for s in stations])
        return [StationScan(station=s, inventory=bundles[s.name].manifest_sha256,
                            files=bundles[s.name].files) for s in stations]
    data = read_sources(manifest.path, str(manifest.path)).data
    scans = []
    for station in stations:
        document = {
            "description": f"the links of station {station.name} of {manifest.name}",
            "transports": {n: v for n, v in entries(data, "transports").items()
                           if n in station.links},
            "devices": {n: {k: v for k, v in d.items() if k != "station"}
                        for n, d in entries(data, "devices").items()
                        if d.get("station") == station.name
                        or device_link(d)[0] in station.links}}
        text = (f"# flashrunner: the inventory of station {station.name}\n"
                + yaml.safe_dump(document, sort_keys=False)).encode()
        digest = hashlib.sha256(text).hexdigest()
        scans.append(StationScan(station=station, inventory=digest, files={digest: text}))
    return scans


async def discover_on_stations(scans: Sequence[StationScan], *, simulate: bool,
                               read_firmware: bool) -> list[StationReport]:
    """Each station's report, the stations asked side by side."""
    return list(await asyncio.gather(*(
        _discover_on(scan, simulate=simulate, read_firmware=read_firmware)
        for scan in scans)))


async def _discover_on(scan: StationScan, *, simulate: bool,
                       read_firmware: bool) -> StationReport:
    spec = scan.station
    report = StationReport(station=spec)
    try:
        connection = await connect(spec)
    except StationError as error:
        return replace(report, error=error_fields(error))
    try:
        report = replace(report, address=f"{connection.get_extra_info('peername')[0]}:"
                                          f"{spec.port}")
        line = await _ask(connection, scan, simulate=simulate, read_firmware=read_firmware)
        if line.get("station") == "error":
            return replace(report, error={k: v for k, v in line.items()
                                          if k not in ("station", "exit_code")})
        return replace(report, document=line)
    except StationError as error:
        return replace(report, error=error_fields(error))
    except (OSError, asyncssh.Error) as error:
        lost = StationUnreachable(f"station {spec.name}: the connection failed: {error}",
                                  station=spec.name)
        return replace(report, error=error_fields(lost))
    finally:
        connection.close()


async def _ask(connection: asyncssh.SSHClientConnection, scan: StationScan, *,
               simulate: bool, read_firmware: bool) -> dict[str, Any]:
    """Stage, run ``station discover``, and return its last line (re-staging once if stale)."""
    spec = scan.station
    try:
        sftp = await connection.start_sftp_client()
    except (OSError, asyncssh.Error) as error:
        raise StationError(f"station {spec.name}: SFTP refused: {error}", station=spec.name,
                           hint="enable the sftp subsystem for the station user") from error
    argv = [spec.flashrunner, "station", "discover", "--work-dir", spec.work_dir,
            "--inventory", scan.inventory]
    argv += [f"--image={digest}" for digest in scan.files if digest != scan.inventory]
    argv += ["--simulate"] if simulate else []
    argv += [] if read_firmware else ["--no-firmware"]
    force: frozenset[str] = frozenset()
    timeout = max(spec.inactivity_timeout, _MIN_COMMAND_S)
    try:
        for _attempt in range(2):
            await put_files(sftp, f"{spec.work_dir}/cache", scan.files, force=force)
            try:
                done = await asyncio.wait_for(connection.run(command_line(argv)), timeout)
            except (asyncio.TimeoutError, TimeoutError):
                raise StationTimeout(f"station {spec.name}: discover did not answer within "
                                     f"{timeout:g} s", station=spec.name) from None
            line = _last_json(done.stdout)
            if line is None:
                said = done.stderr if isinstance(done.stderr, str) else ""
                raise StationCommandError(
                    f"station {spec.name}: {spec.flashrunner} station discover did not run "
                    f"(exit {done.exit_status}): {said.strip()[-300:] or 'no message'}",
                    station=spec.name,
                    hint="check `flashrunner:` in the station's entry and that flashrunner "
                         "is installed there (`flashrunner stations check`)")
            if line.get("station") != "stale":
                return line
            force = frozenset(str(f) for f in line.get("files", ()))
    finally:
        sftp.exit()
    raise StationError(f"station {spec.name}: the staged files differ from their digest "
                       f"even after sending them again", station=spec.name,
                       hint="check the station's disk and its work-dir")


def _last_json(output: object) -> dict[str, Any] | None:
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output or "")
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        return value if isinstance(value, dict) else None
    return None


# ------------------------------------------------------------------------------ reporting


def _where(report: StationReport) -> str:
    spec = report.station
    return report.address or f"{spec.hosts[0]}:{spec.port}"


def render_station_tables(reports: Sequence[StationReport]) -> str:
    """The discover table of each station under a heading; a failed station says why."""
    parts = []
    for report in reports:
        name = report.station.name
        result = report.result
        if result is None:
            parts.append(f"== station {name} ({_where(report)}): FAILED {report.problem}\n")
            continue
        parts.append(f"== station {name} ({_where(report)})\n" + render_table(result))
    return "\n".join(parts)


def stations_json(reports: Sequence[StationReport]) -> dict[str, Any]:
    """``--json`` with ``--station``: per station its own discover document (or its error)."""
    entries_: list[dict[str, Any]] = []
    for report in reports:
        spec = report.station
        head: dict[str, Any] = {"station": spec.name, "hosts": list(spec.hosts),
                                "port": spec.port, "address": report.address}
        if report.document is not None:
            entries_.append({**head, "ok": True, **report.document})
        else:
            entries_.append({**head, "ok": False, "error": dict(report.error)})
    return {"discover": JSON_VERSION, "stations": entries_}
