"""The station commands of the CLI: ``station`` (station side), ``stations``, ``collect``.

:func:`register` adds them to the main parser; each handler returns an exit
code like every other command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runner.stations.remote import add_station_parser

__all__ = ["register"]


def register(commands: Any) -> None:
    add_station_parser(commands)
    stations = commands.add_parser("stations", help="the stations of a manifest: check them, "
                                                    "or start local ones for a rehearsal")
    actions = stations.add_subparsers(dest="stations_command", metavar="ACTION",
                                      parser_class=type(stations))
    actions.required = True
    check = actions.add_parser("check", help="reach every station: host key, flashrunner "
                                             "version, free cache space, links seen")
    check.add_argument("manifest", type=Path)
    check.add_argument("--json", action="store_true")
    check.add_argument("--allow-path", type=Path, action="append", default=[], metavar="DIR",
                       help="also read included and data files under DIR")
    check.set_defaults(handler=_cmd_check)
    local = actions.add_parser("serve-local", help="run a manifest's stations as OpenSSH "
                                                   "servers on 127.0.0.1 (a rehearsal)")
    local.add_argument("manifest", type=Path)
    local.add_argument("--allow-path", type=Path, action="append", default=[], metavar="DIR",
                       help="also read included and data files under DIR")
    local.add_argument("--folder", type=Path, metavar="DIR",
                       help="keys and station folders (default: the folder the stations' "
                            "identity-file is in)")
    local.set_defaults(handler=_cmd_serve_local)

    collect = commands.add_parser("collect", help="fetch from the stations the outcome of "
                                                  "devices a run lost contact with")
    collect.add_argument("log", type=Path, metavar="LOG")
    collect.add_argument("--manifest", type=Path,
                         help="the manifest of the run (default: the one the log names)")
    collect.add_argument("--quiet", action="store_true")
    collect.set_defaults(handler=_cmd_collect)


def _cmd_check(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from runner.manifest import load_manifest
    from runner.stations.check import check_stations

    manifest = load_manifest(args.manifest, allow=args.allow_path)
    reports = asyncio.run(check_stations(manifest))
    if args.json:
        json.dump(reports, sys.stdout, indent=2)
        sys.stdout.write("\n")
    for report in reports if not args.json else ():
        name = report["station"]
        if not report["ok"]:
            print(f"{name}: FAILED {report['error_category']}: {report['error']}")
            continue
        free = report["cache_free_bytes"] / 2**30
        print(f"{name}: ok  {report['address']}  host key {report['host_key']}")
        print(f"    flashrunner {report['version']} (python {report['python']}), "
              f"cache {report['cache']} {free:.1f} GiB free")
        seen = report["links"]
        print(f"    links seen: {', '.join(seen) if seen else 'none'}")
        for link in report["links_missing"]:
            print(f"    note: {link}")
    return 0 if all(report["ok"] for report in reports) else 1


def _cmd_serve_local(args: argparse.Namespace) -> int:
    import signal
    import time

    from runner.errors import PlanError
    from runner.manifest import load_manifest
    from runner.stations.localsshd import start_station

    manifest = load_manifest(args.manifest, allow=args.allow_path)
    if not manifest.stations:
        raise PlanError(f"{args.manifest} has no stations")
    folders = {station.identity_file.parent for station in manifest.stations.values()}
    folder = args.folder or (folders.pop() if len(folders) == 1 else None)
    if folder is None:
        raise PlanError("the stations use keys in several folders; say which with --folder")
    running = []
    try:
        for station in manifest.stations.values():
            if station.hosts[0] not in ("127.0.0.1", "localhost"):
                raise PlanError(f"station {station.name} is at {station.hosts[0]}, not on "
                                f"this machine (127.0.0.1)")
            running.append(start_station(folder, station.name, station.port))
            print(f"station {station.name}: sshd pid {running[-1].pid} on "
                  f"127.0.0.1:{station.port}, home {running[-1].home}", flush=True)
        print("serving; Ctrl-C stops them", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while all(s.process.poll() is None for s in running):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for server in running:
            server.stop()


def _cmd_collect(args: argparse.Namespace) -> int:
    from runner.stations.collect import collect

    return collect(args.log, manifest_path=args.manifest,
                   console=None if args.quiet else sys.stderr)
