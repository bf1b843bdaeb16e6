"""Simulated time: virtual seconds, optionally paced against the wall clock."""

from __future__ import annotations

import threading
import time

__all__ = ["SimClock"]

#: Sleeps shorter than this are deferred: simulators advance the clock in many
#: tiny steps (one per half-word on an F1), and sleeping for each would cost far
#: more than the step itself.
_MIN_SLEEP_S = 0.002
#: Real time the simulation may fall behind and then catch up on (host hiccups);
#: idle time beyond this is forgotten rather than run off at full speed later.
_CATCH_UP_S = 0.02


class SimClock:
    """Accumulates simulated seconds; keeps pace at ``time_scale`` real seconds each.

    ``time_scale`` 1.0 makes a simulated run take as long as the real one
    would, 0.0 runs as fast as the host can (tests), anything between speeds
    a demo up. ``elapsed`` is always the full simulated time, whatever the
    scale, so benchmarks can report realistic throughput deterministically.
    Pacing keeps a real-time deadline and sleeps only when it is ahead of the
    wall clock by more than a couple of milliseconds, so many small steps cost
    no more than one large one.
    """

    def __init__(self, time_scale: float = 0.0) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self.time_scale = time_scale
        self._elapsed = 0.0
        self._deadline: float | None = None
        self._lock = threading.Lock()

    @property
    def elapsed(self) -> float:
        with self._lock:
            return self._elapsed

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass."""
        if seconds <= 0:
            return
        with self._lock:
            self._elapsed += seconds
            if self.time_scale <= 0:
                return
            now = time.monotonic()
            if self._deadline is None or self._deadline < now - _CATCH_UP_S:
                self._deadline = now
            self._deadline += seconds * self.time_scale
            delay = self._deadline - now
        if delay > _MIN_SLEEP_S:
            time.sleep(delay)
