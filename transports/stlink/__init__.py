"""ST-Link over USB (V1, V2, V2-1, V3): SWD access and per-family flash drivers."""

from __future__ import annotations

from transports.stlink.transport import StLinkTransport

__all__ = ["StLinkTransport"]
