"""The live progress block's rows, fitted to the terminal's width.

Pure formatting: :class:`DeviceProgress` and :class:`RunProgress` hold what
the console learnt from the events; :func:`device_row` and
:func:`overall_row` turn them into lines no wider than the terminal (a line
one column too wide wraps, and the next redraw then moves the cursor up too
few rows and leaves stale rows behind). Fields are dropped in order of
usefulness as the width shrinks: the bar narrows first, then goes, then the
chip, the rate, the byte counts.

A row, at 100 columns::

    sensor-1   stm32f103c8  write   ██████████░░░░░░░░░░  52%  12.5/24.0 KiB  3.1 KiB/s  ETA 4 s
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["DeviceProgress", "RunProgress", "device_row", "fit", "overall_row", "short_time"]


@dataclass(slots=True)
class DeviceProgress:
    """One running device: its current step and how far it is."""

    device: str
    chip: str = ""
    step: str = "waiting"
    done: int = 0
    total: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)   # the current step's start
    estimate_s: float = 0.0                                   # the current step's estimate
    state: str = "running"

    def begin(self, step: str, *, estimate_s: float, total: int, now: float) -> None:
        self.step, self.estimate_s, self.total, self.done, self.started = \
            step, estimate_s, total, 0, now

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total > 0 else None

    def rate(self, now: float) -> float | None:
        """Bytes per second in the current step, once there is something to measure."""
        elapsed = now - self.started
        return self.done / elapsed if self.done and elapsed > 0.05 else None


@dataclass(slots=True)
class RunProgress:
    """The whole run: counts, and how much of the plan's estimate is behind us."""

    devices: int = 0
    estimate_s: float = 0.0       # the plan's estimate for every device's steps
    finished_s: float = 0.0       # the estimates of the steps finished so far
    started: float = field(default_factory=time.monotonic)
    counts: dict[str, int] = field(default_factory=dict)

    def remaining(self, running: list[DeviceProgress], now: float) -> float | None:
        """Estimated seconds left, from the share of the plan done so far (None: unknown).

        The plan's estimate is in the chip's time; measuring the share done
        against the time it took calibrates it (a rehearsal's time scale, a
        slower probe) without knowing why it differs.
        """
        if self.estimate_s <= 0:
            return None
        done = self.finished_s + sum(d.estimate_s * (d.fraction or 0.0) for d in running)
        share = min(1.0, done / self.estimate_s)
        elapsed = now - self.started
        if share <= 0.02 or elapsed < 0.5:
            return None
        return max(0.0, elapsed * (1 - share) / share)


def short_time(seconds: float) -> str:
    """``4 s``, ``1 min 05 s``, ``2 h 03 min``: for an ETA, no false precision."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _kib(size: int) -> str:
    return f"{size / 1024:.1f}"


def _bar(fraction: float, cells: int, *, unicode: bool) -> str:
    filled = round(fraction * cells)
    full, empty = ("█", "░") if unicode else ("#", "-")
    return full * filled + empty * (cells - filled)


def fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` columns (an ellipsis marks the cut)."""
    if len(text) <= width:
        return text
    return text[:max(0, width - 1)] + "…" if width > 0 else ""


#: Fields given up, in this order, while a row is too wide for the terminal.
_DROP_ORDER = ("chip", "rate", "bar", "bytes", "eta")
_BAR_MIN, _BAR_MAX = 8, 30


def device_row(line: DeviceProgress, *, width: int, now: float, name_width: int = 12,
               unicode: bool = True) -> str:
    """One device's row, at most ``width`` columns."""
    fraction = line.fraction
    rate = line.rate(now)
    fields: dict[str, str] = {"name": line.device.ljust(name_width),
                              "chip": line.chip.ljust(12), "step": line.step.ljust(10)}
    if fraction is not None:
        fields["bar"] = ""
        fields["percent"] = f"{fraction * 100:3.0f}%"
        fields["bytes"] = f"{_kib(line.done)}/{_kib(line.total)} KiB"
        if rate is not None:
            fields["rate"] = f"{rate / 1024:.1f} KiB/s"
            fields["eta"] = f"ETA {short_time((line.total - line.done) / rate)}"
    if line.retries:
        fields["retries"] = f"retry {line.retries}"
    if not line.chip:
        fields.pop("chip")
    drops = [name for name in _DROP_ORDER if name in fields]

    def length() -> int:
        texts = [text for name, text in fields.items() if name != "bar"]
        bar = _BAR_MIN + 2 if "bar" in fields else 0
        return len("  ".join(texts)) + bar

    while drops and length() > width:
        fields.pop(drops.pop(0))
    if "bar" in fields and fraction is not None:
        cells = min(_BAR_MAX, _BAR_MIN + width - length())
        fields["bar"] = _bar(fraction, cells, unicode=unicode)
    return fit("  ".join(fields.values()).rstrip(), width)


def overall_row(run: RunProgress, running: list[DeviceProgress], *, width: int,
                now: float) -> str:
    """The run's line: devices done / running / failed, elapsed, estimated remaining."""
    counts = run.counts
    finished = sum(counts.values())
    parts = [f"{finished}/{run.devices} done", f"{len(running)} running"]
    failed = counts.get("failed", 0) + counts.get("upstream-failed", 0)
    if failed:
        parts.append(f"{failed} failed")
    parts.append(f"{short_time(now - run.started)} elapsed")
    left = run.remaining(running, now)
    if left is not None:
        parts.append(f"~{short_time(left)} left")
    return fit(" · ".join(parts), width)
