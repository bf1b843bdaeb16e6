"""Protocol traces: each command a link sends, its reply, and (``-vv``) the raw bytes.

A session's :class:`Trace` comes with its :class:`~transports.base.LinkRequest`;
the protocol engines (the ROM bootloader engine, the ST-Link protocol, the DFU
protocol) report every command through it, the byte layers every transfer.
Nothing is formatted unless the trace is on: callers test
:attr:`Trace.commands` / :attr:`Trace.raw` first, so a session without a
trace pays one attribute read per command.

Where the records go (the console, a JSON-lines trace file) is the runner's
business: a :class:`TraceSink` receives plain dictionaries. The audit log
never sees them.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

__all__ = ["NO_TRACE", "Trace", "TraceSink"]


class TraceSink(Protocol):
    """Receives trace records (``device``, ``link``, ``kind``, ``level``, …)."""

    def record(self, record: dict[str, Any]) -> None: ...


class Trace:
    """One session's trace: level 0 off, 1 commands and replies, 2 also raw transfers."""

    __slots__ = ("commands", "device", "kind", "link", "raw", "sink")

    def __init__(self, sink: TraceSink | None = None, *, level: int = 0, device: str = "",
                 link: str = "", kind: str = "") -> None:
        self.sink = sink
        self.commands = sink is not None and level >= 1
        self.raw = sink is not None and level >= 2
        self.device, self.link, self.kind = device, link, kind

    def command(self, command: str, reply: str, *, started: float | None = None,
                detail: str = "") -> None:
        """``command`` (with ``detail``: address, size) answered ``reply``.

        ``started`` is the :func:`time.monotonic` before the request; the
        duration is measured from it.
        """
        if self.sink is None:
            return
        record: dict[str, Any] = {"device": self.device, "link": self.link, "kind": self.kind,
                                  "level": "command", "command": command, "reply": reply}
        if detail:
            record["detail"] = detail
        if started is not None:
            record["duration_ms"] = round((time.monotonic() - started) * 1000, 3)
        self.sink.record(record)

    def transfer(self, direction: str, data: bytes, *, what: str = "") -> None:
        """Raw bytes sent (``out``) or received (``in``); ``what`` names the channel."""
        if self.sink is None:
            return
        record: dict[str, Any] = {"device": self.device, "link": self.link, "kind": self.kind,
                                  "level": "raw", "direction": direction, "bytes": len(data),
                                  "hex": data.hex()}
        if what:
            record["what"] = what
        self.sink.record(record)


#: The trace of a session nobody listens to.
NO_TRACE = Trace()
