"""``flashrunner`` — the command line.

Exit codes (README, "Exit codes"): 0 every device succeeded · 1 at least one device failed ·
2 the manifest or the command line is invalid · 3 the environment is missing
something · 130 interrupted. A user error never shows a traceback unless
``--debug`` is given (before or after the command); ``--debug`` never changes
the exit code.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

from runner.audit.cli import add_run_options as add_audit_run_options
from runner.audit.cli import after_run as after_audit_run
from runner.audit.cli import register as register_audit
from runner.audit.cli import run_options as audit_run_options
from runner.cli_oneline import add_output_options
from runner.errors import (
    EnvironmentProblem,
    ImageError,
    Interrupted,
    ManifestError,
    PlanError,
    RunnerError,
)

__all__ = ["EXIT_ENVIRONMENT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_INVALID", "EXIT_OK",
           "entry", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that exits with our code for a bad command line (2, as argparse does)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_INVALID, f"{self.prog}: error: {message}\n")


def _add_allow_path(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-path", type=Path, action="append", default=[], metavar="DIR",
                        help="also read included and data files under DIR (default: only "
                             "under the manifest's folder)")


class _VersionAction(argparse.Action):
    """``--version``: flashrunner, Python, pyusb/libusb, pyserial, python-can (a bug report)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                  values: Any, option_string: str | None = None) -> None:
        from runner.versions import version_report

        print(version_report())
        parser.exit(EXIT_OK)


class _CommandParser(_Parser):
    """A sub-command's parser: also takes ``--debug`` (``flashrunner run X --debug``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="show tracebacks for errors (for bug reports)")


def _add_plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="the manifest (YAML)")
    _add_allow_path(parser)
    simulate = parser.add_mutually_exclusive_group()
    simulate.add_argument("--simulate", action="store_true", default=None,
                          help="swap every link for a simulated chip (rehearsal)")
    simulate.add_argument("--no-simulate", dest="simulate", action="store_false",
                          help="use the real links even if the manifest says simulate: true")
    parser.add_argument("--only", nargs="+", metavar="DEVICE",
                        help="restrict the run to these devices")
    parser.add_argument("--max-parallel", type=int, metavar="N",
                        help="override execution.max-parallel")


def _add_run(commands: Any) -> None:
    run = commands.add_parser("run", help="flash every device of a manifest")
    _add_plan_options(run)
    run.add_argument("--log-file", type=Path, metavar="PATH",
                     help="write the JSONL audit log here (overrides log.file)")
    add_output_options(run)
    add_audit_run_options(run)
    run.set_defaults(handler=_cmd_run)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``flashrunner`` parser; ``command="run"`` builds only that sub-command.

    A line starts ``flashrunner run`` for every board, and building the other
    sub-commands' parsers would cost it ~5 ms before its first byte; ``run``'s
    own parser, its usage and its errors are the same either way.
    """
    parser = _Parser(prog="flashrunner",
                     description="Flash STM32 microcontrollers from a validated YAML manifest.")
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="the version of flashrunner and of the libraries under its links")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks for errors (for bug reports)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     parser_class=_CommandParser)
    commands.required = True
    if command == "run":
        _add_run(commands)
        return parser

    validate = commands.add_parser("validate", help="check manifests; report every problem")
    validate.add_argument("manifests", type=Path, nargs="+", metavar="MANIFEST")
    validate.add_argument("--json", action="store_true", help="problems as JSON on stdout")
    _add_allow_path(validate)
    validate.set_defaults(handler=_cmd_validate)

    plan = commands.add_parser("plan", help="show what `run` would do, touching no hardware")
    _add_plan_options(plan)
    plan.add_argument("--format", choices=("table", "json", "dot"), default="table")
    plan.set_defaults(handler=_cmd_plan)

    _add_run(commands)

    chips = commands.add_parser("chips", help="list the chips flashrunner knows")
    chips.add_argument("part", nargs="?", metavar="PART|TEXT",
                       help="show one part in detail (a part or an ordering code), or list "
                            "the parts whose name contains TEXT (f103, h743)")
    chips.add_argument("--family", help="only this family (f1, f4, g0, …)")
    chips.add_argument("--json", action="store_true")
    chips.set_defaults(handler=_cmd_chips)

    kinds = commands.add_parser("transports", help="list the link kinds and what they can do")
    kinds.add_argument("kind", nargs="?", help="show this kind's manifest options")
    kinds.set_defaults(handler=_cmd_transports)

    pin = commands.add_parser("pin", help="set the images' sha256 pins to their files' digests")
    pin.add_argument("manifest", type=Path, help="the manifest (YAML); includes are followed")
    pin.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    pin.set_defaults(handler=_cmd_pin)

    pack = commands.add_parser("dfu-pack", help="pack images into one DfuSe .dfu file")
    pack.add_argument("out", type=Path, metavar="OUT.dfu")
    pack.add_argument("images", nargs="+", metavar="IMAGE[@ADDRESS]",
                      help="any supported image; raw binaries need @ADDRESS")
    pack.add_argument("--vid", type=_uint16, default=0xFFFF,
                      help="USB vendor id in the suffix (default 0xFFFF: any; ST's is 0x0483)")
    pack.add_argument("--pid", type=_uint16, default=0xFFFF,
                      help="USB product id (default 0xFFFF: any; the ROM's is 0xDF11)")
    pack.add_argument("--bcd", type=_uint16, default=0xFFFF,
                      help="device release, bcdDevice (default 0xFFFF: any)")
    pack.set_defaults(handler=_cmd_dfu_pack)

    from runner.cli_oneline import register as register_oneline

    register_oneline(commands)

    from runner.cli_discover import register as register_discover

    register_discover(commands)
    register_audit(commands)

    from runner.stations.commands import register as register_station_commands

    register_station_commands(commands)

    examples = commands.add_parser("examples", help="list the example manifests, or copy them")
    examples.add_argument("--copy", type=Path, metavar="DIR",
                          help="copy every example, with its images, into DIR")
    examples.set_defaults(handler=_cmd_examples)

    completion = commands.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=("bash", "zsh"))
    completion.set_defaults(handler=lambda args: _cmd_completion(args, parser))
    return parser


