"""Why a station could not be used: classified errors, one per thing the operator fixes."""

from __future__ import annotations

from runner.errors import RunnerError

__all__ = ["StationAuthError", "StationCommandError", "StationError", "StationHostKeyError",
           "StationLost", "StationTimeout", "StationUnreachable"]


class StationError(RunnerError, ConnectionError):
    """A station could not be reached, trusted or followed; its devices fail with this."""

    category = "station"

    def __init__(self, message: str, *, station: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.station = station

    def fields(self) -> dict[str, object]:
        return {**super().fields(), "station": self.station}


class StationUnreachable(StationError):
    """No address of the station accepted a connection."""

    category = "station-unreachable"


class StationHostKeyError(StationError):
    """The station's host key is not in known_hosts (or differs from it): nothing was sent."""

    category = "host-key"


class StationAuthError(StationError):
    """The station refused our key."""

    category = "auth"


class StationTimeout(StationError, TimeoutError):
    """Connecting, authenticating or waiting for the station took too long."""

    category = "timeout"


class StationLost(StationError):
    """Contact with a running station was lost and could not be regained."""

    category = "station-lost"



class StationCommandError(StationError):
    """flashrunner did not run on the station (not installed there, wrong path)."""

    category = "station-command"
