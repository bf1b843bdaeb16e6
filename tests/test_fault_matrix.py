"""Every fault the manifest accepts fires where it says and is classified as what it is.

One run per link × kind × op × (transient, permanent), through the manifest, the
compiler, the executor and the real drivers over the simulated far ends, with no
recovery policy, so the first failure is the one reported. Each run asserts that
the planned fault fired (the chip's fault plan records it) and that the device
failed with the fault's category among its error categories.

What a fault looks like on each link (the wire decides, not the fault's name):

* ``timeout``: no answer → ``timeout``.
* ``nack``: a refusal → ``nack``; an ST-Link memory access has no NACK, so after
  connect a refusal faults on the AP → ``fault``; a DFU device that reports an error
  once at connect is cleared by the protocol and the run goes on.
* ``link-lost``: the link drops → ``link-lost``; on CAN a node that is gone is just
  silent (the bus has no presence) → ``timeout``.
* ``brownout``: the chip loses power → ``link-lost`` where the device is on USB
  (ST-Link, DFU) or the simulated memory port; over USART, I2C and CAN the adapter
  stays and the chip is silent while it restarts → ``timeout``.
* ``corrupt``: a programmed byte comes out wrong → ``verify`` for writes; a garbled
  reply elsewhere → ``protocol``; on ST-Link after connect a corrupted transfer is an
  AP fault → ``fault``; a DFU download corrupted at erase is answered with an error
  status → ``nack``, and an upload corrupted on the wire reads as a mismatch → ``verify``.

And the recovery promises: a transient link-lost on I2C and CAN leaves a ROM that a
reconnect reaches again, and a permanent connect fault on DFU fires at every attempt.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import pytest

from runner.compiler import compile_plan
from runner.events import CapturingSink
from runner.launch import execute, simulation_world
from runner.manifest import load_manifest
from runner.model import LogSpec
from runner.plan import Outcome

LINKS = {
    "sim": ("stm32f103c8", "{kind: sim}"),
    "stlink": ("stm32f103c8", "{kind: stlink}"),
    "uart": ("stm32f103cb", "{kind: uart, port: /dev/ttyUSB0, boot0: rts, reset: dtr}"),
    "i2c": ("stm32g071rb", "{kind: i2c, bus: 1, clock: 400000}"),
    "can": ("stm32l476rg", "{kind: can, interface: socketcan, channel: can0}"),
    "dfu": ("stm32f411re", "{kind: dfu}"),
}
KINDS = ("timeout", "nack", "link-lost", "corrupt", "brownout")
OPS = ("connect", "erase", "write", "read")
#: The step a fault of each op stops (read: the verify reads back).
STEP = {"connect": "0-connect", "erase": "1-erase", "write": "2-write", "read": "3-verify"}
#: Ops after which the data itself is wrong, not the exchange: the verify finds it.
_DATA = {"write"}


def expected(link: str, kind: str, op: str, permanent: bool) -> tuple[str, str] | None:
    """(category, step) a fault of ``kind`` during ``op`` on ``link`` must end in;
    ``None`` when the link's own protocol recovers from it (the run succeeds)."""
    step = STEP[op]
    if link == "dfu" and op == "connect" and kind == "nack" and not permanent:
        return None   # an error status at connect is cleared (CLRSTATUS) and passes
    if kind == "timeout":
        return "timeout", step
    if kind == "nack":
        return ("fault" if link == "stlink" and op != "connect" else "nack"), step
    if kind == "link-lost":
        return ("timeout" if link == "can" else "link-lost"), step
    if kind == "brownout":
        return ("timeout" if link in ("uart", "i2c", "can") else "link-lost"), step
    if op in _DATA:
        return "verify", STEP["read"]
    if link == "stlink" and op != "connect":
        return "fault", step
    if link == "dfu" and op == "erase":
        return "nack", step
    if link == "dfu" and op == "read":
        return "verify", step
    return "protocol", step


