"""pyserial URL handler module for ``flashsim://<key>`` (see :mod:`transports.sim.usart`).

pyserial looks up ``<package>.protocol_<scheme>`` and uses its ``Serial`` class.
"""

from __future__ import annotations

from transports.sim.usart import SimSerial as Serial

__all__ = ["Serial"]
