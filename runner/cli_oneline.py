"""The one-line commands: ``flash``, ``read``, ``erase``, ``verify``, ``reset``.

Registered by :mod:`runner.cli`; each builds a :class:`~runner.oneline.OneLine`
request, synthesises its one-device manifest and runs it like any manifest
(:mod:`runner.oneline` says how). Exit codes are the manifest workflow's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from runner.errors import PlanError

__all__ = ["add_output_options", "register", "tracing_for"]

Handler = Callable[[argparse.Namespace], int]


def _common(parser: argparse.ArgumentParser) -> None:
    device = parser.add_argument_group("the device")
    device.add_argument("--chip", required=True, metavar="PART",
                        help="the part (stm32f103c8) or its ordering code (STM32F103C8T6)")
    device.add_argument("--link", required=True, metavar="KIND[,KEY=VALUE…]",
                        help="how to reach it: 'stlink', 'stlink,serial=066D…', "
                             "'uart,port=/dev/ttyUSB0,boot0=rts,reset=dtr', 'i2c,bus=1', "
                             "'can,interface=socketcan,channel=can0', 'dfu' "
                             "(`flashrunner transports KIND` lists the keys)")
    run = parser.add_argument_group("the run")
    simulate = run.add_mutually_exclusive_group()
    simulate.add_argument("--simulate", action="store_true",
                          help="rehearse on a simulated chip (nothing is touched)")
    simulate.add_argument("--no-simulate", dest="simulate", action="store_false",
                          help="use the real link (the default)")
    run.add_argument("--print-manifest", action="store_true",
                     help="print the one-device manifest this command runs, run nothing")
    run.add_argument("--log-file", metavar="PATH",
                     help="the JSONL audit log ({run_id}, {time}, {date} expand; default "
                          "logs/COMMAND-{run_id}.jsonl in the working directory)")
    add_output_options(run)


def add_output_options(parser: Any) -> None:
    """What a run shows and where (``run`` and the one-line commands alike).

    ``--json``, ``--time-scale``, ``--quiet``, ``--color``, ``-v``/``-vv`` and
    ``--trace-file`` (the links' protocol commands, for a bad day).
    """
    parser.add_argument("--json", action="store_true",
                        help="stream the events as JSON lines on stdout")
    parser.add_argument("--time-scale", type=float, metavar="X",
                        help="simulated runs: real seconds per simulated second "
                             "(0 = no pacing)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="only the final line and the log path on stderr")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour on stderr (auto: on a terminal, unless NO_COLOR is set)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="show each protocol command and its reply per device; -vv adds "
                             "the raw bytes of every transfer")
    parser.add_argument("--trace-file", type=Path, metavar="PATH",
                        help="write the protocol trace as JSON lines here (never into the "
                             "audit log)")


def tracing_for(args: argparse.Namespace, renderer: Any) -> Any:
    """The run's :class:`~runner.tracelog.Tracing`, or None when nobody asked for one."""
    from runner.tracelog import Tracing

    if not args.verbose and args.trace_file is None:
        return None
    return Tracing(args.verbose, say=renderer.note, path=args.trace_file)


def register(commands: Any) -> None:
    """Add the one-line commands to the ``flashrunner`` sub-command parser."""
    flash = commands.add_parser(
        "flash", help="write images to one chip (erase, write, verify)",
        description="Erase what the images need, write them, verify them; no manifest "
                    "needed. Example: flashrunner flash fw.hex --chip stm32f103c8 --link stlink")
    flash.add_argument("images", nargs="+", metavar="IMAGE[@ADDRESS]",
                       help="bin (needs @ADDRESS), hex, srec, elf or dfu files")
    flash.add_argument("--erase", choices=("used", "mass", "none"), default="used",
                       help="what to erase first (default: the pages the images use)")
    flash.add_argument("--skip-unchanged", action="store_true",
                       help="compare each page or sector first; erase and rewrite only those "
                            "that differ (the verify still checks everything)")
    flash.add_argument("--no-verify", dest="verify", action="store_false",
                       help="skip the verify after the write (on by default)")
    flash.add_argument("--reset", action="store_true",
                       help="reset the chip afterwards so that it runs the new firmware")
    _common(flash)
    flash.set_defaults(handler=_cmd_flash)

    read = commands.add_parser(
        "read", help="save a chip's flash to a file",
        description="Read flash to OUT (.hex: Intel HEX; anything else: raw binary); the "
                    "whole flash unless --address/--size narrow it. Example: flashrunner "
                    "read backup.hex --chip stm32f411ce --link dfu")
    read.add_argument("out", type=Path, metavar="OUT")
    read.add_argument("--address", metavar="A", help="first address (default: flash start)")
    read.add_argument("--size", metavar="N", help="bytes to read (default: to flash end)")
    read.add_argument("--force", action="store_true", help="replace OUT if it exists")
    _common(read)
    read.set_defaults(handler=_cmd_read)

    erase = commands.add_parser(
        "erase", help="mass-erase one chip",
        description="Erase the whole flash. Example: flashrunner erase --chip stm32g071rb "
                    "--link uart,/dev/ttyUSB0")
    _common(erase)
    erase.set_defaults(handler=_cmd_erase)

    verify = commands.add_parser(
        "verify", help="compare a chip's flash with images (writes nothing)",
        description="Compare flash with the images; nothing is erased or written. "
                    "Example: flashrunner verify fw.hex --chip stm32f103c8 --link stlink")
    verify.add_argument("images", nargs="+", metavar="IMAGE[@ADDRESS]")
    verify.add_argument("--method", choices=("auto", "checksum", "readback"), default="auto",
                        help="on-target checksum where the link has one (auto), or read-back")
    _common(verify)
    verify.set_defaults(handler=_cmd_verify)

    reset = commands.add_parser(
        "reset", help="reset one chip",
        description="Reset the chip (the link's natural way unless --mode says). Example: "
                    "flashrunner reset --chip stm32f103c8 --link stlink")
    reset.add_argument("--mode", choices=("hardware", "software", "go"),
                       help="NRST pulse, a core reset, or the ROM's Go command")
    _common(reset)
    reset.set_defaults(handler=_cmd_reset)


# ------------------------------------------------------------------------------ commands


def _cmd_flash(args: argparse.Namespace) -> int:
    steps: list[Mapping[str, Any]] = []
    if args.erase != "none":
        steps.append({"erase": {"scope": args.erase}})
    steps.append({"write": {"images": "*", "skip-unchanged": True}} if args.skip_unchanged
                 else {"write": "*"})
    if args.verify:
        steps.append({"verify": {"method": "auto"}})
    if args.reset:
        steps.append({"reset": {}})
    return _run(args, "flash", steps, images=args.images)


def _cmd_read(args: argparse.Namespace) -> int:
    from runner.oneline import _parse_int

    out: Path = args.out.expanduser()
    settings: dict[str, Any] = {"file": str(out.resolve())}
    if args.address is not None:
        settings["address"] = _address(_parse_int(args.address, "--address"))
    if args.size is not None:
        settings["size"] = _parse_int(args.size, "--size")
    if args.force:
        settings["overwrite"] = True
    elif out.exists() and not args.print_manifest:
        raise PlanError(f"{out} already exists; flashrunner read never replaces a file",
                        hint="give another name, or --force to replace it")
    return _run(args, "read", [{"read": settings}])


def _cmd_erase(args: argparse.Namespace) -> int:
    return _run(args, "erase", [{"erase": {"scope": "mass"}}])


def _cmd_verify(args: argparse.Namespace) -> int:
    return _run(args, "verify", [{"verify": {"method": args.method, "images": "*"}}],
                images=args.images)


def _cmd_reset(args: argparse.Namespace) -> int:
    return _run(args, "reset", [{"reset": {"mode": args.mode} if args.mode else {}}])


# ------------------------------------------------------------------------------ running


def _address(value: int) -> int:
    from runner.oneline import Address

    return Address(value)


def _run(args: argparse.Namespace, command: str, steps: list[Mapping[str, Any]], *,
         images: list[str] | None = None) -> int:
    from datetime import datetime, timezone

    from runner.chipnames import resolve_part
    from runner.console import console_for
    from runner.launch import run_plan
    from runner.logging import log_path, new_run_id
    from runner.oneline import OneLine, manifest_yaml, parse_image, parse_link, prepare, synthesise
    from transports.chips import chip_database

    try:
        match = resolve_part(chip_database(), args.chip)
    except KeyError as error:
        raise PlanError(f"--chip: unknown chip {error.args[0]}",
                        hint="`flashrunner chips TEXT` searches the chip database") from None
    if match.note and not args.quiet:
        print(f"flashrunner: {match.note}", file=sys.stderr)
    request = OneLine(command=command, part=match.chip.part, link=parse_link(args.link),
                      steps=tuple(steps),
                      images=tuple(parse_image(text) for text in images or ()),
                      simulate=bool(args.simulate))
    if args.print_manifest:
        sys.stdout.write(manifest_yaml(synthesise(request, absolute=False)))
        return 0
    now = datetime.now(timezone.utc)
    run_id = new_run_id(now)
    template = args.log_file or f"logs/{command}-{{run_id}}.jsonl"
    log_file = log_path(template, name=command, run_id=run_id, now=now).absolute()
    plan = prepare(request, log_file=log_file)
    renderer = console_for(sys.stderr, quiet=args.quiet, colour=args.color,
                           json_stdout=args.json)
    result = run_plan(plan, run_id=run_id, json_stdout=args.json, time_scale=args.time_scale,
                      console=renderer, tracing=tracing_for(args, renderer))
    if result.log_file is not None:
        print(f"audit log: {result.log_file}", file=sys.stderr)
    return result.exit_code
