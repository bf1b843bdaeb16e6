"""Simulated time: virtual seconds that follow the wall clock at a time scale.

A simulated chip keeps its own clock. Work it does (an erase, the bytes of a
frame on the wire) *advances* it; the host waiting *sleeps* on it. With a
time scale above zero the clock is paced against the wall clock: advancing
by ``s`` simulated seconds takes ``s * time_scale`` real seconds, and wall
time that passes while nobody talks to the chip — a host sleeping the
datasheet time with :func:`time.sleep`, a host thinking — is simulated time
too (``wall seconds / time_scale``). So a host that waits the way it would on
silicon sees the operation end, and drivers run their production wait and
deadline code in a rehearsal (docs/architecture.md, "Simulated time").

Time scale 0 is the fast mode for tests: simulated time passes only when it
is advanced or slept, at no real cost, and wall time does not count.
"""

from __future__ import annotations

import threading
import time

__all__ = ["SimClock", "SimTimebase"]

#: Sleeps shorter than this are deferred: simulators advance the clock in many
#: tiny steps (one per half-word on an F1), and sleeping for each would cost far
#: more than the step itself.
_MIN_SLEEP_S = 0.002


class SimClock:
    """Simulated seconds, paced at ``time_scale`` real seconds each.

    ``time_scale`` 1.0 makes a simulated run take as long as the real one
    would, 0.0 runs as fast as the host can (tests), anything between speeds
    a demo up. :attr:`elapsed` is the simulated time since the clock started:
    everything advanced or slept, plus (when paced) the wall time that passed
    with the simulation idle. Pacing keeps a real-time mark — the wall time
    the simulation has reached — and sleeps only when it is ahead of the wall
    clock by more than a couple of milliseconds, so many small steps cost no
    more than one large one.
    """

    def __init__(self, time_scale: float = 0.0) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self.time_scale = time_scale
        self._elapsed = 0.0
        self._mark = time.monotonic()
        self._lock = threading.Lock()

    def _catch_up(self, now: float) -> None:
        """Count the wall time since the mark as simulated time (lock held)."""
        if self.time_scale > 0 and now > self._mark:
            self._elapsed += (now - self._mark) / self.time_scale
            self._mark = now

    @property
    def elapsed(self) -> float:
        with self._lock:
            if self.time_scale > 0:
                self._catch_up(time.monotonic())
            return self._elapsed

    def now(self) -> float:
        """The simulated time now (the same as :attr:`elapsed`)."""
        return self.elapsed

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass: work done by the chip or the wire."""
        if seconds <= 0:
            return
        with self._lock:
            if self.time_scale <= 0:
                self._elapsed += seconds
                return
            now = time.monotonic()
            self._catch_up(now)
            self._elapsed += seconds
            self._mark += seconds * self.time_scale
            delay = self._mark - now
        if delay > _MIN_SLEEP_S:
            time.sleep(delay)

    def sleep(self, seconds: float) -> None:
        """The host waits ``seconds`` of simulated time (real time when paced)."""
        self.advance(seconds)


class SimTimebase:
    """A chip's :class:`SimClock` as a driver's :class:`~transports.endpoints.Clock`."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock

    def monotonic(self) -> float:
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)
