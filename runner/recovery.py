"""Running a step under its recovery policy.

A failing step whose error categories (:func:`runner.errors.error_categories`)
meet ``policy.on`` is retried up to ``policy.retries`` times after
``policy.delay(attempt)`` seconds. Before retry *i* the policy's action
``actions[i-1]`` runs (the last repeats; none means a plain retry):
``reconnect`` closes the session, opens a new one and re-identifies the chip
(it must be the same UID); ``reset`` resets the chip the way the link can,
then reconnects; ``nrst-pulse`` pulses NRST on its GPIO line, ``boot-entry``
holds BOOT0 high across that pulse (the ROM bootloader starts),
``power-cycle`` cuts the target's supply and ``probe-power-cycle`` the probe's
own port for the wiring's off time — each then waits for a USB link to come
back at its port path and reconnects. ``a|b`` in a policy was resolved by the
compiler to the first action the device is wired for. A recovery action that
fails counts as that attempt.

Retrying a write (of images or of a unit-data value) must not program over
programmed flash (NOR refuses, like PGERR), so before a write is retried the
erase units it covers are erased again and whatever earlier writes of the
device put into them is rewritten. A verify that found wrong bytes is repaired
the same way before it runs again — reading the same bad flash twice would
prove nothing: the erase unit holding the first mismatch (every unit the verify
covers when the mismatch has no address, as with a checksum) is erased and
rewritten.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from runner import events as ev
from runner.device_session import DeviceSession, error_fields, hex_ranges
from runner.errors import Interrupted, TransportError, VerifyError, error_categories
from runner.memmap import Segment
from runner.model import RecoveryPolicy
from runner.plan import Outcome, StepResult, Task, UnitDataAction, VerifyAction, WriteAction
from transports.base import Capability, ResetMode
from transports.chips import FlashBlock

__all__ = ["RECOVERY_ACTIONS", "run_step"]


def _reconnect(session: DeviceSession, task: Task) -> dict[str, Any]:
    session.close()
    session.connect()
    return {}


def _reset(session: DeviceSession, task: Task) -> dict[str, Any]:
    """Reset the chip the way the link can, then reconnect.

    A link that went away cannot carry the reset: it is reconnected first.
    """
    transport = session.transport
    if transport is None or not session.connected:
        transport = session.ensure_connected()
    mode = ResetMode.HARDWARE if Capability.RESET_HARDWARE in transport.capabilities \
        else ResetMode.SOFTWARE
    try:
        transport.reset(mode)
    except TransportError:
        session.close()
        session.ensure_connected().reset(mode)
    session.close()
    session.connect()
    return {"mode": mode.value}


#: Seconds a USB board or probe gets to show up again after its power came back.
_REENUMERATE_S = 5.0


def _back_on_the_bus(session: DeviceSession) -> dict[str, Any]:
    """After a power cut or reset of a USB link: wait for it at its port path, reconnect."""
    path = session.plan.options.get("port-path")
    fields: dict[str, Any] = {}
    control = session.context.hardware
    if path and session.plan.kind in ("dfu", "stlink") and control is not None:
        control.wait_enumerated(str(path), _REENUMERATE_S)
        fields["port_path"] = str(path)
    session.connect()
    return fields


def _nrst_pulse(session: DeviceSession, task: Task) -> dict[str, Any]:
    """Pulse NRST on its GPIO line: the chip restarts (in the mode BOOT0 selects)."""
    session.close()
    fields = session.hardware().pins().pulse_reset()
    return {**fields, **_back_on_the_bus(session)}


def _boot_entry(session: DeviceSession, task: Task) -> dict[str, Any]:
    """BOOT0 high, NRST pulse: the chip restarts in its ROM bootloader, then reconnect."""
    session.close()
    fields = session.hardware().pins().boot(True)
    return {**fields, **_back_on_the_bus(session)}


def _power_cycle(session: DeviceSession, task: Task) -> dict[str, Any]:
    """Cut the target's supply for the wiring's off time, restore it, reconnect."""
    session.close()
    hardware = session.hardware()
    fields = hardware.power_cycle(hardware.wiring.power, "target")
    return {**fields, **_back_on_the_bus(session)}


def _probe_power_cycle(session: DeviceSession, task: Task) -> dict[str, Any]:
    """Cut the probe's (or adapter's) own port, restore it, reconnect."""
    session.close()
    hardware = session.hardware()
    fields = hardware.power_cycle(hardware.wiring.probe_power, "probe")
    return {**fields, **_back_on_the_bus(session)}


#: Recovery actions by their manifest name (docs/architecture.md, "Recovery ladder").
RECOVERY_ACTIONS: dict[str, Callable[[DeviceSession, Task], dict[str, Any]]] = {
    "reconnect": _reconnect,
    "reset": _reset,
    "nrst-pulse": _nrst_pulse,
    "boot-entry": _boot_entry,
    "power-cycle": _power_cycle,
    "probe-power-cycle": _probe_power_cycle,
}


def _action_for(policy: RecoveryPolicy, retry: int) -> str | None:
    if not policy.actions:
        return None
    return policy.actions[min(retry, len(policy.actions)) - 1]


def _retryable(policy: RecoveryPolicy | None, error: BaseException, retries_done: int) -> bool:
    return (policy is not None and retries_done < policy.retries
            and bool(error_categories(error) & policy.on))


def _reerase(session: DeviceSession, task: Task) -> dict[str, Any]:
    """Erase the units the task's write covers and rewrite what earlier writes put there."""
    # What the task programs: its images or unit value, and any kept bytes it puts back.
    blocks = session.units.programmed(task.id, task.action).blocks(session.plan.chip.flash)
    return _rewrite(session, blocks)


