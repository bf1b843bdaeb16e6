"""Fault injection for simulated chips: the reliability tests' lever.

A :class:`FaultPlan` holds faults; front ends call :meth:`FaultPlan.check`
before they carry out an operation and translate an :class:`InjectedFault`
into what the wire would show (no answer, a NACK, a dropped USB device, a
corrupted byte). The faults themselves are data (:mod:`transports.faults`), read
from the manifest when it is loaded. A fault fires when the operation's running
byte count for the session reaches ``at_byte``; a *transient* fault fires
``times`` times and then clears, a permanent one (``times=None``) fires every time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from transports.faults import FAULT_KINDS, FAULT_OPS, Fault

__all__ = ["FAULT_KINDS", "FAULT_OPS", "Fault", "FaultPlan", "InjectedFault"]

#: Faults that change a board's state rather than hit an operation (see :meth:`FaultPlan.take`).
_STATE_KINDS = frozenset({"no-enumerate"})


class InjectedFault(Exception):
    """Raised inside a simulator when a planned fault fires."""

    def __init__(self, fault: Fault, offset: int) -> None:
        super().__init__(f"injected {fault.kind} during {fault.op} at byte {offset}")
        self.fault = fault
        self.offset = offset

    @property
    def kind(self) -> str:
        return self.fault.kind


class FaultPlan:
    """The faults planned for one simulated chip, with running byte counters."""

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._remaining: dict[int, int | None] = {}
        self._faults: list[Fault] = []
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()
        self.fired: list[tuple[Fault, int]] = []
        for fault in faults:
            self.add(fault)

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)
            self._remaining[len(self._faults) - 1] = fault.times

    def __bool__(self) -> bool:
        return bool(self._faults)

    def check(self, op: str, length: int = 0) -> None:
        """Account ``length`` bytes of ``op``; raise :class:`InjectedFault` if one is due.

        Raises before the bytes are counted as done, so the fault's offset is
        the first byte that did not make it.
        """
        with self._lock:
            start = self._counters.get(op, 0)
            end = start + length
            for index, fault in enumerate(self._faults):
                remaining = self._remaining[index]
                if remaining == 0 or fault.op not in (op, "any") or fault.kind in _STATE_KINDS:
                    continue
                if start <= fault.at_byte < max(end, start + 1) or (
                        fault.at_byte < start and remaining is None):
                    if remaining is not None:
                        self._remaining[index] = remaining - 1
                    offset = max(fault.at_byte, start)
                    self.fired.append((fault, offset))
                    raise InjectedFault(fault, offset)
            self._counters[op] = end

    def take(self, kind: str) -> bool:
        """Consume one firing of a ``kind`` fault that acts on a board's state, not a byte.

        Used for ``no-enumerate``: each (re-)enumeration takes one; True while one is due.
        """
        with self._lock:
            for index, fault in enumerate(self._faults):
                remaining = self._remaining[index]
                if fault.kind != kind or remaining == 0:
                    continue
                if remaining is not None:
                    self._remaining[index] = remaining - 1
                self.fired.append((fault, 0))
                return True
        return False

    def reset_counters(self) -> None:
        """Start counting bytes afresh (a new session)."""
        with self._lock:
            self._counters.clear()
