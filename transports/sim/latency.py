"""A USB-serial converter's latency timer, as an FTDI FT232R has it (AN232B-04).

The converter buffers what the chip sends and passes it to the host in USB
packets of 62 data bytes: a full packet at once, a shorter rest only when the
latency timer next expires (16 ms by default; 1 ms while the host's driver
holds the port in low latency). With the timer free-running, a reply that is
not a whole number of packets reaches the host at the next tick after its
last byte: up to a whole period later, and nearly a whole one when the host
sends each command as soon as the last reply is in.

Both simulated serial front ends hold a reply with this model: ``flashsim://``
for a board whose uart quirks set ``latency-timer``, the pty for a caller that
gives a period (docs/architecture.md, "Serial latency").
"""

from __future__ import annotations

from transports.sim.clock import SimClock

__all__ = ["LOW_LATENCY_S", "PACKET_BYTES", "LatencyTimer"]

#: Data bytes per USB packet (64 minus the two modem-status bytes).
PACKET_BYTES = 62
#: The timer while the port carries ASYNC_LOW_LATENCY (Linux ftdi_sio).
LOW_LATENCY_S = 0.001


class LatencyTimer:
    """When a reply the chip has finished sending reaches the host."""

    def __init__(self, clock: SimClock, period_s: float) -> None:
        if period_s <= 0:
            raise ValueError("a latency timer needs a period above zero")
        self.clock = clock
        self.period_s = period_s
        #: Set by the host's driver (``set_low_latency_mode``; TIOCSSERIAL on hardware).
        self.low_latency = False
        #: Replies held, and the simulated seconds they waited (for tests and benchmarks).
        self.held = 0
        self.waited_s = 0.0

    @property
    def current_s(self) -> float:
        return LOW_LATENCY_S if self.low_latency else self.period_s

    def hold(self, nbytes: int) -> None:
        """Wait, on the chip's clock, until a reply of ``nbytes`` just sent is with the host."""
        if nbytes <= 0 or nbytes % PACKET_BYTES == 0:
            return
        period = self.current_s
        wait = period - self.clock.now() % period
        self.held += 1
        self.waited_s += wait
        self.clock.sleep(wait)
