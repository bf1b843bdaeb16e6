"""Reaching a station: in-process asyncssh servers on 127.0.0.1 (fast, no sshd needed)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from runner.model import StationSpec
from runner.stations.errors import (
    StationAuthError,
    StationHostKeyError,
    StationTimeout,
    StationUnreachable,
)
from runner.stations.ssh import command_line, connect

HOSTILE = ["flash runner", "it's", '"$(touch PWNED)"', "`touch PWNED`", "a;b", "$HOME", "*",
           "new\nline", ""]


class _Recorder(asyncssh.SSHServer):
    attempts: list[str] = []

    def begin_auth(self, username: str) -> bool:
        self.attempts.append(username)
        return True


def _key(path: Path) -> asyncssh.SSHKey:
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    key.write_public_key(str(path) + ".pub")
    return key


@contextlib.asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[asyncssh.SSHAcceptor, Path]]:
    host_key = _key(tmp_path / "host")
    client = _key(tmp_path / "client")

    async def answer(process: asyncssh.SSHServerProcess[str]) -> None:
        process.stdout.write(f"{process.command}\n")
        process.exit(0)

    _Recorder.attempts = []
    acceptor = await asyncssh.listen(
        "127.0.0.1", 0, server_host_keys=[host_key],
        authorized_client_keys=asyncssh.import_authorized_keys(
            client.export_public_key().decode()),
        server_factory=_Recorder, process_factory=answer)
    port = acceptor.sockets[0].getsockname()[1]
    (tmp_path / "known_hosts").write_text(
        f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")
    try:
        yield acceptor, tmp_path
    finally:
        acceptor.close()
        await acceptor.wait_closed()


def _station(folder: Path, port: int, **changes: object) -> StationSpec:
    settings: dict[str, object] = {
        "name": "pi1", "hosts": ("127.0.0.1",), "user": "flash",
        "identity_file": folder / "client", "known_hosts": folder / "known_hosts",
        "links": ("probe",), "port": port, "connect_timeout": 2.0}
    settings.update(changes)
    return StationSpec(**settings)  # type: ignore[arg-type]


def _port(acceptor: asyncssh.SSHAcceptor) -> int:
    port: int = acceptor.sockets[0].getsockname()[1]
    return port


def test_a_trusted_station_runs_the_argv_it_is_sent_word_for_word(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path) as (acceptor, folder):
            connection = await connect(_station(folder, _port(acceptor)))
            async with connection:
                done = await connection.run(command_line(["flashrunner", "station", "info"]))
            assert done.stdout == "flashrunner station info\n"
            assert _Recorder.attempts == ["flash"]

    asyncio.run(scenario())


def test_an_unknown_host_key_is_refused_before_authentication(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path) as (acceptor, folder):
            other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
            (folder / "known_hosts").write_text(f"[127.0.0.1]:{_port(acceptor)} {other}")
            with pytest.raises(StationHostKeyError, match="host key not trusted") as caught:
                await connect(_station(folder, _port(acceptor)))
            assert caught.value.category == "host-key"
            assert _Recorder.attempts == []   # no user name, no key signature went out

    asyncio.run(scenario())


def test_a_missing_known_hosts_file_is_a_host_key_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path) as (acceptor, folder):
            with pytest.raises(StationHostKeyError, match="does not exist"):
                await connect(_station(folder, _port(acceptor), known_hosts=folder / "nope"))
            assert _Recorder.attempts == []

    asyncio.run(scenario())


def test_a_key_the_station_does_not_know_is_an_auth_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path) as (acceptor, folder):
            _key(folder / "stranger")
            with pytest.raises(StationAuthError, match="refused the key") as caught:
                await connect(_station(folder, _port(acceptor), identity_file=folder / "stranger"))
            assert caught.value.category == "auth"

    asyncio.run(scenario())


def test_addresses_are_tried_in_order_past_an_unreachable_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path) as (acceptor, folder):
            # 127.0.0.2 is loopback too, but nothing listens there on this port.
            station = _station(folder, _port(acceptor), hosts=("127.0.0.2", "127.0.0.1"))
            connection = await connect(station)
            connection.close()
            with pytest.raises(StationUnreachable, match="127.0.0.2") as caught:
                await connect(_station(folder, _port(acceptor), hosts=("127.0.0.2",)))
            assert caught.value.category == "station-unreachable"

    asyncio.run(scenario())


def test_a_silent_station_times_out(tmp_path: Path) -> None:
    async def scenario() -> None:
        _key(tmp_path / "client")
        (tmp_path / "known_hosts").write_text("")
        with socket.socket() as silent:   # accepts, never says a word
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            station = _station(tmp_path, silent.getsockname()[1], connect_timeout=0.3)
            with pytest.raises(StationTimeout) as caught:
                await asyncio.wait_for(connect(station), 5)
        assert caught.value.category == "timeout"

    asyncio.run(scenario())



def test_the_login_shell_gets_back_exactly_the_argv(tmp_path: Path) -> None:
    argv = ["printf", "[%s]\\n", *HOSTILE]
    done = subprocess.run(["sh", "-c", command_line(argv)], cwd=tmp_path, check=True,
                          capture_output=True, text=True)
    assert done.stdout == "".join(f"[{word}]\n" for word in HOSTILE)
    assert not list(tmp_path.iterdir())   # nothing was executed, nothing created
