"""Planned faults, as data: what a rehearsal of a bad day is to go through.

A manifest's ``simulation.devices.<name>.faults`` are parsed into :class:`Fault`
values when it is loaded (so a typo is a validation error, located, and the
plan carries typed values); the simulators (:mod:`transports.sim.faults`) fire
them. The values live here, below both, so that the manifest model does not
import the simulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FAULT_KINDS", "FAULT_OPS", "Fault"]

FAULT_KINDS = frozenset({"timeout", "nack", "link-lost", "corrupt", "brownout", "wedged",
                         "no-enumerate"})
FAULT_OPS = frozenset({"connect", "erase", "write", "read", "any"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One planned fault.

    Attributes:
        kind: ``timeout`` (no answer), ``nack`` (refusal), ``link-lost``
            (the link drops), ``corrupt`` (a programmed byte comes out wrong),
            ``brownout`` (power lost: the operation is cut short, link drops),
            ``wedged`` (the device stops answering until its power is cut),
            ``no-enumerate`` (a USB board does not show up after a reset or
            power-up, ``times`` resets in a row).
        op: which operation it hits; ``any`` matches all.
        at_byte: fires once this many bytes of ``op`` have passed (0 = at once).
        times: how often it fires before clearing; ``None`` = permanent.
    """

    kind: str
    op: str = "write"
    at_byte: int = 0
    times: int | None = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of "
                             f"{', '.join(sorted(FAULT_KINDS))}")
        if self.op not in FAULT_OPS:
            raise ValueError(f"unknown fault op {self.op!r}; use one of "
                             f"{', '.join(sorted(FAULT_OPS))}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Fault:
        """Build from a manifest entry such as ``{kind: timeout, op: write, at-byte: 4096}``."""
        times = data.get("times", 1)
        if data.get("permanent"):
            times = None
        return cls(kind=data["kind"], op=data.get("op", "write"),
                   at_byte=int(data.get("at-byte", 0)), times=times)
