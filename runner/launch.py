"""The composition root: where a run is put together, and the one place that knows the simulator.

``run_manifest`` loads and validates the manifest, compiles the plan with the
operator's overrides, decides where the audit log goes, wires the console and
the ``--json`` stream, and executes. :func:`execute` composes the far ends: a
rehearsal's :class:`~transports.sim.world.SimulationWorld` is built here, once,
from the plan (time scale, seed, device profiles), every device's board is
plugged into it as a bench would have it, and the executor gets the simulated
endpoint provider; a real run gets the hardware one. No other module outside
``transports/sim/`` imports the simulator (docs/architecture.md, "The endpoint
seam"). The pieces stay usable one by one (``load_manifest``, ``compile_plan``,
``execute``); this module only composes them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from runner import executor
from runner.audit.attest import Signer
from runner.audit.ledger import Ledger, default_ledger_dir
from runner.audit.seal import Sealing
from runner.compiler import compile_plan
from runner.console import ConsoleRenderer
from runner.errors import PlanError
from runner.events import EventSink, FanOutSink
from runner.executor import Dispatch, Gate
from runner.linklocks import LinkLocks
from runner.logging import RecordOutput, StdoutJsonSink, new_run_id
from runner.manifest import load_manifest
from runner.model import LogSpec
from runner.plan import Plan, RunResult
from runner.tracelog import Tracing
from transports.endpoints import HARDWARE, Endpoints, HostControl

if TYPE_CHECKING:
    # The simulator is imported only by a run that needs it (~45 ms of a hardware run).
    from transports.sim.endpoints import SimulatedEndpoints
    from transports.sim.world import SimulationWorld

__all__ = ["DEFAULT_LOG_TEMPLATE", "compose_endpoints", "execute", "needs_simulation",
           "resolve_log", "run_manifest", "run_plan", "simulated_adapters", "simulation_world"]

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
                 allow: Sequence[str | os.PathLike[str]] = (), locks: LinkLocks | None = None,
                 gate: Gate | None = None, tracing: Tracing | None = None) -> RunResult:
    """Validate, compile and run the manifest at ``path``.

    The run is entered in the host's ledger in ``ledger`` (default:
    :func:`~runner.audit.ledger.default_ledger_dir`); its attestation is signed
    with ``sign_key`` (default: the manifest's ``log.sign-key``; none: unsigned).
    ``allow``: folders besides the manifest's own that may hold included and data
    files. A manifest whose devices are on stations is dispatched to them
    (:mod:`runner.stations`); ``locks`` and ``gate`` are the executor's hooks, used
    by a station's own run.

    Raises:
        ManifestError, PlanError, ImageError: nothing was run.
        EnvironmentProblem: the log file cannot be written; nothing was run.
    """
    manifest = load_manifest(path, allow=allow)
    plan = compile_plan(manifest, only=only, simulate=simulate, max_parallel=max_parallel)
    plan = dataclasses.replace(plan, log=resolve_log(plan, log_file))
    run_id = new_run_id()
    dispatch = None
    if any(device.station for device in manifest.devices.values()):
        from runner.stations.dispatch import station_dispatch

        dispatch = station_dispatch(manifest, plan, run_id=run_id)
    return run_plan(plan, run_id=run_id, json_stdout=json_stdout, time_scale=time_scale,
                    console=console, cancel=cancel, events=events, ledger=ledger,
                    sign_key=sign_key, locks=locks, gate=gate, dispatch=dispatch,
                    tracing=tracing)


def run_plan(plan: Plan, *, run_id: str | None = None, json_stdout: bool = False,
             time_scale: float | None = None,
             console: TextIO | ConsoleRenderer | None = None,
             cancel: threading.Event | None = None,
             events: EventSink | None = None, ledger: Path | None = None,
             sign_key: Path | None = None, locks: LinkLocks | None = None,
             gate: Gate | None = None, dispatch: Dispatch | None = None,
             tracing: Tracing | None = None) -> RunResult:
    """Execute a compiled ``plan`` with the console and ``--json`` sinks wired.

    One audit stream feeds them all: ``--json`` prints the log file's very lines,
    and the console (and ``events``) see the same records, same ``seq`` and ``ts``.

    The plan's ``log.file`` is used as it stands (see :func:`resolve_log`).
    ``console`` is a stream for the default renderer, or a configured one.
    """
    simulation = plan.simulation
    if time_scale is not None:
        if time_scale < 0:
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
                       cancel=cancel, sealing=sealing, locks=locks, gate=gate,
                       dispatch=dispatch, tracing=tracing)
    finally:
        if renderer is not None:
            renderer.close()
        if tracing is not None:
            tracing.close()


def needs_simulation(plan: Plan) -> bool:
    """True when ``plan`` runs against simulated far ends (a rehearsal, or ``kind: sim``)."""
    return plan.simulate or any(device.kind == "sim" for device in plan.devices)


def simulation_world(plan: Plan) -> SimulationWorld:
    """The world a simulated run of ``plan`` needs: its time scale, seed and profiles."""
    from transports.sim.world import DeviceProfile, SimulationWorld

    spec = plan.simulation
    profiles = {
        name: DeviceProfile(rdp_level=device.rdp, fill=device.fill, quirks=dict(device.quirks),
                            faults=device.faults)
        for name, device in spec.devices.items()
    }
    return SimulationWorld(time_scale=spec.time_scale, seed=spec.seed or plan.manifest_sha256,
                           profiles=profiles)


def compose_endpoints(plan: Plan, world: SimulationWorld) -> SimulatedEndpoints:
    """``world``'s endpoint provider with every device of ``plan`` plugged in.

    What a rehearsal's USB discovery finds is decided here, once: the boards
    and probes of the plan's devices, wired as the manifest describes them.
    """
    from transports.sim.endpoints import SimulatedEndpoints

    endpoints = SimulatedEndpoints.of(world)
    _simulate_hardware(plan, world)
    for device in plan.devices:
        endpoints.plug(device=device.device, link=device.link, kind=device.kind,
                       chip=device.chip, options=device.options, resource=device.resource)
    adapters = simulated_adapters(plan)
    if any(adapters.values()):
        from transports.sim.adapters import simulate_adapters

        simulate_adapters(world, adapters)  # after the probes: a VCP hangs off its probe
    return endpoints


_USB_TTY = re.compile(r"^/dev/(tty(?:USB|ACM)\d+)$")


def simulated_adapters(plan: Plan) -> dict[str, dict[str, dict[str, Any]]]:
    """The host adapters of a rehearsal: each uart/i2c/socketcan link's, then ``simulation``'s.

    A device on a ``/dev/ttyUSB*``/``ttyACM*`` port gets its USB-serial adapter, an
    i2c device its bus (SMBus-only when its profile says ``smbus-only``), a socketcan
    device its interface; the ``simulation`` section's entries add adapters (with
    nothing attached, a VCP, …) and override what was derived.
    """
    section: dict[str, dict[str, dict[str, Any]]] = {"serial": {}, "i2c": {}, "can": {}}
    for device in plan.devices:
        options = device.options
        profile = plan.simulation.devices.get(device.device)
        quirks = profile.quirks if profile is not None else {}
        if device.kind == "uart":
            match = _USB_TTY.match(str(options.get("port", "")))
            if match:
                section["serial"].setdefault(match[1], {})
        elif device.kind == "i2c":
            bus = str(options.get("bus", "")).rpartition("-")[2]
            if bus.isdigit():
                section["i2c"].setdefault(str(int(bus)), {
                    "smbus-only": bool(quirks.get("smbus-only", False)),
                    "clock": int(options.get("clock", 100_000))})
        elif device.kind == "can" and options.get("interface") == "socketcan":
            section["can"].setdefault(str(options.get("channel")), {})
    for kind, entries in plan.simulation.adapters.items():
        for name, settings in entries.items():
            section[kind][str(name)] = {**section[kind].get(str(name), {}), **settings}
    return section


def _simulate_hardware(plan: Plan, world: SimulationWorld) -> None:
    """The hubs and GPIO lines the wiring names, simulated and wired to the boards.

    Hubs take their settings from ``simulation.hubs`` (per-port switching by
    default); each device's NRST and BOOT0 lines are wired to its simulated board
    as the board is plugged.
    """
    wired = [device for device in plan.devices if device.wiring is not None]
    pinned = [device for device in plan.devices if device.kind == "uart"
              and any(isinstance(device.options.get(name), Mapping) for name in ("boot0",
                                                                                  "reset"))]
    if not wired and not pinned and not plan.simulation.hubs:
        return
    from transports.sim.control import sim_hardware

    hardware = sim_hardware(world)
    for device in pinned:  # a USART fixture with BOOT0/NRST on GPIO lines
        for option, role, active_low in (("boot0", "boot0", False), ("reset", "nrst", True)):
            value = device.options.get(option)
            if isinstance(value, Mapping):
                line = value["gpio"]
                hardware.pin(device.device, role, chip=str(line["chip"]), line=line["line"],
                             active_low=bool(line.get("active-low", active_low)))
    # Hubs under simulation.hubs are on the bench even when no wiring names them
    # (a rehearsal's `discover` lists them).
    hubs = {supply.hub for supply in plan.power.values() if supply.hub} | \
        set(plan.simulation.hubs)
    for device in wired:
        assert device.wiring is not None
        for ref in (device.wiring.power, device.wiring.probe_power):
            if ref is not None and ref.supply and ref.supply.startswith("@"):
                hubs.add(ref.supply[1:])
        for role, line in (("nrst", device.wiring.nrst), ("boot0", device.wiring.boot0)):
            if line is not None:
                hardware.pin(device.device, role, chip=line.chip, line=line.line,
                             active_low=line.active_low)
    for path in sorted(hubs):
        hardware.hub(path, plan.simulation.hubs.get(path))


@contextmanager
def usb_bench(plan: Plan | None) -> Iterator[HostControl]:
    """What discovery walks: the host's (libusb, /sys), or ``plan``'s rehearsal bench.

    A rehearsal's bench carries every device of ``plan`` plugged as a run would
    plug them, and its hubs (:func:`compose_endpoints`), so ``discover`` finds
    on it what it would find on the bench. The world is closed afterwards.
    """
    if plan is None:
        yield HARDWARE.host_control()
        return
    world = simulation_world(plan)
    try:
        yield compose_endpoints(plan, world).host_control()
    finally:
        world.close()


def execute(plan: Plan, *, events: EventSink | None = None,
            outputs: Sequence[RecordOutput] = (),
            world: SimulationWorld | None = None, cancel: threading.Event | None = None,
            run_id: str | None = None, locks: LinkLocks | None = None,
            gate: Gate | None = None, dispatch: Dispatch | None = None,
            sealing: Sealing | None = None, tracing: Tracing | None = None) -> RunResult:
    """Run ``plan`` with the far ends it needs (:func:`runner.executor.execute`).

    A rehearsal runs on ``world`` when given (a test then reads the chips'
    flash afterwards), else on a world built from the plan and closed after
    the run. A plan whose devices run elsewhere (``dispatch``) needs none.

    Raises:
        EnvironmentProblem: the log file cannot be created (or already exists).
    """
    own_world = world is None and dispatch is None and needs_simulation(plan)
    if own_world:
        world = simulation_world(plan)
    endpoints: Endpoints = HARDWARE if world is None else compose_endpoints(plan, world)
    processes = 1
    if own_world:
        # The world is this run's alone: workers may take their copies of it along.
        from runner.shards import processes_for

        processes = processes_for(plan)
    try:
        return executor.execute(plan, endpoints=endpoints, events=events, outputs=outputs,
                                cancel=cancel, run_id=run_id, locks=locks, gate=gate,
                                dispatch=dispatch, sealing=sealing, tracing=tracing,
                                processes=processes)
    finally:
        if own_world and world is not None:
            world.close()
