"""Stations on this machine: OpenSSH servers on 127.0.0.1 for rehearsing a line.

``flashrunner stations serve-local DIR`` (and the test suite) start one
``sshd -D -e -f <generated config>`` per station, as the current user, with
nothing shared with the machine's own SSH setup:

* ``DIR/id_ed25519`` — the client key the station include names, authorised
  on every local station; ``DIR/known_hosts`` — each station's host key under
  ``[127.0.0.1]:PORT``, so host-key checking stays strict;
* ``DIR/<station>/`` — the station's host key, ``sshd_config``, pid file and log,
  and ``home/``: the station user's working folder (SFTP starts there, and the
  station command runs there);
* ``DIR/bin/flashrunner`` — the station's flashrunner: this Python running this
  flashrunner (``python -m runner``), put first on the sessions' ``PATH``.

Each server listens on 127.0.0.1 only and is stopped by its pid. When run as
root, sshd needs its privilege-separation folder (``/run/sshd``); it is
created if missing (empty, as Debian's ssh service would) and removed again
by :meth:`LocalStation.stop` of the last station if it was created here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from runner.errors import EnvironmentProblem

__all__ = ["SSHD", "LocalStation", "free_port", "prepare_keys", "start_station"]

SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")
_PRIVSEP = Path("/run/sshd")
_created_privsep = False
_running = 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _keygen(path: Path) -> None:
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name,
                        "-f", str(path)], check=True)


def prepare_keys(folder: Path) -> Path:
    """The client key (created once) and the station command; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    _keygen(folder / "id_ed25519")
    (folder / "known_hosts").touch()
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "flashrunner"
    root = Path(__file__).resolve().parents[2]
    wrapper.write_text(
        "#!/bin/sh\n"
        "# The station's flashrunner: this checkout, run by the host's Python,\n"
        "# in the station's home (where SFTP starts too).\n"
        'cd "${FLASHRUNNER_STATION_HOME:-.}" || exit 3\n'
        f"PYTHONPATH={_sh(str(root))}${{PYTHONPATH:+:$PYTHONPATH}} "
        f"exec {_sh(sys.executable)} -m runner \"$@\"\n")
    wrapper.chmod(0o755)
    return folder


def _sh(text: str) -> str:
    import shlex

    return shlex.quote(text)


@dataclass(slots=True)
class LocalStation:
    """One running local sshd."""

    name: str
    port: int
    folder: Path
    process: subprocess.Popen[bytes]
    host_key: Path
    stopped: bool = False

    @property
    def home(self) -> Path:
        return self.folder / "home"

    @property
    def pid(self) -> int:
        return self.process.pid

    def session_pids(self) -> list[int]:
        """The per-connection sshd processes (children of the listener)."""
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.pid:
                children.append(int(entry.name))
        return children

    def drop_connections(self) -> None:
        """Kill the sessions (a dropped network), leaving the listener up."""
        for pid in self.session_pids():
            _kill(pid)

    def stop(self) -> None:
        """Stop the listener and its sessions, by pid (once)."""
        if self.stopped:
            return
        self.stopped = True
        sessions = self.session_pids()
        _kill(self.pid)
        for pid in sessions:
            _kill(pid)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        _stopped()


def _stopped() -> None:
    """One station fewer; the last one removes the privilege-separation folder we made."""
    global _running, _created_privsep
    _running -= 1
    if _running <= 0 and _created_privsep:
        try:
            _PRIVSEP.rmdir()
        except OSError:
            return   # not empty, or someone else's by now: leave it
        _created_privsep = False


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def _privsep() -> None:
    global _created_privsep
    if os.geteuid() != 0 or _PRIVSEP.is_dir():
        return
    try:
        _PRIVSEP.mkdir(mode=0o755)
        _created_privsep = True
    except OSError as error:
        raise EnvironmentProblem(f"sshd needs {_PRIVSEP} when run as root: {error.strerror}",
                                 hint="create it (mkdir -m 755 /run/sshd)") from error


def start_station(folder: Path, name: str, port: int | None = None, *,
                  env: dict[str, str] | None = None, restricted: bool = True) -> LocalStation:
    """Start station ``name``'s sshd on 127.0.0.1 (``port``, or a free one).

    ``restricted``: the client key is authorised as the README's station setup
    has it, for ``flashrunner station serve-ssh`` only (the station's commands
    and SFTP); otherwise for anything (a plain shell, for comparisons).
    """
    if not SSHD.exists():
        raise EnvironmentProblem(f"{SSHD} is missing", hint="apt-get install openssh-server")
    _privsep()
    folder = prepare_keys(folder.resolve())
    own = folder / name
    home = own / "home"
    home.mkdir(parents=True, exist_ok=True)
    host_key = own / "ssh_host_ed25519_key"
    _keygen(host_key)
    authorized = own / "authorized_keys"
    key = (folder / "id_ed25519.pub").read_text().strip()
    if restricted:
        command = f"{folder / 'bin' / 'flashrunner'} station serve-ssh"
        key = f'restrict,command="{command}" {key}'
    authorized.write_text(key + "\n")
    port = port or free_port()
    variables = {"PATH": f"{folder / 'bin'}:/usr/local/bin:/usr/bin:/bin",
                 "FLASHRUNNER_STATION_HOME": str(home),
                 "FLASHRUNNER_LOCK_DIR": str(own / "locks"), **(env or {})}
    setenv = " ".join(f'"{k}={v}"' for k, v in variables.items())
    config = own / "sshd_config"
    config.write_text("\n".join([
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}",
        f"PidFile {own / 'sshd.pid'}",
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "PrintMotd no",
        "ClientAliveInterval 5",
        f"SetEnv {setenv}",
        # SFTP starts in the station's home, where the station command runs too.
        f"Subsystem sftp {SFTP_SERVER} -d {home}",
        "",
    ]))
    log = (own / "sshd.log").open("ab")
    process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    _trust(folder / "known_hosts", port, host_key)
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise EnvironmentProblem(f"sshd for station {name} did not start: "
                                     f"{(own / 'sshd.log').read_text()[-500:]}")
        time.sleep(0.02)
    global _running
    _running += 1
    return LocalStation(name=name, port=port, folder=own, process=process, host_key=host_key)


def _trust(known_hosts: Path, port: int, host_key: Path) -> None:
    entry = f"[127.0.0.1]:{port}"
    public = Path(f"{host_key}.pub").read_text().split()
    lines = [line for line in known_hosts.read_text().splitlines()
             if line and line.split()[0] != entry]
    lines.append(f"{entry} {public[0]} {public[1]}")
    known_hosts.write_text("\n".join(lines) + "\n")
