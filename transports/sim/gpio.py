"""Simulated GPIO chips wired to simulated boards: BOOT0 sampled when NRST is released.

A :class:`SimGpioChip` has a label, a path and named lines, as libgpiod shows
a real chip. A line can be wired to a board's NRST or BOOT0
(:meth:`SimGpioChip.wire`); the board then follows the line's electrical
level: NRST low holds the chip in reset, and on its release the chip samples
BOOT0 and starts in its ROM bootloader (high) or its application (low), as
RM0008 §3.4 / RM0090 §2.4 describe. :class:`SimGpioBackend` implements the
driver's GPIO seam over these chips and keeps a timeline of every change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from transports.errors import HardwareControlError
from transports.sim.clock import SimClock

__all__ = ["SimGpioBackend", "SimGpioChip"]

#: Called with the line's electrical level (True = high).
Pin = Callable[[bool], None]


class LineSpec(Protocol):
    """A line as the host names it (the GPIO seam's line specification)."""

    @property
    def chip(self) -> str: ...

    @property
    def line(self) -> str | int: ...

    @property
    def active_low(self) -> bool: ...

    @property
    def open_drain(self) -> bool: ...

    def describe(self) -> str: ...


@dataclass(slots=True)
class _Line:
    name: str
    level: bool = True  # pulled up, as NRST and a strapped BOOT0 rest
    consumer: str | None = None
    pins: list[Pin] = field(default_factory=list)


class SimGpioChip:
    """A gpiochip with ``lines`` named lines (``GPIO0`` … unless names are given)."""

    def __init__(self, label: str, path: str, lines: int | list[str] = 28) -> None:
        self.label, self.path = label, path
        names = lines if isinstance(lines, list) else [f"GPIO{i}" for i in range(lines)]
        self.lines = [_Line(name) for name in names]

    def offset(self, line: str | int) -> int:
        if isinstance(line, int):
            if 0 <= line < len(self.lines):
                return line
        else:
            for index, candidate in enumerate(self.lines):
                if candidate.name == line:
                    return index
        raise HardwareControlError(f"GPIO chip {self.label} ({self.path}) has no line {line!r}")

    def wire(self, line: str | int, pin: Pin, *, level: bool | None = None) -> None:
        """Connect ``line`` to a board's pin (optionally pulled to ``level`` at rest)."""
        entry = self.lines[self.offset(line)]
        entry.pins.append(pin)
        if level is not None:
            entry.level = level

    def drive(self, offset: int, level: bool) -> None:
        entry = self.lines[offset]
        if entry.level == level:
            return
        entry.level = level
        for pin in entry.pins:
            pin(level)


class _SimRequest:
    def __init__(self, backend: SimGpioBackend, consumer: str,
                 lines: Mapping[str, tuple[SimGpioChip, int, LineSpec]]) -> None:
        self.backend, self.consumer, self.lines = backend, consumer, dict(lines)

    def _level(self, spec: LineSpec, active: bool) -> bool:
        return active != spec.active_low

    def set(self, role: str, active: bool) -> None:
        chip, offset, spec = self.lines[role]
        level = self._level(spec, active)
        if spec.open_drain and level:
            level = True  # released: the pull-up takes the line high
        self.backend.timeline.append((self.backend.clock.elapsed, self.consumer, role,
                                      f"{chip.label}:{chip.lines[offset].name}", active))
        chip.drive(offset, level)

    def get(self, role: str) -> bool:
        chip, offset, spec = self.lines[role]
        return chip.lines[offset].level != spec.active_low

    def release(self) -> None:
        with self.backend.lock:
            for chip, offset, _ in self.lines.values():
                line = chip.lines[offset]
                line.consumer = None
                chip.drive(offset, True)  # back to the pull-up: NRST released, BOOT0 as strapped
            self.lines.clear()


class SimGpioBackend:
    """The GPIO seam over simulated chips (found by label first, then path)."""

    def __init__(self, chips: list[SimGpioChip], clock: SimClock | None = None) -> None:
        self.chips = list(chips)
        self.clock = clock or SimClock()
        self.lock = threading.Lock()
        self.timeline: list[tuple[float, str, str, str, bool]] = []

    def chip(self, name: str) -> SimGpioChip:
        for chip in self.chips:
            if chip.label == name:
                return chip
        for chip in self.chips:
            if chip.path == name:
                return chip
        raise HardwareControlError(f"no GPIO chip labelled or named {name!r}",
                                   hint=f"the chips here: "
                                        f"{', '.join(c.label for c in self.chips) or 'none'}")

    def request(self, consumer: str, lines: Mapping[str, LineSpec],
                initial: Mapping[str, bool]) -> _SimRequest:
        resolved: dict[str, tuple[SimGpioChip, int, LineSpec]] = {}
        with self.lock:
            for role, spec in lines.items():
                chip = self.chip(spec.chip)
                offset = chip.offset(spec.line)
                holder = chip.lines[offset].consumer
                if holder is not None:
                    raise HardwareControlError(f"GPIO line {spec.describe()} is held by "
                                               f"{holder}")
                resolved[role] = (chip, offset, spec)
            for chip, offset, _ in resolved.values():
                chip.lines[offset].consumer = consumer
        request = _SimRequest(self, consumer, resolved)
        for role, active in initial.items():
            request.set(role, active)
        return request
