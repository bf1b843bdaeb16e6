"""``flashrunner discover`` (and ``--write``) on the command line.

The walk is :mod:`runner.discover`, the inventory edit :mod:`runner.inventory`;
this module parses the options, composes the bus (libusb, or a rehearsal's
with ``--simulate MANIFEST``) and prints.
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
        "discover", help="list attached ST-Link probes, ROM DFU devices and hubs by port path")
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


def _cmd_discover(args: argparse.Namespace) -> int:
    from runner.discover import discover, inventory_links, render_json, render_table
    from runner.launch import usb_bench

    if args.station:
        raise PlanError("discover --station is not available yet: run discover on the "
                        "station itself (ssh STATION flashrunner discover --json)")
    if (args.dry_run or args.prune) and args.write is None:
        raise PlanError("--dry-run and --prune go with --write FILE")
    inventory = args.write or args.manifest
    links = inventory_links(inventory) if inventory is not None else []
    with usb_bench(_rehearsal(args.simulate)) as backend:
        result = discover(backend, links=links, read_firmware=not args.no_firmware)
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
