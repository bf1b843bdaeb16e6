"""The host's side of a run on stations: connect, stage, start, follow, reconnect.

One asyncio task per station (at most the run's ``max-parallel`` stations at
once, each with its share of that bound: :func:`.staging.share_parallel`):

1. connect (:mod:`.ssh`); a failure fails that station's devices with its
   classified error and leaves the other stations alone;
2. stage the bundle by SFTP: each file written under a temporary name and
   renamed to ``<work-dir>/cache/<sha256>``; files already there are checked by
   the station before use, and re-sent once if they do not match;
3. ``flashrunner station run`` and read its lines: records go to the host's
   audit log through :func:`.merge.forward`, device outcomes are collected;
4. if the connection drops, or the station says nothing for
   ``inactivity-timeout`` seconds, reconnect (``reconnect`` attempts, backing
   off) and ``station tail --after <last seq>``: the run went on meanwhile.
   A station that cannot be regained leaves its unfinished devices
   ``unknown`` (station lost), never ok; ``flashrunner collect`` fetches their
   outcome later.

A device gated on its station (it comes after a device of another station)
gets its gate file written by SFTP once every such upstream device has ended:
``go``, or the name of the upstream device that did not end ok.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from runner.device_session import RunContext, error_fields
from runner.errors import RunnerError
from runner.events import EventSink
from runner.executor import Dispatch
from runner.model import Manifest
from runner.plan import DeviceResult, Outcome, Plan, StepResult, TaskKind, UnitDataAction
from runner.stations.errors import StationCommandError, StationError, StationLost
from runner.stations.merge import forward
from runner.stations.ssh import command_line, connect
from runner.stations.staging import StationBundle, put_files, station_bundles, value_key
from runner.unitdata import UnitValue, compute_unit_value

__all__ = ["StationFollower", "device_result", "station_dispatch"]

_CANCEL_POLL_S = 0.1


class _Dropped(Exception):
    """The connection to a station went away before its run ended."""


def station_dispatch(manifest: Manifest, plan: Plan, *, run_id: str) -> Dispatch:
    """The executor's dispatch for ``plan``'s devices, all on stations.

    Raises:
        PlanError: a station's part of the run cannot be built (before anything runs).
    """
    bundles = station_bundles(manifest, plan, run_id)

    def dispatch(final: Plan, context: RunContext) -> tuple[dict[str, DeviceResult], bool]:
        return _Run(final, bundles, context, run_id).run()

    return dispatch


def device_result(record: dict[str, Any], steps: list[StepResult]) -> DeviceResult:
    """A device's result from its ``device.finished`` / ``device.skipped`` record."""
    return DeviceResult(
        device=str(record["device"]), outcome=Outcome(record.get("outcome", "failed")),
        steps=tuple(steps), duration_s=float(record.get("duration_ms") or 0) / 1000,
        error=record.get("error"), error_type=record.get("error_type"),
        error_category=record.get("error_category"), reason=record.get("reason"))


def _step_result(record: dict[str, Any]) -> StepResult:
    return StepResult(task=str(record.get("step")), kind=TaskKind(record.get("action")),
                      outcome=Outcome(record.get("outcome", "failed")),
                      duration_s=float(record.get("duration_ms") or 0) / 1000,
                      attempts=int(record.get("attempts") or 1),
                      bytes=int(record.get("bytes") or 0), error=record.get("error"),
                      error_type=record.get("error_type"),
                      error_category=record.get("error_category"))


