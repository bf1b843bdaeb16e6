"""Simulated time: virtual seconds, optionally paced against the wall clock."""

from __future__ import annotations

import threading
import time

__all__ = ["SimClock"]


class SimClock:
    """Accumulates simulated seconds; sleeps ``seconds * time_scale`` for real.

    ``time_scale`` 1.0 makes a simulated run take as long as the real one
    would, 0.0 runs as fast as the host can (tests), anything between speeds
    a demo up. ``elapsed`` is always the full simulated time, whatever the
    scale, so benchmarks can report realistic throughput deterministically.
    """

    def __init__(self, time_scale: float = 0.0) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self.time_scale = time_scale
        self._elapsed = 0.0
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
        if self.time_scale > 0:
            time.sleep(seconds * self.time_scale)