def _repair(session: DeviceSession, task: Task, error: BaseException) -> dict[str, Any]:
    """Erase the units a failed verify found wrong and rewrite what the device wrote there."""
    flash = session.plan.chip.flash
    assert isinstance(task.action, VerifyAction)
    address = error.address if isinstance(error, VerifyError) else None
    if address is not None and flash.contains(address):
        blocks: tuple[FlashBlock, ...] = (flash.block_at(address),)
    else:
        blocks = task.action.memory.blocks(flash)
    return _rewrite(session, blocks)


def _rewrite(session: DeviceSession, blocks: tuple[FlashBlock, ...]) -> dict[str, Any]:
    transport = session.ensure_connected()
    session.proven.clear()
    transport.erase(blocks)
    rewritten = 0
    for block in blocks:
        for segment in session.written:
            piece = _clip(segment, block.address, block.address + block.size)
            if piece is not None:
                transport.write(piece.address, piece.data)
                rewritten += len(piece)
    ranges = tuple((b.address, b.address + b.size) for b in blocks)
    return {"ranges": hex_ranges(ranges), "blocks": len(blocks), "rewritten_bytes": rewritten}


def _clip(segment: Segment, start: int, end: int) -> Segment | None:
    lo, hi = max(segment.address, start), min(segment.end, end)
    if lo >= hi:
        return None
    return Segment(lo, segment.data[lo - segment.address:hi - segment.address])


def _recover(session: DeviceSession, task: Task, policy: RecoveryPolicy, retry: int,
             error: BaseException) -> None:
    """Run the recovery action for ``retry`` (and the re-erase or repair); raise if one fails."""
    name = _action_for(policy, retry)
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    if name is not None:
        known = RECOVERY_ACTIONS.get(name)
        if known is None:
            session.emit(ev.STEP_RECOVERY, step=task.id, attempt=retry, recovery=name,
                         outcome="unsupported", policy=policy.name)
        else:
            steps.append((name, lambda: known(session, task)))
    if isinstance(task.action, (WriteAction, UnitDataAction)):
        steps.append(("re-erase", lambda: _reerase(session, task)))
    elif isinstance(task.action, VerifyAction) and "verify" in error_categories(error):
        steps.append(("rewrite", lambda: _repair(session, task, error)))
    for label, run in steps:
        try:
            extra = run()
        except Interrupted:
            raise
        except Exception as failure:
            session.emit(ev.STEP_RECOVERY, error_fields(failure), step=task.id, attempt=retry,
                         recovery=label, outcome="failed", policy=policy.name)
            raise
        session.emit(ev.STEP_RECOVERY, extra, step=task.id, attempt=retry, recovery=label,
                     outcome="ok", policy=policy.name)


class _Retries:
    """The retry budget of one step and what to do before each retry."""

    def __init__(self, session: DeviceSession, task: Task, common: dict[str, Any]) -> None:
        self.session = session
        self.task = task
        self.common = common
        self.done = 0
        self.error: BaseException | None = None

    def prepare(self, error: BaseException) -> bool:
        """After ``error``, get ready for another attempt; False when the step has failed.

        A recovery action that fails uses up its attempt, and its error is weighed
        against the policy like the step's own.
        """
        policy = self.task.recovery
        self.error = error
        while policy is not None and _retryable(policy, self.error, self.done):
            self.done += 1
            delay = policy.delay(self.done)
            self.session.emit(ev.STEP_RETRIED, error_fields(self.error), self.common,
                              attempt=self.done, max=policy.retries, delay_s=delay,
                              policy=policy.name)
            if self.session.context.cancel.wait(delay):
                raise Interrupted("the run was interrupted")
            try:
                _recover(self.session, self.task, policy, self.done, self.error)
            except Interrupted:
                raise
            except Exception as failure:
                self.error = failure
                continue
            return True
        return False


def run_step(session: DeviceSession, task: Task) -> tuple[StepResult, BaseException | None]:
    """Run ``task`` with its recovery policy; the result and the final error, if any."""
    common = {"step": task.id, "action": task.kind.value}
    session.emit(ev.STEP_STARTED, common, bytes=task.bytes,
                 estimate_s=round(task.estimate_s, 3))
    started = time.monotonic()
    retries = _Retries(session, task, common)
    extra: dict[str, Any] = {}
    outcome = Outcome.FAILED
    try:
        while True:
            try:
                extra = session.perform(task)
            except Interrupted:  # a RunnerError too, but never retried
                raise
            except Exception as failure:
                if retries.prepare(failure):
                    continue
                break
            outcome, retries.error = Outcome.OK, None
            break
    except Interrupted as interruption:
        outcome, retries.error = Outcome.INTERRUPTED, interruption
    duration = time.monotonic() - started
    nbytes = task.bytes if outcome is Outcome.OK else 0
    error = retries.error
    failure_fields = error_fields(error) if error is not None else {}
    session.emit(ev.STEP_FINISHED, extra, failure_fields, common, outcome=outcome.value,
                 duration_ms=round(duration * 1000), bytes=nbytes, attempts=retries.done + 1)
    result = StepResult(task=task.id, kind=task.kind, outcome=outcome, duration_s=duration,
                        attempts=retries.done + 1, bytes=nbytes,
                        error=failure_fields.get("error"),
                        error_type=failure_fields.get("error_type"),
                        error_category=failure_fields.get("error_category"))
    return result, error