@dataclass(slots=True)
class StationFollower:
    """Follows one station's run: its connection, the last ``seq`` seen, its devices' ends."""

    bundle: StationBundle
    run_id: str
    sink: EventSink
    on_result: Callable[[DeviceResult], None]
    last_seq: int = 0
    ended: bool = False
    connection: asyncssh.SSHClientConnection | None = None
    sftp: asyncssh.SFTPClient | None = None
    steps: dict[str, list[StepResult]] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    gates: dict[str, str] = field(default_factory=dict)
    gates_written: set[str] = field(default_factory=set)
    started: bool = False
    #: Allocates the value a unit of this station asks for (``None``: none may be asked).
    on_value: Callable[[StationFollower, str, str], None] | None = None
    #: device → (link, kind), for the records the host writes about a device itself.
    links: dict[str, tuple[str, str]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.bundle.station.name

    @property
    def run_dir(self) -> str:
        return f"{self.bundle.station.work_dir}/runs/{self.run_id}"

    def emit(self, event: str, **fields: Any) -> None:
        fields["station"] = self.name
        self.sink.emit(event, **fields)

    # ------------------------------------------------------------------ connection

    async def connect(self) -> None:
        self.close()
        spec = self.bundle.station
        self.connection = await connect(spec)
        try:
            self.sftp = await self.connection.start_sftp_client()
        except (OSError, asyncssh.Error) as error:
            self.close()
            raise StationError(f"station {self.name}: SFTP refused: {error}",
                               station=self.name,
                               hint="enable the sftp subsystem for the station user") from error
        key = self.connection.get_server_host_key()
        self.emit("station.connected", host=self.connection.get_extra_info("peername")[0],
                  port=spec.port, user=spec.user,
                  host_key=key.get_fingerprint() if key is not None else None)

    def close(self) -> None:
        if self.sftp is not None:
            self.sftp.exit()
            self.sftp = None
        if self.connection is not None:
            self.connection.abort()
            self.connection = None

    # ------------------------------------------------------------------ staging

    async def stage(self, *, force: frozenset[str] = frozenset()) -> None:
        assert self.sftp is not None
        cache = f"{self.bundle.station.work_dir}/cache"
        try:
            sent, size = await put_files(self.sftp, cache, self.bundle.files, force=force)
        except (OSError, asyncssh.Error) as error:
            raise _Dropped(f"staging failed: {error}") from error
        self.emit("station.staged", files=len(self.bundle.files), sent=sent, bytes=size,
                  cache=cache, manifest_sha256=self.bundle.manifest_sha256)

    def gates_changed(self) -> None:
        if self.started:
            self._spawn(self.write_gates())

    async def write_gates(self) -> None:
        """Write every gate decided and not yet written (after a reconnect too)."""
        if self.sftp is None or not self.started:
            return
        for device, content in list(self.gates.items()):
            if device in self.gates_written:
                continue
            path = f"{self.run_dir}/gates/{device}"
            part = f"{path}.{secrets.token_hex(4)}.part"
            try:
                async with self.sftp.open(part, "w") as handle:
                    await handle.write(content + "\n")
                await self.sftp.posix_rename(part, path)
            except (OSError, asyncssh.Error):
                return   # written after the next reconnect
            self.gates_written.add(device)
            self.emit("station.gate-opened", device=device, gate=content)

    def send_value(self, device: str, key: str, value: UnitValue) -> None:
        """Hand the station the value allocated for ``device``'s field ``key``."""
        content = json.dumps({"data": value.data.hex(), "value": value.value,
                              "source": f"{value.source} (allocated by the host)"})
        path = f"{self.run_dir}/values/{device}@{key}.value"
        self._spawn(self._write_file(path, content))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _write_file(self, path: str, content: str) -> None:
        if self.sftp is None:
            return
        part = f"{path}.{secrets.token_hex(4)}.part"
        with contextlib.suppress(OSError, asyncssh.Error):
            async with self.sftp.open(part, "w") as handle:
                await handle.write(content + "\n")
            await self.sftp.posix_rename(part, path)

    async def cancel(self) -> None:
        if self.sftp is None:
            return
        with contextlib.suppress(OSError, asyncssh.Error):
            async with self.sftp.open(f"{self.run_dir}/cancel", "w") as handle:
                await handle.write("cancel\n")

    # ------------------------------------------------------------------ following

    def run_argv(self, *, simulate: bool, time_scale: float | None, operator: str) -> list[str]:
        spec = self.bundle.station
        argv = [spec.flashrunner, "station", "run", "--work-dir", spec.work_dir,
                "--run-id", self.run_id, "--manifest", self.bundle.manifest_sha256,
                "--heartbeat", f"{self._heartbeat_s():g}", "--link-lock", spec.link_lock,
                "--operator", operator]
        for digest in self.bundle.images:
            argv += ["--image", digest]
        for device in self.bundle.gated:
            argv += ["--gated", device]
        if simulate:
            argv.append("--simulate")
            if time_scale is not None:
                argv += ["--time-scale", f"{time_scale:g}"]
        return argv

    def tail_argv(self) -> list[str]:
        spec = self.bundle.station
        return [spec.flashrunner, "station", "tail", "--work-dir", spec.work_dir,
                "--run-id", self.run_id, "--after", str(self.last_seq),
                "--heartbeat", f"{self._heartbeat_s():g}"]

    def _heartbeat_s(self) -> float:
        return max(0.2, self.bundle.station.inactivity_timeout / 4)

    async def follow(self, argv: list[str]) -> dict[str, Any] | None:
        """Run ``argv`` on the station and handle its lines until it ends.

        Returns the ``stale`` line when the station refused staged files.
        Raises _Dropped when the connection or the station's silence ends it early.
        """
        assert self.connection is not None
        timeout = self.bundle.station.inactivity_timeout
        try:
            process = await self.connection.create_process(command_line(argv))
        except (OSError, asyncssh.Error) as error:
            raise _Dropped(str(error)) from error
        heard = False
        try:
            while True:
                try:
                    line = await asyncio.wait_for(process.stdout.readline(), timeout)
                except (asyncio.TimeoutError, TimeoutError):
                    raise _Dropped(f"no word from the station for {timeout:g} s") from None
                except (OSError, asyncssh.Error) as error:
                    raise _Dropped(str(error)) from error
                if not line:
                    if self.ended:
                        return None
                    if not heard:
                        await self._not_run(process, argv)
                    raise _Dropped("the connection closed before the run ended")
                heard = True
                text = line.decode("utf-8", "replace").rstrip("\n") \
                    if isinstance(line, bytes) else str(line).rstrip("\n")
                try:
                    record = json.loads(text)
                except ValueError:
                    continue
                if not isinstance(record, dict):
                    continue
                if "station" in record and "seq" not in record:
                    control = self._control(record)
                    if control is not None:
                        return control
                    continue
                self._record(text, record)
        finally:
            process.close()

    async def _not_run(self, process: asyncssh.SSHClientProcess[Any], argv: list[str]) -> None:
        """The station command ended without a word: raise why, if it says (exit status)."""
        try:
            done = await asyncio.wait_for(process.wait(), 2.0)
        except (asyncio.TimeoutError, TimeoutError, OSError, asyncssh.Error):
            return   # the connection went: a drop, not a refusal
        if done.exit_status is None:
            return
        said = done.stderr.decode("utf-8", "replace") if isinstance(done.stderr, bytes) \
            else str(done.stderr or "")
        raise StationCommandError(
            f"station {self.name}: {argv[0]} {argv[1]} {argv[2]} did not run (exit "
            f"{done.exit_status}): {said.strip()[-300:] or 'no message'}", station=self.name,
            hint="check `flashrunner:` in the station's entry and that flashrunner is "
                 "installed there (`flashrunner stations check`)")

    def _control(self, line: dict[str, Any]) -> dict[str, Any] | None:
        what = line.get("station")
        if what == "started":
            self.emit("station.started", run_dir=line.get("run_dir"), pid=line.get("pid"),
                      resumed=line.get("resumed"))
            self.started = True
            self.gates_changed()
        elif what == "ended":
            self.ended = True
        elif what == "stale":
            return line
        elif what == "error":
            fields = {k: v for k, v in line.items() if k not in ("station", "exit_code")}
            self.emit("station.failed", **fields)
            self.ended = True
            self.fail_rest(fields)
        elif what == "value-request":
            device, key = str(line.get("device")), str(line.get("key"))
            if device in self.bundle.devices and self.on_value is not None:
                self.on_value(self, device, key)
        elif what == "lost":
            self.ended = True
            self.lose_rest(str(line.get("reason") or "the station's run died"))
        return None

    def _record(self, line: str, record: dict[str, Any]) -> None:
        seq = record.get("seq")
        if isinstance(seq, int):
            if seq <= self.last_seq:
                return
            self.last_seq = seq
        forward(self.sink, self.name, line)
        event = record.get("event")
        device = record.get("device")
        if not isinstance(device, str) or device not in self.bundle.devices:
            return
        if event == "step.finished" and record.get("action") in {k.value for k in TaskKind}:
            self.steps.setdefault(device, []).append(_step_result(record))
        elif event in ("device.finished", "device.skipped") and device not in self.finished:
            self.finished.add(device)
            self.on_result(device_result(record, self.steps.get(device, [])))

    # ------------------------------------------------------------------ endings

    def device_fields(self, device: str) -> dict[str, Any]:
        link, kind = self.links.get(device, ("", ""))
        return {"device": device, "transport": link, "kind": kind, "station": self.name,
                "duration_ms": 0, "bytes": 0}

    def _unfinished(self) -> list[str]:
        return [d for d in self.bundle.devices if d not in self.finished]

    def fail_rest(self, fields: dict[str, Any]) -> None:
        """Devices that will not run: the station could not be used."""
        for device in self._unfinished():
            self.finished.add(device)
            self.sink.emit("device.finished", **{**fields, **self.device_fields(device),
                                                 "outcome": Outcome.FAILED.value})
            self.on_result(DeviceResult(device=device, outcome=Outcome.FAILED,
                                        error=fields.get("error"),
                                        error_type=fields.get("error_type"),
                                        error_category=fields.get("error_category")))

    def lose_rest(self, reason: str) -> None:
        """Devices whose outcome the host cannot know: never ok."""
        error = StationLost(f"station {self.name} lost: {reason}", station=self.name,
                            hint="`flashrunner collect` fetches the outcome once the "
                                 "station is back (its run went on)")
        fields = error_fields(error)
        for device in self._unfinished():
            self.finished.add(device)
            self.sink.emit("device.finished", **{**fields, **self.device_fields(device),
                                                 "outcome": Outcome.UNKNOWN.value,
                                                 "reason": "station lost"})
            self.on_result(DeviceResult(device=device, outcome=Outcome.UNKNOWN,
                                        reason="station lost", error=fields["error"],
                                        error_type=fields["error_type"],
                                        error_category=fields["error_category"]))

    async def regain(self, why: str) -> None:
        """After a drop: reconnect (bounded, backing off) and tail to the run's end."""
        attempts = self.bundle.station.reconnect
        for attempt in range(1, attempts + 1):
            await asyncio.sleep(min(5.0, 0.25 * 2 ** (attempt - 1)))
            try:
                await self.connect()
                self.emit("station.reconnected", attempt=attempt, after_seq=self.last_seq)
                self.started = True
                await self.write_gates()
                await self.follow(self.tail_argv())
            except (_Dropped, StationError) as error:
                self.close()
                why = str(error)
                self.emit("station.connection-lost", error=why, attempt=attempt,
                          after_seq=self.last_seq)
                continue
            if self.ended:
                return
        self.emit("station.lost", after_seq=self.last_seq, devices=self._unfinished())
        self.lose_rest(f"no contact after {attempts} reconnection attempts ({why})")


class _Run:
    """The whole run over every station."""

    def __init__(self, plan: Plan, bundles: dict[str, StationBundle], context: RunContext,
                 run_id: str) -> None:
        self.plan = plan
        self.context = context
        self.results: dict[str, DeviceResult] = {}
        self.followers = {
            name: StationFollower(bundle=bundle, run_id=run_id, sink=context.events,
                                  on_result=self._result,
                                  links={d.device: (d.link, d.kind) for d in plan.devices},
                                  on_value=self._value)
            for name, bundle in bundles.items()}
        self.operator = os.environ.get("FLASHRUNNER_OPERATOR") or _user()
        self.dropped: dict[str, str] = {}
        self.run_id = run_id
        self.values: dict[tuple[str, str], UnitValue] = {}

    def run(self) -> tuple[dict[str, DeviceResult], bool]:
        asyncio.run(self._main())
        for device in self.plan.devices:   # nothing may end without an outcome
            self.results.setdefault(device.device, DeviceResult(
                device=device.device, outcome=Outcome.UNKNOWN, reason="station lost"))
        return self.results, self.context.cancel.is_set()

    async def _main(self) -> None:
        bound = asyncio.Semaphore(max(1, self.plan.execution.max_parallel))
        watcher = asyncio.create_task(self._watch_cancel())
        try:
            await asyncio.gather(*(self._station(f, bound) for f in self.followers.values()))
        finally:
            watcher.cancel()
            for follower in self.followers.values():
                follower.close()

    async def _watch_cancel(self) -> None:
        while not self.context.cancel.is_set():
            await asyncio.sleep(_CANCEL_POLL_S)
        self.context.events.emit("run.interrupted", reason="cancelled",
                                 running=sorted(d.device for d in self.plan.devices
                                                if d.device not in self.results))
        await asyncio.gather(*(f.cancel() for f in self.followers.values()))

    async def _station(self, follower: StationFollower, bound: asyncio.Semaphore) -> None:
        async with bound:
            try:
                await follower.connect()
                await follower.stage()
            except (StationError, _Dropped) as error:
                follower.close()
                fields = (error_fields(error) if isinstance(error, RunnerError)
                          else {"error": str(error), "error_category": "station-unreachable",
                                "error_type": "StationUnreachable"})
                follower.emit("station.failed", **fields)
                follower.fail_rest(fields)
                self._gates()
                return
            argv = follower.run_argv(simulate=self.plan.simulate,
                                     time_scale=self.plan.simulation.time_scale,
                                     operator=self.operator)
            stale = await self._start(follower, argv)
            if stale is not None:   # the station refused cached files: send them again, once
                await follower.stage(force=frozenset(stale.get("files") or ()))
                stale = await self._start(follower, argv)
                if stale is not None:
                    follower.emit("station.failed", error="staged files keep differing from "
                                                          "their digests",
                                  error_category="station-staging", files=stale.get("files"))
                    follower.fail_rest({"error": "staged files differ from their digests",
                                        "error_category": "station-staging"})
                    return
            if not follower.ended:
                await follower.regain(self.dropped.pop(follower.name, "dropped"))

    async def _start(self, follower: StationFollower,
                     argv: list[str]) -> dict[str, Any] | None:
        try:
            return await follower.follow(argv)
        except StationCommandError as error:   # nothing ran on the station
            follower.close()
            fields = error_fields(error)
            follower.emit("station.failed", **fields)
            follower.ended = True
            follower.fail_rest(fields)
            self._gates()
            return None
        except _Dropped as error:
            follower.close()
            self.dropped[follower.name] = str(error)
            follower.emit("station.connection-lost", error=str(error), attempt=0,
                          after_seq=follower.last_seq)
            return None

    def _value(self, follower: StationFollower, device: str, key: str) -> None:
        """Allocate a unit's value on the host (journaled here) and hand it over, once."""
        if (device, key) in self.values:
            value = self.values[(device, key)]
        else:
            source = next((task.action.source for task in self.plan.device(device).tasks
                           if isinstance(task.action, UnitDataAction)
                           and value_key(task.action.address) == key), None)
            if source is None:
                return
            try:
                value = compute_unit_value(source, device=device, run_id=self.run_id)
            except RunnerError as error:
                follower.emit("station.failed", **error_fields(error))
                return   # the station's step times out and fails that unit
            self.values[(device, key)] = value
        follower.send_value(device, key, value)

    def _result(self, result: DeviceResult) -> None:
        self.results[result.device] = result
        self._gates()

    def _gates(self) -> None:
        for follower in self.followers.values():
            changed = False
            for device, upstreams in follower.bundle.gated.items():
                if device in follower.gates or any(u not in self.results for u in upstreams):
                    continue
                culprit = next((u for u in upstreams
                                if self.results[u].outcome is not Outcome.OK), None)
                follower.gates[device] = culprit or "go"
                changed = True
            if changed:
                follower.gates_changed()


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
