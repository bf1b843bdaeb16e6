"""``flashrunner discover`` (and ``--write``) and ``flashrunner info`` on the command line.

The walk is :mod:`runner.discover`, the inventory edit :mod:`runner.inventory`,
the chip report :mod:`runner.info`; this module parses the options, composes
the far ends (the host's, or a rehearsal's) and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import PlanError

if TYPE_CHECKING:
    from runner.discover import Discovery
    from runner.interactive import Prompter
    from runner.inventory import InventoryChange, Namer

__all__ = ["register"]

EXIT_OK = 0
#: discover found ambiguities (or --write would change the file, with --dry-run).
EXIT_FLAGGED = 1


def register(commands: Any) -> None:
    """Add ``discover`` to the CLI's sub-commands."""
    discover = commands.add_parser(
        "discover", help="list attached ST-Link probes, ROM DFU devices, hubs and serial/I2C/CAN "
                         "adapters by port path")
    discover.add_argument("--json", action="store_true", help="the result as JSON on stdout")
    discover.add_argument("--manifest", type=Path, metavar="MANIFEST",
                          help="name each device after the link of MANIFEST (or an include's "
                               "transports:) bound to it")
    discover.add_argument("--simulate", type=Path, metavar="MANIFEST",
                          help="walk MANIFEST's rehearsal bench instead of the host's USB bus")
    discover.add_argument("--write", type=Path, metavar="FILE",
                          help="add newly found links to FILE's transports: and mark links "
                               "whose device is gone (a unified diff is printed first)")
    discover.add_argument("--dry-run", action="store_true",
                          help="with --write: print the diff, change nothing")
    discover.add_argument("--prune", action="store_true",
                          help="with --write: remove the links whose device is gone")
    discover.add_argument("--interactive", action="store_true",
                          help="with --write: ask each new link's name, hub port and "
                               "BOOT0/NRST wiring, show the diff, and ask before writing")
    discover.add_argument("--station", nargs="+", metavar="NAME",
                          help="run discover on these stations of the --manifest (or "
                               "--simulate) manifest over SSH, and report per station")
    discover.add_argument("--allow-path", type=Path, action="append", default=[],
                          metavar="DIR", help="with --station: also read included files "
                                              "under DIR")
    discover.add_argument("--no-firmware", action="store_true",
                          help="do not open probes to read their firmware version")
    discover.set_defaults(handler=_cmd_discover)

    info = commands.add_parser(
        "info", help="connect to one chip and print who it is (DEV_ID, UID, flash, RDP, …)")
    info.add_argument("manifest", type=Path, nargs="?", metavar="MANIFEST")
    info.add_argument("device", nargs="?", metavar="DEVICE", help="a device of MANIFEST")
    info.add_argument("--link", metavar="KIND[,key=value…]",
                      help="no manifest: the link, as the one-line commands take it "
                           "(stlink,serial=066D… / uart,port=/dev/ttyUSB0,boot0=rts)")
    info.add_argument("--chip", metavar="PART", help="with --link: the part expected there")
    info.add_argument("--simulate", action="store_true", default=None,
                      help="ask a simulated chip (rehearsal)")
    info.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    info.add_argument("--allow-path", type=Path, action="append", default=[], metavar="DIR",
                      help="also read included files under DIR")
    info.set_defaults(handler=_cmd_info)


def _cmd_discover(args: argparse.Namespace) -> int:
    from runner.discover import render_json, render_table

    if (args.dry_run or args.prune or args.interactive) and args.write is None:
        raise PlanError("--dry-run, --prune and --interactive go with --write FILE")
    prompter = _prompter() if args.interactive else None
    if args.station:
        return _discover_stations(args, prompter)
    result = discover_here(args.write or args.manifest, args.simulate,
                           read_firmware=not args.no_firmware)
    if args.write is not None:
        from runner.inventory import sync_inventory

        change = sync_inventory(args.write, result, prune=args.prune,
                                dry_run=args.dry_run or prompter is not None,
                                namer=_namer(prompter))
        _show_and_write(args, change, prompter)
        unwalked = [f.message for f in result.flags if f.problem == "usb-not-walked"]
        sys.stderr.writelines(f"{message}\n" for message in unwalked)
        return EXIT_FLAGGED if unwalked else EXIT_OK
    sys.stdout.write(render_json(result) if args.json else render_table(result))
    return EXIT_FLAGGED if result.flags else EXIT_OK