def _manifest(folder: Path, link: str, fault: str, recovery: str = "") -> Path:
    chip, spec = LINKS[link]
    (folder / "app.bin").write_bytes(bytes((i * 7 + 3) % 251 for i in range(2048)))
    path = folder / "faults.yaml"
    path.write_text(f"""\
manifest: 1
name: faults
simulate: true
simulation:
  time-scale: 0
  devices:
    dev: {{faults: [{fault}]}}
images:
  app: {{file: app.bin, address: 0x08000000}}
transports:
  link: {spec}
recipes:
  std:
    - erase: {{scope: used}}
    - write: [app]
    - verify: {{method: readback}}
{recovery}devices:
  dev: {{chip: {chip}, transport: link, recipe: std}}
""")
    return path


def _run(path: Path) -> tuple[Any, int, dict[str, Any]]:
    plan = compile_plan(load_manifest(path))
    plan = dataclasses.replace(plan, log=LogSpec(file=None))
    sink = CapturingSink()
    with simulation_world(plan) as world:
        result = execute(plan, world=world, events=sink)
        fired = len(world.chips["dev"].faults.fired)
    (finished,) = sink.named("device.finished")
    return result.devices[0], fired, finished


def _fault(kind: str, op: str, permanent: bool) -> str:
    at = 0 if op in ("connect", "erase") else 512
    how = "permanent: true" if permanent else "times: 1"
    return f"{{kind: {kind}, op: {op}, at-byte: {at}, {how}}}"


#: CAN waits for a silent chip in real time (python-can's receive timeout): a second
#: each, so only one of these runs by default (all of them with ``-m slow``).
_SILENT = {"timeout", "link-lost", "brownout"}


def _slow(link: str, kind: str, op: str, permanent: bool) -> bool:
    if link == "can" and kind in _SILENT:
        return (kind, op, permanent) != ("timeout", "connect", False)
    # Without a retry, a permanent fault after connect is reported as a transient one
    # is (the first firing ends the step): those run with ``-m slow`` only.
    return permanent and op != "connect"


CASES = [
    pytest.param(link, kind, op, permanent, id=f"{link}-{kind}-{op}-"
                 f"{'permanent' if permanent else 'transient'}",
                 marks=[pytest.mark.slow] if _slow(link, kind, op, permanent) else [])
    for link, kind, op, permanent in itertools.product(LINKS, KINDS, OPS, (False, True))
]


@pytest.mark.parametrize(("link", "kind", "op", "permanent"), CASES)
def test_an_injected_fault_fires_and_is_classified_as_what_it_is(
        tmp_path: Path, link: str, kind: str, op: str, permanent: bool) -> None:
    device, fired, finished = _run(_manifest(tmp_path, link, _fault(kind, op, permanent)))
    outcome = expected(link, kind, op, permanent)
    assert fired >= 1, "the fault did not fire"
    if outcome is None:
        assert device.outcome is Outcome.OK, device.error
        return
    category, step = outcome
    assert device.outcome is Outcome.FAILED
    failed = [s.task.split("/", 1)[1] for s in device.steps if s.outcome is Outcome.FAILED]
    assert failed == [step], device.error
    assert category in finished["error_categories"], (finished["error_categories"],
                                                      device.error)


RETRY = ('recovery:\n  default: {retries: 2, backoff: 0, "on": [timeout, link-lost, nack, '
         'connect], actions: [reconnect]}\n')


@pytest.mark.parametrize("link", ["i2c", "can", "uart", "stlink", "dfu", "sim"])
def test_a_transient_link_lost_is_recovered_by_a_reconnect(tmp_path: Path, link: str) -> None:
    path = _manifest(tmp_path, link, _fault("link-lost", "write", False), RETRY)
    device, fired, _ = _run(path)
    assert fired == 1
    assert device.outcome is Outcome.OK, device.error


def test_a_permanent_connect_fault_on_dfu_fires_at_every_attempt(tmp_path: Path) -> None:
    path = _manifest(tmp_path, "dfu", _fault("timeout", "connect", True), RETRY)
    device, fired, _ = _run(path)
    assert device.outcome is Outcome.FAILED
    assert fired >= 3     # the first attempt and both retries
