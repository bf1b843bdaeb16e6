"""The station's side: ``flashrunner station …``, run by the host over SSH.

``station run`` checks the staged files against their digests, starts the run
as a daemon (double fork, its own session: nothing the SSH channel does can
stop it) and then follows its events like ``station tail``. The run folder
``<work-dir>/runs/<run id>/`` holds:

* ``events.jsonl`` — the station's own audit log (it keeps it);
* ``daemon.pid``, ``daemon.log`` (the daemon's stdout/stderr), ``exit.json``;
* ``error.json`` — why the run could not start (a manifest or image problem);
* ``gates/<device>`` — written by the host when a device waiting for a device of
  another station may start (``go``) or must not (the failed device's name);
* ``cancel`` — written by the host to stop the run as Ctrl-C would.

``station tail --after SEQ`` prints every record of ``events.jsonl`` with a
larger ``seq`` and follows the file until the run ends, so a host that lost
its connection resumes exactly where it stopped. Besides the records it prints
control lines ``{"station": …}``: ``started``, ``heartbeat`` (while the run is
quiet, so the host can tell a silent station from a dead one), ``ended``,
``error``, ``lost`` (the daemon is gone without finishing the run) and
``value-request`` (a unit waits for the value the host assigns it, in
``values/<device>@<key>.value``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["EXIT_LOST", "EXIT_STALE", "add_station_parser", "run_dir_of", "station_main"]

#: ``station run``: a staged file is missing or differs from its digest (it was removed).
EXIT_STALE = 4
#: ``station tail``: the run's daemon died without finishing the run.
EXIT_LOST = 5

_POLL_S = 0.05
#: What ``station serve-ssh`` lets the station's key run (besides SFTP).
_STATION_ACTIONS = ("run", "tail", "info", "discover")
_RUN_ID_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.")


def run_dir_of(work_dir: Path, run_id: str) -> Path:
    if not run_id or not set(run_id) <= _RUN_ID_CHARS or run_id.startswith("."):
        raise ValueError(f"bad run id {run_id!r}")
    return work_dir / "runs" / run_id


def cache_of(work_dir: Path) -> Path:
    return work_dir / "cache"


def _emit(out: TextIO, record: dict[str, Any]) -> None:
    out.write(json.dumps(record) + "\n")
    out.flush()


def stale_files(cache: Path, digests: Sequence[str]) -> list[str]:
    """The digests whose cache file is missing or holds other bytes (those are removed)."""
    from runner.images import file_sha256

    stale = []
    for digest in digests:
        path = cache / digest
        try:
            if file_sha256(path) == digest:
                continue
            path.unlink()
        except FileNotFoundError:
            pass
        stale.append(digest)
    return stale


# ------------------------------------------------------------------------------ daemon


def _gate(run_dir: Path, gated: frozenset[str]) -> Any:
    def gate(name: str) -> str | None:
        if name not in gated:
            return "go"
        try:
            return (run_dir / "gates" / name).read_text("utf-8").strip() or None
        except FileNotFoundError:
            return None
    return gate


def _watch_cancel(run_dir: Path, cancel: threading.Event) -> None:
    while not cancel.is_set():
        if (run_dir / "cancel").exists():
            cancel.set()
            return
        time.sleep(_POLL_S * 2)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(json.dumps(data) + "\n", "utf-8")
    os.replace(temporary, path)


def _daemon(args: argparse.Namespace, run_dir: Path) -> int:
    """The run itself (in the daemon process)."""
    from runner.cli import _exit_code_for
    from runner.launch import run_manifest
    from runner.linklocks import LinkLocks, default_lock_dir

    cancel = threading.Event()
    threading.Thread(target=_watch_cancel, args=(run_dir, cancel), daemon=True).start()
    manifest = cache_of(args.work_dir) / args.manifest
    locks = LinkLocks(folder=default_lock_dir(), wait=args.link_lock == "wait",
                      simulated=bool(args.simulate),
                      holder={"run_id": args.run_id, "operator": args.operator or ""})
    try:
        result = run_manifest(manifest, simulate=True if args.simulate else None,
                              log_file=run_dir / "events.jsonl", time_scale=args.time_scale,
                              cancel=cancel, locks=locks,
                              gate=_gate(run_dir, frozenset(args.gated or ())))
        code = result.exit_code
    except Exception as error:
        from runner.device_session import error_fields

        code = _exit_code_for(error)
        _write_json(run_dir / "error.json", {**error_fields(error), "exit_code": code})
    _write_json(run_dir / "exit.json", {"exit_code": code})
    return code


def _daemonise(args: argparse.Namespace, run_dir: Path) -> int:
    """Fork the run off, detached from this process and its SSH channel; its pid."""
    reader, writer = os.pipe()
    first = os.fork()
    if first:
        os.close(writer)
        os.waitpid(first, 0)
        with os.fdopen(reader, "rb") as pipe:
            return int(pipe.read().decode() or "0")
    os.close(reader)
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        (run_dir / "daemon.pid").write_text(f"{os.getpid()}\n")
        os.write(writer, str(os.getpid()).encode())
        os.close(writer)
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(run_dir / "daemon.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        code = _daemon(args, run_dir)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    os._exit(code)


# ------------------------------------------------------------------------------ follow


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _pid(run_dir: Path) -> int | None:
    try:
        return int((run_dir / "daemon.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def follow(run_dir: Path, after: int, out: TextIO, *, heartbeat_s: float) -> int:
    """Print the run's records after ``after`` and follow until the run ends."""
    events = run_dir / "events.jsonl"
    position = 0
    pending = b""
    quiet_since = time.monotonic()
    asked: set[str] = set()
    while True:
        ended = False
        for request in sorted((run_dir / "values").glob("*.request")):
            name = request.name.removesuffix(".request")
            if name not in asked and not request.with_name(f"{name}.value").exists():
                asked.add(name)
                device, _, key = name.rpartition("@")
                _emit(out, {"station": "value-request", "device": device, "key": key})
        if events.exists():
            with events.open("rb") as handle:
                handle.seek(position)
                chunk = handle.read()
            position += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                if isinstance(record.get("seq"), int) and record["seq"] > after:
                    out.write(line.decode("utf-8") + "\n")
                    quiet_since = time.monotonic()
                if record.get("event") == "run.finished":
                    ended = True
            out.flush()
        if ended:
            _emit(out, {"station": "ended", **(_read_json(run_dir / "exit.json") or {})})
            return 0
        error = _read_json(run_dir / "error.json")
        if error is not None:
            _emit(out, {"station": "error", **error})
            return 2
        done = _read_json(run_dir / "exit.json")
        pid = _pid(run_dir)
        if done is not None or (pid is not None and not _alive(pid)):
            # Gone: one more read catches a last record written just before.
            time.sleep(_POLL_S)
            if events.exists() and events.stat().st_size > position:
                continue
            _emit(out, {"station": "lost", "exit": done,
                        "reason": "the run ended without finishing its log"})
            return EXIT_LOST
        if time.monotonic() - quiet_since >= heartbeat_s:
            _emit(out, {"station": "heartbeat"})
            quiet_since = time.monotonic()
        time.sleep(_POLL_S)


