"""Switching power to a USB port: hub ports (sysfs or hub class requests) and adapters.

A :class:`PortPower` is one switchable supply: the port a probe or a ROM DFU
board hangs off, or one output of a custom hub controller. Recovery actions
(``power-cycle``, ``probe-power-cycle``) call :meth:`PortPower.cycle`; the
details of what was done (method, hub, port, how long the port stayed off)
come back as a dict for the audit log. See docs/architecture.md, "Hardware
control".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["PortPower", "PowerEvent"]

#: ``(what, fields)``: every switch is reported as it happens (for the audit log).
PowerEvent = Callable[[str, Mapping[str, Any]], None]


@runtime_checkable
class PortPower(Protocol):
    """One switchable port."""

    #: The resource this switch holds exclusively (a ganged hub: the whole hub).
    resource: str

    def off(self) -> dict[str, Any]:
        """Cut the port's power; returns what was done."""

    def on(self) -> dict[str, Any]:
        """Restore the port's power and wait until it is good; returns what was done."""

    def is_on(self) -> bool | None:
        """The port's power as the hardware reports it (``None``: it cannot say)."""

    def still_off(self) -> None:
        """Raise when the port came back on by itself during the off time."""

    def describe(self) -> dict[str, Any]:
        """Where the port is, for the log (hub, port, method)."""