def _uint16(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"{text} does not fit in 16 bits")
    return value


# ------------------------------------------------------------------------------ commands


def _cmd_validate(args: argparse.Namespace) -> int:
    from runner.compiler import compile_plan
    from runner.console import plural
    from runner.manifest import load_manifest

    worst = EXIT_OK
    report: list[dict[str, object]] = []
    for path in args.manifests:
        try:
            manifest = load_manifest(path, allow=args.allow_path)
        except ManifestError as error:
            worst = EXIT_INVALID
            if args.json:
                report.append({"manifest": str(path), "valid": False,
                               "issues": [{"file": i.file, "line": i.line, "column": i.column,
                                           "where": i.where, "message": i.message}
                                          for i in error.issues]})
            else:
                print(error, file=sys.stderr)
            continue
        # The plan's warnings too (bytes a partial-sector erase loses, …): a manifest
        # that validates clean does not surprise anyone at run time.
        try:
            plan = compile_plan(manifest)
        except (PlanError, ImageError) as error:
            worst = EXIT_INVALID
            if args.json:
                report.append({"manifest": str(path), "valid": False,
                               "issues": [{"file": str(path), "line": 0, "column": 0,
                                           "where": "", "message": str(error)}]})
            else:
                print(f"{path}: {error}", file=sys.stderr)
            continue
        warnings = [*manifest.warnings, *plan.warnings]
        if args.json:
            report.append({"manifest": str(path), "valid": True, "name": manifest.name,
                           "devices": len(manifest.devices), "warnings": warnings})
        else:
            for warning in warnings:
                print(f"warning: {warning}", file=sys.stderr)
            print(f"{path}: valid ({plural(len(manifest.devices), 'device')}, "
                  f"{plural(len(manifest.images), 'image')}, "
                  f"{plural(len(manifest.links), 'link')})")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return worst