# ------------------------------------------------------------------------------ commands


def _cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    cache = cache_of(args.work_dir)
    stale = stale_files(cache, [args.manifest, *(args.image or ())])
    if stale:
        _emit(out, {"station": "stale", "files": stale})
        return EXIT_STALE
    run_dir = run_dir_of(args.work_dir, args.run_id)
    try:
        run_dir.mkdir(parents=True)
        (run_dir / "gates").mkdir()
    except FileExistsError:
        pid = _pid(run_dir)
        _emit(out, {"station": "started", "run_dir": str(run_dir), "pid": pid, "resumed": True})
    else:
        pid = _daemonise(args, run_dir)
        _emit(out, {"station": "started", "run_dir": str(run_dir), "pid": pid,
                    "resumed": False})
    return follow(run_dir, 0, out, heartbeat_s=args.heartbeat)


def _cmd_tail(args: argparse.Namespace, out: TextIO) -> int:
    run_dir = run_dir_of(args.work_dir, args.run_id)
    if not run_dir.is_dir():
        _emit(out, {"station": "error", "error": f"no run {args.run_id} on this station",
                    "error_category": "station-lost", "exit_code": 1})
        return 2
    return follow(run_dir, args.after, out, heartbeat_s=args.heartbeat)


def station_info(work_dir: Path) -> dict[str, Any]:
    """What ``stations check`` reports: version, free cache space, links seen."""
    from runner import __version__
    from runner.stations.links import links_seen

    cache = cache_of(work_dir)
    cache.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(cache)
    return {"station": "info", "version": __version__, "python": sys.version.split()[0],
            "cache": str(cache), "cache_free_bytes": usage.free, "links": links_seen()}


