"""One call from a manifest file to a finished run: what ``flashrunner run`` does.

``run_manifest`` loads and validates the manifest, compiles the plan with the
operator's overrides, decides where the audit log goes, wires the console and
the ``--json`` stream, and executes. The pieces stay usable one by one
(``load_manifest``, ``compile_plan``, ``execute``); this module only composes
them.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from runner.audit.attest import Signer
from runner.audit.ledger import Ledger, default_ledger_dir
from runner.audit.seal import Sealing
from runner.compiler import compile_plan
from runner.console import ConsoleRenderer
from runner.events import EventSink, FanOutSink
from runner.executor import execute
from runner.logging import StdoutJsonSink, new_run_id
from runner.manifest import load_manifest
from runner.model import LogSpec
from runner.plan import Plan, RunResult

__all__ = ["DEFAULT_LOG_TEMPLATE", "resolve_log", "run_manifest", "run_plan"]

#: Where the audit log goes when the manifest says nothing: beside the manifest.
DEFAULT_LOG_TEMPLATE = "logs/{name}-{run_id}.jsonl"


def resolve_log(plan: Plan, log_file: Path | None) -> LogSpec:
    """The log file for this run: ``--log-file``, else the manifest's template.

    A relative template is relative to the manifest's folder (like every path
    in a manifest); ``--log-file`` is relative to the working directory, as
    any command-line path is, and expands ``{run_id}``, ``{time}``, ``{date}``
    and ``{name}`` as ``log.file`` does.
    """
    if log_file is not None:
        return dataclasses.replace(plan.log, file=str(log_file.expanduser().absolute()))
    template = plan.log.file or DEFAULT_LOG_TEMPLATE
    expanded = os.path.expanduser(template)
    if not os.path.isabs(expanded):
        folder = str(plan.manifest_path.resolve().parent).replace("{", "{{").replace("}", "}}")
        expanded = os.path.join(folder, expanded)
    return dataclasses.replace(plan.log, file=expanded)


def run_manifest(path: str | os.PathLike[str], *, simulate: bool | None = None,
                 only: Sequence[str] | None = None, max_parallel: int | None = None,
                 log_file: Path | None = None, json_stdout: bool = False,
                 time_scale: float | None = None,
                 console: TextIO | ConsoleRenderer | None = None,
                 cancel: threading.Event | None = None,
                 events: EventSink | None = None, ledger: Path | None = None,
                 sign_key: Path | None = None,
                 allow: Sequence[str | os.PathLike[str]] = ()) -> RunResult:
    """Validate, compile and run the manifest at ``path``.

    The run is entered in the host's ledger in ``ledger`` (default:
    :func:`~runner.audit.ledger.default_ledger_dir`); its attestation is signed
    with ``sign_key`` (default: the manifest's ``log.sign-key``; none: unsigned).
    ``allow``: folders besides the manifest's own that may hold included and data
    files.

    Raises:
        ManifestError, PlanError, ImageError: nothing was run.
        EnvironmentProblem: the log file cannot be written; nothing was run.
    """
    manifest = load_manifest(path, allow=allow)
    plan = compile_plan(manifest, only=only, simulate=simulate, max_parallel=max_parallel)
    plan = dataclasses.replace(plan, log=resolve_log(plan, log_file))
    return run_plan(plan, json_stdout=json_stdout, time_scale=time_scale, console=console,
                    cancel=cancel, events=events, ledger=ledger, sign_key=sign_key)


def run_plan(plan: Plan, *, run_id: str | None = None, json_stdout: bool = False,
             time_scale: float | None = None,
             console: TextIO | ConsoleRenderer | None = None,
             cancel: threading.Event | None = None,
             events: EventSink | None = None, ledger: Path | None = None,
             sign_key: Path | None = None) -> RunResult:
    """Execute a compiled ``plan`` with the console and ``--json`` sinks wired.

    One audit stream feeds them all: ``--json`` prints the log file's very lines,
    and the console (and ``events``) see the same records, same ``seq`` and ``ts``.

    The plan's ``log.file`` is used as it stands (see :func:`resolve_log`).
    ``console`` is a stream for the default renderer, or a configured one.
    """
    simulation = plan.simulation
    if time_scale is not None:
        if time_scale < 0:
            from runner.errors import PlanError

            raise PlanError("--time-scale must be 0 or more")
        simulation = dataclasses.replace(simulation, time_scale=time_scale)
    plan = dataclasses.replace(plan, simulation=simulation)
    run_id = run_id or new_run_id()
    renderer = console if isinstance(console, ConsoleRenderer) or console is None \
        else ConsoleRenderer(console)
    listeners: list[EventSink] = [renderer] if renderer is not None else []
    if events is not None:
        listeners.append(events)
    stdout = [StdoutJsonSink()] if json_stdout else []
    key = sign_key or plan.log.sign_key
    sealing = Sealing(ledger=Ledger(ledger or default_ledger_dir()),
                      signer=Signer.from_file(key) if key is not None else None)
    try:
        return execute(plan, events=FanOutSink(listeners), outputs=stdout, run_id=run_id,
                       cancel=cancel, sealing=sealing)
    finally:
        if renderer is not None:
            renderer.close()