def _prompter() -> Prompter:
    """The terminal's questions for --interactive; refused without a terminal."""
    from runner.interactive import Prompter

    if not sys.stdin.isatty():
        raise PlanError("--interactive asks on a terminal, and stdin is not one; nothing "
                        "was written", hint="run it in a terminal, or leave out "
                                            "--interactive to name new links by the pattern")
    return Prompter(source=sys.stdin, output=sys.stdout)


def _namer(prompter: Prompter | None) -> Namer | None:
    if prompter is None:
        return None
    from runner.interactive import name_links

    return name_links(prompter)


def _show_and_write(args: argparse.Namespace, change: InventoryChange,
                    prompter: Prompter | None) -> None:
    """Print the diff; with --interactive, write only once the operator says yes."""
    from runner.inventory import commit

    sys.stdout.write(change.diff or f"{args.write}: already in sync, nothing to change\n")
    if prompter is None or not change.diff or args.dry_run:
        return
    if prompter.confirm(f"write these changes to {args.write}?"):
        commit(change)
        prompter.say(f"{args.write}: written")
    else:
        prompter.say(f"{args.write}: nothing written")


def _discover_stations(args: argparse.Namespace, prompter: Prompter | None) -> int:
    """``--station NAME…``: discover on each station over SSH, reported per station."""
    import asyncio
    import json

    from runner.manifest import load_manifest
    from runner.stations.discovery import (
        discover_on_stations,
        pick_stations,
        render_station_tables,
        station_scans,
        stations_json,
    )

    if args.manifest is not None and args.simulate is not None:
        raise PlanError("with --station, give the manifest once: --manifest M (the stations' "
                        "own buses) or --simulate M (their rehearsal benches)")
    source = args.manifest or args.simulate
    if source is None:
        raise PlanError("--station needs the manifest that defines the stations: "
                        "--manifest M (or --simulate M for a rehearsal)",
                        hint="flashrunner discover --station pi1 --manifest product.yaml")
    manifest = load_manifest(source, allow=args.allow_path)
    stations = pick_stations(manifest, args.station)
    scans = station_scans(manifest, stations, simulate=args.simulate is not None)
    reports = asyncio.run(discover_on_stations(scans, simulate=args.simulate is not None,
                                               read_firmware=not args.no_firmware))
    failed = [r for r in reports if r.result is None]
    flagged = any(r.result.flags for r in reports if r.result is not None)
    if args.write is not None:
        from runner.inventory import sync_stations

        answered = {r.station.name: r.result for r in reports if r.result is not None}
        for report in failed:
            sys.stderr.write(f"station {report.station.name}: not reached, its section of "
                             f"{args.write} is left as it is: {report.problem}\n")
        if answered:
            change = sync_stations(args.write, answered, prune=args.prune,
                                   dry_run=args.dry_run or prompter is not None,
                                   namer=_namer(prompter))
            _show_and_write(args, change, prompter)
        return EXIT_FLAGGED if failed else EXIT_OK
    if args.json:
        sys.stdout.write(json.dumps(stations_json(reports), indent=2) + "\n")
    else:
        sys.stdout.write(render_station_tables(reports))
    return EXIT_FLAGGED if failed or flagged else EXIT_OK


def discover_here(inventory: Path | None, rehearsal: Path | None, *,
                  read_firmware: bool) -> Discovery:
    """Walk this host's USB bus (or ``rehearsal``'s bench), bound to ``inventory``'s links."""
    from runner.discover import discover_host, inventory_links
    from runner.launch import usb_bench

    links = inventory_links(inventory) if inventory is not None else []
    with usb_bench(_rehearsal(rehearsal)) as control:
        return discover_host(control, links=links, read_firmware=read_firmware)


