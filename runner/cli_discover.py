"""``flashrunner discover`` (and ``--write``) and ``flashrunner info`` on the command line.

The walk is :mod:`runner.discover`, the inventory edit :mod:`runner.inventory`,
the chip report :mod:`runner.info`; this module parses the options, composes
the far ends (the host's, or a rehearsal's) and prints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runner.errors import PlanError

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
    discover.add_argument("--station", nargs="+", metavar="NAME",
                          help="run on these stations over SSH (not available yet)")
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
    from runner.discover import discover_host, inventory_links, render_json, render_table
    from runner.launch import usb_bench

    if args.station:
        raise PlanError("discover --station is not available yet: run discover on the "
                        "station itself (ssh STATION flashrunner discover --json)")
    if (args.dry_run or args.prune) and args.write is None:
        raise PlanError("--dry-run and --prune go with --write FILE")
    inventory = args.write or args.manifest
    links = inventory_links(inventory) if inventory is not None else []
    with usb_bench(_rehearsal(args.simulate)) as control:
        result = discover_host(control, links=links, read_firmware=not args.no_firmware)
    if args.write is not None:
        from runner.inventory import sync_inventory

        change = sync_inventory(args.write, result, prune=args.prune, dry_run=args.dry_run)
        sys.stdout.write(change.diff or f"{args.write}: already in sync, nothing to change\n")
        return EXIT_OK
    sys.stdout.write(render_json(result) if args.json else render_table(result))
    return EXIT_FLAGGED if result.flags else EXIT_OK


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


def _info_plan(args: argparse.Namespace) -> Any:
    import tempfile

    from runner.compiler import compile_plan
    from runner.errors import ManifestError
    from runner.manifest import load_manifest
    from runner.oneline import OneLine, manifest_yaml, parse_link, synthesise

    if args.link is None:
        return compile_plan(load_manifest(args.manifest, allow=args.allow_path),
                            simulate=args.simulate)
    request = OneLine(command="info", part=args.chip or _FIRST_GUESS,
                      link=parse_link(args.link), steps=({"erase": {"scope": "mass"}},),
                      simulate=bool(args.simulate))
    with tempfile.TemporaryDirectory(prefix="flashrunner-info-") as folder:
        path = Path(folder) / "info.yaml"
        path.write_text(manifest_yaml(synthesise(request)), encoding="utf-8")
        try:
            return compile_plan(load_manifest(path), simulate=bool(args.simulate) or None)
        except ManifestError as error:
            raise PlanError("; ".join(dict.fromkeys(i.message for i in error.issues))) from None