def _compile(args: argparse.Namespace) -> object:
    from runner.compiler import compile_plan
    from runner.manifest import load_manifest

    manifest = load_manifest(args.manifest, allow=args.allow_path)
    return compile_plan(manifest, only=args.only, simulate=args.simulate,
                        max_parallel=args.max_parallel)


def _cmd_plan(args: argparse.Namespace) -> int:
    from runner.plan import Plan
    from runner.render import render_dot, render_table, write_json

    plan = _compile(args)
    assert isinstance(plan, Plan)
    if args.format == "json":
        write_json(plan, sys.stdout)
    elif args.format == "dot":
        sys.stdout.write(render_dot(plan))
    else:
        sys.stdout.write(render_table(plan))
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    from runner.cli_oneline import tracing_for
    from runner.console import console_for
    from runner.launch import run_manifest

    # From here on a signal cancels the run (which then ends interrupted, its log
    # complete); once it has finished, its exit code stands whatever arrives.
    cancel = threading.Event()
    _signals_set(cancel)
    renderer = console_for(sys.stderr, quiet=args.quiet, colour=args.color,
                           json_stdout=args.json)
    result = run_manifest(args.manifest, simulate=args.simulate, only=args.only,
                          max_parallel=args.max_parallel, log_file=args.log_file,
                          json_stdout=args.json, time_scale=args.time_scale,
                          allow=args.allow_path, cancel=cancel, console=renderer,
                          tracing=tracing_for(args, renderer), **audit_run_options(args))
    after_audit_run(args, result.log_file)
    if result.stopped_by is not None:
        print(f"flashrunner: error: the run was stopped: {result.stopped_by}; no device "
              f"started after that, devices in flight stopped at a safe point",
              file=sys.stderr)
    if result.log_file is not None:
        print(f"audit log: {result.log_file}", file=sys.stderr)
    return result.exit_code