def _cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    _emit(out, station_info(args.work_dir))
    return 0


def _cmd_discover(args: argparse.Namespace, out: TextIO) -> int:
    """``discover --json`` on this station, bound to (or rehearsing) the staged inventory."""
    from runner.cli_discover import discover_here
    from runner.device_session import error_fields
    from runner.discover import as_json
    from runner.errors import RunnerError

    cache = cache_of(args.work_dir)
    stale = stale_files(cache, [args.inventory, *(args.image or ())])
    if stale:
        _emit(out, {"station": "stale", "files": stale})
        return EXIT_STALE
    inventory = cache / args.inventory
    try:
        result = discover_here(inventory, inventory if args.simulate else None,
                               read_firmware=not args.no_firmware)
    except RunnerError as error:
        _emit(out, {"station": "error", **error_fields(error)})
        return 2
    _emit(out, as_json(result))
    return 0


def add_station_parser(commands: Any) -> None:
    """``flashrunner station …`` (what the host runs on a station over SSH)."""
    station = commands.add_parser("station", help="the station side of a run on stations "
                                                  "(started by the host over SSH)")
    actions = station.add_subparsers(dest="station_command", metavar="ACTION",
                                     parser_class=type(station))
    actions.required = True

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--work-dir", type=Path, default=Path(".flashrunner"))
        parser.add_argument("--heartbeat", type=float, default=5.0, metavar="S")

    run = actions.add_parser("run", help="check the staged files, start the run, follow it")
    common(run)
    run.add_argument("--run-id", required=True)
    run.add_argument("--manifest", required=True, metavar="SHA256")
    run.add_argument("--image", action="append", metavar="SHA256")
    run.add_argument("--gated", action="append", metavar="DEVICE")
    run.add_argument("--simulate", action="store_true")
    run.add_argument("--time-scale", type=float)
    run.add_argument("--link-lock", choices=("wait", "fail"), default="wait")
    run.add_argument("--operator")
    run.set_defaults(handler=_station_handler(_cmd_run))

    tail = actions.add_parser("tail", help="follow a run's events after a seq")
    common(tail)
    tail.add_argument("--run-id", required=True)
    tail.add_argument("--after", type=int, default=0, metavar="SEQ")
    tail.set_defaults(handler=_station_handler(_cmd_tail))

    info = actions.add_parser("info", help="version, free cache space, links seen (JSON)")
    common(info)
    info.set_defaults(handler=_station_handler(_cmd_info))

    discover = actions.add_parser("discover", help="discover --json here, against a staged "
                                                   "inventory (JSON)")
    common(discover)
    discover.add_argument("--inventory", required=True, metavar="SHA256")
    discover.add_argument("--image", action="append", metavar="SHA256")
    discover.add_argument("--simulate", action="store_true",
                          help="walk the staged inventory's rehearsal bench")
    discover.add_argument("--no-firmware", action="store_true")
    discover.set_defaults(handler=_station_handler(_cmd_discover))

    serve = actions.add_parser("serve-ssh", help="an SSH forced command: run only station "
                                                 "actions and SFTP")
    serve.add_argument("--sftp-server", default="/usr/lib/openssh/sftp-server")
    serve.set_defaults(handler=_serve_ssh)


def _station_handler(command: Any) -> Any:
    def handler(args: argparse.Namespace) -> int:
        return int(command(args, sys.stdout))
    return handler


def _serve_ssh(args: argparse.Namespace) -> int:
    """``command="flashrunner station serve-ssh"`` in authorized_keys: the key can do no more.

    OpenSSH puts what the client asked for in ``SSH_ORIGINAL_COMMAND``; only
    ``flashrunner station run|tail|info|discover …`` (argv[0] is ignored, this very
    program runs it) and the SFTP subsystem pass.
    """
    import shlex

    asked = os.environ.get("SSH_ORIGINAL_COMMAND", "")
    try:
        argv = shlex.split(asked)
    except ValueError:
        argv = []
    if argv and argv[0] == args.sftp_server:   # the sshd's sftp subsystem, as configured
        os.execv(args.sftp_server, argv)
    if len(argv) < 3 or argv[1] != "station" or argv[2] not in _STATION_ACTIONS:
        print(f"flashrunner: this key may only run station actions, not {asked!r}",
              file=sys.stderr)
        return 2
    return station_main(argv[1:])


def station_main(argv: Sequence[str]) -> int:
    from runner.cli import main

    return main(list(argv))
