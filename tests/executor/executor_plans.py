"""Plans built by hand for the executor's tests: ``kind: sim`` links, real memory maps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.memmap import MemoryMap, Segment
from runner.model import (
    EraseScope,
    Execution,
    LogSpec,
    RecoveryPolicy,
    SimulationSpec,
    VerifyMethod,
)
from runner.plan import (
    ConnectAction,
    DevicePlan,
    EraseAction,
    ImageUse,
    Plan,
    Stage,
    Task,
    TaskAction,
    TaskKind,
    VerifyAction,
    WriteAction,
)
from transports.chips import chip_database

FLASH = 0x08000000


def image(size: int, seed: int = 1) -> bytes:
    """Deterministic content with no erased-looking bytes."""
    return bytes(((i * 7 + seed * 13 + i // 251) & 0xFF) or 0x5A for i in range(size))


def device(name: str, *, part: str = "stm32f103c8",
           writes: Sequence[tuple[int, bytes]] = ((FLASH, image(4096)),),
           link: str | None = None, bus: str | None = None, rate: float = 1e9,
           after: Sequence[str] = (), recovery: RecoveryPolicy | None = None,
           verify: VerifyMethod | None = VerifyMethod.AUTO,
           erase: EraseScope = EraseScope.USED) -> DevicePlan:
    """connect → erase → one write per ``writes`` entry → verify, as the compiler builds it."""
    chip = chip_database().part(part)
    memories = [MemoryMap((Segment(address, data),)).padded(chip.flash.write_unit,
                                                            chip.flash.erased)
                for address, data in writes]
    everything = MemoryMap.merge((f"image{i}", m) for i, m in enumerate(memories))
    actions: list[tuple[TaskKind, TaskAction, int]] = [
        (TaskKind.CONNECT, ConnectAction(expected_dev_id=chip.dev_id), 0),
    ]
    if erase is not EraseScope.NONE:
        blocks = everything.blocks(chip.flash) if erase is EraseScope.USED else ()
        actions.append((TaskKind.ERASE, EraseAction(scope=erase, blocks=blocks), 0))
    uses = []
    for index, memory in enumerate(memories):
        use = ImageUse(name=f"image{index}", sha256=memory.sha256(), ranges=memory.ranges)
        uses.append(use)
        actions.append((TaskKind.WRITE, WriteAction(memory=memory, images=(use,)), memory.size))
    if verify is not None:
        actions.append((TaskKind.VERIFY, VerifyAction(method=verify, memory=everything),
                        everything.size))
    tasks = tuple(
        Task(id=f"{name}/{i}-{kind.value}", device=name, index=i, kind=kind, action=action,
             bytes=nbytes, estimate_s=0.01, recovery=recovery)
        for i, (kind, action, nbytes) in enumerate(actions))
    link = link or f"link-{name}"
    options: dict[str, Any] = {"rate": rate}
    if bus is not None:
        options["bus"] = bus
    return DevicePlan(device=name, chip=chip, link=link, kind="sim",
                      resource=f"sim:{bus or link}", options=options, tasks=tasks,
                      after=tuple(after), memory=everything, images=tuple(uses))


def plan(devices: Sequence[DevicePlan], *, max_parallel: int = 8, fail_fast: bool = False,
         log_file: str | None = None, simulation: SimulationSpec | None = None,
         warnings: tuple[str, ...] = ()) -> Plan:
    return Plan(name="line-7", manifest_path=Path("line.yaml"), manifest_sha256="ab" * 32,
                simulate=True, simulation=simulation or SimulationSpec(time_scale=0.0),
                execution=Execution(max_parallel=max_parallel, fail_fast=fail_fast),
                log=LogSpec(file=log_file), devices=tuple(devices),
                stages=(Stage(index=0, devices=tuple(d.device for d in devices)),),
                critical_path=(), estimate_s=0.1, image_digests={"image0": "cd" * 32},
                warnings=warnings)


def policy(*on: str, retries: int = 2, actions: tuple[str, ...] = ()) -> RecoveryPolicy:
    return RecoveryPolicy(name="flaky-line", retries=retries, on=frozenset(on), actions=actions)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def flash_at(flash: bytes, address: int, length: int) -> bytes:
    return flash[address - FLASH:address - FLASH + length]