def _rehearsal(path: Path | None) -> Any:
    """The plan whose rehearsal bench is walked (``None``: the host's bus)."""
    if path is None:
        return None
    from runner.compiler import compile_plan
    from runner.manifest import load_manifest

    return compile_plan(load_manifest(path), simulate=True)


#: The device a ``--link`` manifest has (runner.oneline.DEVICE).
_ONE_DEVICE = "target"
#: The part a ``--link`` session starts from when no ``--chip`` is given (DEV_ID tells).
_FIRST_GUESS = "stm32f103rb"


def _cmd_info(args: argparse.Namespace) -> int:
    from runner.info import chip_info, plan_endpoints, render_json, render_text

    if args.link is not None and args.manifest is not None:
        raise PlanError("give either MANIFEST DEVICE or --link, not both")
    if args.link is None and (args.manifest is None or args.device is None):
        raise PlanError("info needs MANIFEST DEVICE, or --link KIND[,key=value…]",
                        hint="flashrunner info line.yaml sensor-1 / flashrunner info --link "
                             "stlink,serial=066DFF485550755187121723 --chip stm32f411re")
    if args.link is None and args.chip is not None:
        raise PlanError("--chip goes with --link; a manifest names each device's chip")
    expected = args.link is None or args.chip is not None
    if args.link is not None and args.chip is None and args.simulate:
        raise PlanError("info --link --simulate needs --chip: the simulated chip is that part")
    plan = _info_plan(args)
    devices = [d for d in plan.devices if d.device == (args.device or _ONE_DEVICE)]
    if not devices:
        known = ", ".join(d.device for d in plan.devices) or "none"
        raise PlanError(f"{args.manifest}: no device {args.device} (devices: {known})")
    with plan_endpoints(plan) as endpoints:
        report = chip_info(devices[0], endpoints, expected=expected)
    sys.stdout.write(render_json([report]) if args.json else render_text(report))
    return EXIT_FLAGGED if report.mismatch else EXIT_OK


def _link_part(kind: str, options: Any, part: str | None) -> str:
    """The part an ``info --link`` session expects, refused when the link cannot reach it.

    Without ``--chip`` it is the first guess (DEV_ID tells): one whose ROM the link reaches.
    """
    from runner.romlinks import unreachable
    from transports.chips import chip_database

    chips = chip_database()
    if part is not None:
        try:
            chip = chips.part(part)
        except KeyError:
            return part  # the manifest checks name the close parts
        why = unreachable(chip, kind, options)
        if why is not None:
            raise PlanError(f"--link {kind} --chip {part}: {why}")
        return part
    if kind == "i2c" and options.get("address") is None:
        raise PlanError("--link i2c without --chip needs address=: the ROM's I2C address "
                        "differs per line (AN2606)",
                        hint="flashrunner info --link i2c,bus=1 --chip stm32g071rb")
    guesses = [chips.part(_FIRST_GUESS), *chips.chips.values()]
    return next(c.part for c in guesses if unreachable(c, kind, options) is None)


def _info_plan(args: argparse.Namespace) -> Any:
    import tempfile

    from runner.compiler import compile_plan
    from runner.errors import ManifestError
    from runner.manifest import load_manifest
    from runner.oneline import OneLine, manifest_yaml, parse_link, synthesise

    if args.link is None:
        return compile_plan(load_manifest(args.manifest, allow=args.allow_path),
                            simulate=args.simulate)
    link = parse_link(args.link)
    request = OneLine(command="info", part=_link_part(link.kind, link.options, args.chip),
                      link=link, steps=({"erase": {"scope": "mass"}},),
                      simulate=bool(args.simulate))
    with tempfile.TemporaryDirectory(prefix="flashrunner-info-") as folder:
        path = Path(folder) / "info.yaml"
        path.write_text(manifest_yaml(synthesise(request)), encoding="utf-8")
        try:
            return compile_plan(load_manifest(path), simulate=bool(args.simulate) or None)
        except ManifestError as error:
            raise PlanError("; ".join(dict.fromkeys(i.message for i in error.issues))) from None