def _cmd_chips(args: argparse.Namespace) -> int:
    from runner.chipnames import resolve_part, search_parts
    from transports.chips import chip_database

    database = chip_database()
    chips = list(database)
    if args.part:
        try:
            match = resolve_part(database, args.part)
        except KeyError as error:
            chips = search_parts(database, args.part)
            if not chips:
                raise PlanError(f"unknown chip {error.args[0]}; no part's name contains it",
                                hint="`flashrunner chips` lists every part") from None
        else:
            if match.note:
                print(f"flashrunner: {match.note}", file=sys.stderr)
            _print_chip(match.chip, sys.stdout)
            return EXIT_OK
    if args.family:
        families = sorted({c.family for c in database})
        family = args.family.lower()
        if family not in families:
            raise PlanError(f"unknown family {args.family!r}",
                            hint=f"families: {', '.join(families)}")
        chips = [c for c in chips if c.family == family]
    if args.json:
        json.dump([{"part": c.part, "family": c.family, "dev_id": f"0x{c.dev_id:03X}",
                    "flash_kib": c.flash_kib, "ram_kib": (c.ram[1] - c.ram[0]) // 1024,
                    "controller": c.controller, "line": c.line,
                    "bootloader": sorted(c.bootloader.interfaces)} for c in chips],
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    print(f"{'part':<14} {'dev_id':<7} {'flash':>7} {'ram':>6}  {'controller':<10} line")
    for c in chips:
        ram_kib = (c.ram[1] - c.ram[0]) // 1024
        print(f"{c.part:<14} 0x{c.dev_id:03X}   {c.flash_kib:>5}K {ram_kib:>5}K"
              f"  {c.controller:<10} {c.line}")
    print(f"{len(chips)} part{'s' if len(chips) != 1 else ''}")
    return EXIT_OK


def _print_chip(chip: object, out: TextIO) -> None:
    from transports.chips import Chip

    assert isinstance(chip, Chip)
    flash = chip.flash
    units = "/".join(f"{u // 1024}K" if u >= 1024 else str(u)
                     for u in sorted({b.size for b in flash.blocks}))
    print(f"{chip.part}: {chip.line} ({chip.family}, {chip.core})", file=out)
    print(f"  dev_id       0x{chip.dev_id:03X}", file=out)
    print(f"  flash        0x{flash.base:08X}..0x{flash.end:08X} ({chip.flash_kib} KiB, "
          f"{len(flash.blocks)} erase units of {units}, "
          f"write unit {flash.write_unit} B, {flash.banks} bank(s))", file=out)
    print(f"  ram          0x{chip.ram[0]:08X}..0x{chip.ram[1]:08X}", file=out)
    print(f"  controller   {chip.controller}"
          + (f" at 0x{chip.flash_controller_address:08X}" if chip.flash_controller_address
             else ""), file=out)
    print(f"  option bytes 0x{chip.option_bytes.address:08X} ({chip.option_bytes.size} B)",
          file=out)
    print(f"  registers    IDCODE 0x{chip.idcode_address:08X}, flash size "
          f"0x{chip.flash_size_address:08X}, UID 0x{chip.uid_address:08X}", file=out)
    if chip.bootloader.interfaces:
        print(f"  bootloader   {', '.join(sorted(chip.bootloader.interfaces))}", file=out)
    print(f"  reference    {chip.reference}", file=out)


def _cmd_transports(args: argparse.Namespace) -> int:
    from transports.base import simulated_endpoints
    from transports.registry import available_kinds, load_transport, plugin_problems

    if args.kind:
        _print_options(args.kind, load_transport(args.kind).options_schema, sys.stdout)
        return EXIT_OK
    for kind in available_kinds():
        try:
            klass = load_transport(kind)
        except RunnerError as error:
            print(f"{kind:<8} unavailable: {error.message}")
            continue
        caps = ", ".join(sorted(c.value for c in klass.capabilities))
        simulated = "" if simulated_endpoints(klass) else "  (cannot be simulated)"
        print(f"{kind:<8} {caps}{simulated}")
    for problem in plugin_problems():
        if problem.shadowed:   # a broken plugin is listed above as unavailable
            print(f"flashrunner: warning: {problem}", file=sys.stderr)
    return EXIT_OK


def _yaml_value(value: Any) -> str:
    """A value as a manifest writes it: ``false``, ``115200``, ``even``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _describe_type(spec: Mapping[str, Any]) -> str:
    if "enum" in spec:
        return " | ".join(_yaml_value(value) for value in spec["enum"])
    for key in ("anyOf", "oneOf"):
        if key in spec:
            return " or ".join(_describe_type(option) for option in spec[key])
    kind = spec.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def _print_options(kind: str, schema: Mapping[str, Any], out: TextIO) -> None:
    required = set(schema.get("required", ()))
    print(f"options of kind {kind} (link or device level):", file=out)
    for name, spec in schema.get("properties", {}).items():
        flags = " (required)" if name in required else ""
        if "default" in spec:
            flags += f" (default {_yaml_value(spec['default'])})"
        print(f"  {name}: {_describe_type(spec)}{flags}", file=out)
        if spec.get("description"):
            print(f"      {spec['description']}", file=out)


def _cmd_examples(args: argparse.Namespace) -> int:
    from runner.console import plural
    from runner.example_files import copy_examples, list_examples

    if args.copy is not None:
        copied = copy_examples(args.copy)
        manifests = [path for path in copied if path.parent == args.copy
                     and path.suffix == ".yaml"]
        print(f"copied {plural(len(copied), 'file')} to {args.copy}; try:\n"
              f"  flashrunner run {args.copy / 'demo.yaml'}" if manifests else
              f"copied {plural(len(copied), 'file')} to {args.copy}")
        return EXIT_OK
    examples = list_examples()
    width = max((len(example.name) for example in examples), default=0)
    for example in examples:
        print(f"{example.name:<{width}}  {plural(example.devices, 'device'):>10}  "
              f"{example.description}")
    print(f"in {examples[0].path.parent if examples else '?'}; "
          f"`flashrunner examples --copy DIR` copies them to edit")
    return EXIT_OK


def _cmd_completion(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from runner.completion import completion_script

    sys.stdout.write(completion_script(parser, args.shell))
    return EXIT_OK


def _cmd_pin(args: argparse.Namespace) -> int:
    from runner.pins import update_pins

    changes = update_pins(args.manifest, dry_run=args.dry_run)
    for change in changes:
        print(change)
    verb = "would change" if args.dry_run else "changed"
    print(f"{len(changes)} pin{'s' if len(changes) != 1 else ''} {verb}")
    return EXIT_OK


def _cmd_dfu_pack(args: argparse.Namespace) -> int:
    from runner.dfupack import pack_dfu

    result = pack_dfu(args.out, args.images, vendor=args.vid, product=args.pid,
                      device=args.bcd)
    for image in result.images:
        print(f"{image.name}: {image.path} ({image.format}, {image.memory.size} bytes, "
              f"sha256 {image.sha256})")
    print(f"{result.path}: {result.elements} element{'s' if result.elements != 1 else ''}, "
          f"{result.size} bytes")
    return EXIT_OK


# ------------------------------------------------------------------------------ entry


def _exit_code_for(error: BaseException) -> int:
    if isinstance(error, (ManifestError, PlanError, ImageError)):
        return EXIT_INVALID
    if isinstance(error, EnvironmentProblem):
        return EXIT_ENVIRONMENT
    if isinstance(error, (Interrupted, KeyboardInterrupt)):
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _signals_set(cancel: threading.Event | None) -> None:
    """SIGTERM and Ctrl-C: set ``cancel``, or raise KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        assert cancel is not None
        cancel.set()

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, handler if cancel is not None else _interrupted)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code.

    SIGTERM is handled like Ctrl-C from the start (exit code 130); during ``run``
    either cancels the run, and once the run has finished its exit code stands.
    Called with ``argv`` (from Python rather than as the process's entry point), it
    puts back the signal handlers it found when it returns.
    """
    found = _handlers() if argv is not None else {}
    try:
        return _main(argv)
    finally:
        for number, handler in found.items():
            signal.signal(number, handler)


def _handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}


def _main(argv: Sequence[str] | None) -> int:
    _signals_set(None)
    words = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(words[0] if words else None)
        args = parser.parse_args(words)
    except KeyboardInterrupt:
        print("flashrunner: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    handler: Command = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("flashrunner: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RunnerError as error:
        if args.debug:
            traceback.print_exc()
        prefix = "" if isinstance(error, ManifestError) else "flashrunner: error: "
        print(f"{prefix}{error}", file=sys.stderr)
        return _exit_code_for(error)
    except BrokenPipeError:
        return EXIT_OK
    except Exception as error:
        if args.debug:
            traceback.print_exc()
            return EXIT_FAILED
        print(f"flashrunner: internal error: {type(error).__name__}: {error}\n"
              f"This is a bug in flashrunner; rerun with --debug and report the traceback.",
              file=sys.stderr)
        return EXIT_FAILED


def entry() -> NoReturn:
    """The ``flashrunner`` process: :func:`main`, then out without the interpreter's teardown.

    Freeing every module and object on the way out costs a run ~25 ms after its
    last byte and gives a finished process nothing. What an exit must do is done
    first: the atexit handlers run and the standard streams are flushed (every file
    a run writes is closed by then). While a thread that is not a daemon still
    runs, the ordinary exit is taken, which waits for it.
    """
    code = main()
    if any(thread is not threading.main_thread() and not thread.daemon and thread.is_alive()
           for thread in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a closed pipe: what it did not take is gone anyway
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
