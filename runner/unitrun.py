"""The run-time side of kept bytes and per-unit values, for one device session.

:class:`UnitState` holds what a device's session learned while running: the
bytes read before a preserving erase (to be written back by the next write
and covered by every later verify) and the per-unit values written (computed
once per task, so a retried write never consumes a second serial).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.errors import StorageFailed, UnitDataError
from runner.memmap import MemoryMap, Segment
from runner.plan import UnitDataAction, VerifyAction, WriteAction
from runner.preserve import PreserveRange, merge_preserved, overlay
from runner.unitdata import UnitValue, compute_unit_value
from transports.base import Transport
from transports.chips import FlashGeometry

__all__ = ["UnitState"]


def _hex(address: int) -> str:
    return f"0x{address:08X}"


@dataclass(slots=True)
class UnitState:
    """Kept bytes and unit values of one device session."""

    geometry: FlashGeometry
    kept: list[tuple[PreserveRange, bytes]] = field(default_factory=list)
    kept_written: bool = False
    values: dict[str, tuple[UnitValue, Segment]] = field(default_factory=dict)
    written_values: list[Segment] = field(default_factory=list)

    # ------------------------------------------------------------------ preserve

    def read_kept(self, transport: Transport, spans: tuple[PreserveRange, ...],
                  backup: Path | None = None) -> dict[str, Any]:
        """Read what the erase would lose (once: a retried erase must not re-read).

        With ``backup``, the bytes are also saved there as Intel HEX (synced to
        disk) before this returns, that is before anything is erased: if the run
        dies between the erase and the write-back, nothing is lost, and the log
        says where the bytes are.
        """
        fields: dict[str, Any] = {}
        known = {span for span, _ in self.kept}
        fresh = [(span, transport.read(span.address, span.length)) for span in spans
                 if span not in known]
        if fresh:
            if backup is not None:
                try:
                    _save_hex(backup, [*self.kept, *fresh])
                except OSError as error:
                    # Kept only once saved: a retried erase must not go ahead unsaved.
                    raise StorageFailed(
                        f"cannot save the bytes to keep to {backup}: "
                        f"{error.strerror or error}; nothing was erased",
                        hint="free space on the log's disk (or fix the disk) and run "
                             "again") from error
                fields["preserved_file"] = str(backup)
            self.kept.extend(fresh)
        digest = hashlib.sha256(b"".join(data for _, data in self.kept)).hexdigest()
        return {"preserved": [[_hex(span.address), _hex(span.end)] for span, _ in self.kept],
                "preserved_bytes": sum(len(data) for _, data in self.kept),
                "preserved_sha256": digest, **fields}

    def write_map(self, action: WriteAction | UnitDataAction,
                  memory: MemoryMap | None = None) -> MemoryMap:
        """The padded map to program (``memory``, default the write's) with the kept
        bytes the action puts back laid over its padding."""
        base = memory if memory is not None else \
            action.memory if isinstance(action, WriteAction) else MemoryMap()
        wanted = set(action.keep)
        kept = [(span, data) for span, data in self.kept if span in wanted]
        if not kept:
            return base
        pieces = merge_preserved(MemoryMap(), kept, self.geometry.erased).write
        return overlay(base, pieces.segments).padded(self.geometry.write_unit,
                                                     self.geometry.erased)

    def programmed(self, task_id: str, action: object) -> MemoryMap:
        """What a write or unit-data task programs (empty before its value exists)."""
        if isinstance(action, WriteAction):
            return self.write_map(action)
        if isinstance(action, UnitDataAction) and task_id in self.values:
            return self.write_map(action, MemoryMap((self.values[task_id][1],)))
        return MemoryMap()

    def wrote(self, action: WriteAction | UnitDataAction) -> None:
        if action.keep:
            self.kept_written = True

    def verify_action(self, action: VerifyAction) -> VerifyAction:
        """``action`` extended to the kept bytes and unit values written so far."""
        extra: list[Segment] = list(self.written_values)
        if self.kept_written:
            extra.extend(Segment(span.address, data) for span, data in self.kept)
        if not extra:
            return action
        return replace(action, memory=overlay(action.memory, extra))

    # ------------------------------------------------------------------ unit data

    def unit_value(self, task_id: str, action: UnitDataAction, *, device: str, run_id: str,
                   uid: str) -> tuple[UnitValue, Segment]:
        """The task's value (computed once) and the padded segment that writes it."""
        if task_id not in self.values:
            value = compute_unit_value(action.source, device=device, run_id=run_id, uid=uid)
            if len(value.data) != action.size:
                raise UnitDataError(f"{device}: the value {value.value!r} is "
                                    f"{len(value.data)} bytes, the field at "
                                    f"{_hex(action.address)} is {action.size}",
                                    hint="check the field's width in the manifest")
            unit = self.geometry.write_unit
            padded = MemoryMap((Segment(action.address, value.data),)).padded(
                unit, self.geometry.erased)
            self.values[task_id] = (value, padded.segments[0])
        return self.values[task_id]

    def value_written(self, segment: Segment) -> None:
        self.written_values.append(segment)


def _save_hex(path: Path, kept: list[tuple[PreserveRange, bytes]]) -> None:
    """Write ``kept`` as Intel HEX at their addresses, durably (temp file, fsync, rename)."""
    import bincopy

    binfile = bincopy.BinFile()
    for span, data in kept:
        binfile.add_binary(data, address=span.address)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    with temporary.open("w", encoding="ascii") as handle:
        handle.write(binfile.as_ihex())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
