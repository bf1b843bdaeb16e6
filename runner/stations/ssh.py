"""Reaching a station over SSH with asyncssh: strict host keys, key auth, timeouts.

* The station's host key must be in its ``known-hosts`` file: asyncssh checks
  it during the key exchange, before authentication, so nothing (no key
  signature, no command, no file) is sent to a host that is not the station.
  There is no option to accept an unknown key.
* Only the station's ``identity-file`` is offered: no agent, no password, no
  keyboard-interactive, no ``~/.ssh/config`` (the manifest is the one source).
* Connect and login are bounded by ``connect-timeout``; keepalives every
  third of ``inactivity-timeout`` notice a dead peer.
* Commands are argv lists. SSH carries one command string, which the station
  user's login shell splits again, so each argv is quoted once with
  :func:`shlex.join` here and never assembled by hand.

Failures become the classified :mod:`.errors`: ``host-key``, ``auth``,
``timeout``, ``station-unreachable``. The station's addresses are tried in
order; only an address that cannot be reached moves on to the next one (a
host-key or auth failure stops at once).
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence

import asyncssh

from runner.model import StationSpec
from runner.stations.errors import (
    StationAuthError,
    StationHostKeyError,
    StationTimeout,
    StationUnreachable,
)

__all__ = ["command_line", "connect"]


def command_line(argv: Sequence[str]) -> str:
    """The one string SSH sends for ``argv``, quoted for a POSIX login shell."""
    return shlex.join(argv)


async def connect(station: StationSpec) -> asyncssh.SSHClientConnection:
    """An authenticated connection to ``station`` (its addresses tried in order).

    Raises:
        StationError: classified (host-key, auth, timeout, station-unreachable).
    """
    if not station.known_hosts.is_file():
        raise StationHostKeyError(
            f"station {station.name}: known_hosts file {station.known_hosts} does not exist",
            station=station.name,
            hint="add the station's host key to it (ssh-keyscan, checked by hand)")
    if not station.identity_file.is_file():
        raise StationAuthError(
            f"station {station.name}: identity file {station.identity_file} does not exist",
            station=station.name, hint="create the key and install it on the station")
    failures: list[str] = []
    timed_out = True
    for host in station.hosts:
        try:
            return await asyncio.wait_for(_connect(station, host),
                                          timeout=station.connect_timeout)
        except asyncssh.HostKeyNotVerifiable as error:
            raise StationHostKeyError(
                f"station {station.name} ({host}:{station.port}): host key not trusted: "
                f"{error.reason}", station=station.name,
                hint=f"if the station was really reinstalled, check its new key and put it "
                     f"in {station.known_hosts}; nothing was sent") from error
        except asyncssh.PermissionDenied as error:
            raise StationAuthError(
                f"station {station.name} ({host}:{station.port}) refused the key "
                f"{station.identity_file} for user {station.user}", station=station.name,
                hint="add the public key to the station user's authorized_keys") from error
        except (asyncio.TimeoutError, TimeoutError):
            failures.append(f"{host}: no answer within {station.connect_timeout:g} s")
        except (OSError, asyncssh.Error) as error:
            timed_out = False
            failures.append(f"{host}: {getattr(error, 'strerror', None) or error}")
    message = f"station {station.name} unreachable on port {station.port} ({'; '.join(failures)})"
    hint = "check the station is powered, on the network and running sshd"
    if timed_out:
        raise StationTimeout(message, station=station.name, hint=hint)
    raise StationUnreachable(message, station=station.name, hint=hint)


async def _connect(station: StationSpec, host: str) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        host, port=station.port, username=station.user,
        known_hosts=str(station.known_hosts), client_keys=[str(station.identity_file)],
        agent_path=None, password_auth=False, kbdint_auth=False, config=None,
        connect_timeout=station.connect_timeout, login_timeout=station.connect_timeout,
        keepalive_interval=max(1.0, station.inactivity_timeout / 3), keepalive_count_max=3)
