"""Low latency on a serial port: the USB-serial adapter's latency timer at 1 ms.

An FTDI converter holds what it receives from the chip until it has a full
packet (62 bytes) or its latency timer expires — 16 ms unless asked otherwise
(FTDI AN232B-04, "Data Latency"). The ROM bootloader answers almost every
frame with one ACK byte, so on such an adapter each command of a write or a
read-back waits up to 16 ms for its ACK: ~1,500 of them for 64 KiB written
and read back, seconds on every board. Linux's ``ftdi_sio`` sets the timer to
1 ms while the port carries ``ASYNC_LOW_LATENCY`` (``TIOCSSERIAL``; a flag a
user may set without privileges), and it keeps the flag until the adapter is
unplugged, so a session that sets it clears it again when it lets the port go
(a process killed mid-run leaves it set, which only makes the port answer
sooner). A port without the ioctl (a pty, a socket, another OS) is used as it
is; a driver that takes the flag but has no such timer (CDC ACM) ignores it.

docs/architecture.md, "Serial latency", says how a rehearsal models it.
"""

from __future__ import annotations

import array
import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["ASYNC_LOW_LATENCY", "LowLatency", "Outcome", "request_low_latency"]

#: linux/tty_flags.h; the fifth int of ``struct serial_struct`` holds the flags.
ASYNC_LOW_LATENCY = 0x2000
_FLAGS = 4

try:
    import fcntl
    import termios

    _TIOCGSERIAL: int | None = termios.TIOCGSERIAL
except (ImportError, AttributeError):  # pragma: no cover - not Linux
    _TIOCGSERIAL = None
try:
    from serial.serialposix import Serial as _PosixSerial
except ImportError:  # pragma: no cover - not POSIX
    _PosixSerial = None


class Outcome(enum.Enum):
    SET = "set"                  # this session set it, and clears it when done
    ALREADY = "already on"       # set before this session (a udev rule, another tool)
    UNSUPPORTED = "unsupported"  # the port has no such setting
    NOT_ASKED = "not asked"      # the link says ``low-latency: false``


@dataclass(frozen=True, slots=True, kw_only=True)
class LowLatency:
    """What asking a port for low latency did; :meth:`release` undoes what it set."""

    outcome: Outcome
    detail: str = ""
    _port: Any = None

    def describe(self) -> str:
        return f"{self.outcome.value} ({self.detail})" if self.detail else self.outcome.value

    def release(self) -> None:
        """Clear the flag this session set; nothing otherwise. Never raises."""
        if self.outcome is not Outcome.SET or self._port is None:
            return
        try:
            _set(self._port, False)
        except (OSError, ValueError):
            pass  # the port went away: its flag went with it


def request_low_latency(port: Any) -> LowLatency:
    """Ask the open ``port`` for low latency: ``ASYNC_LOW_LATENCY`` on a POSIX descriptor,
    else the port's own ``set_low_latency_mode`` (pyserial's name) where it has one."""
    if _is_posix(port):
        fd = getattr(port, "fd", None)
        if not isinstance(fd, int) or _TIOCGSERIAL is None:
            return LowLatency(outcome=Outcome.UNSUPPORTED,
                              detail="no TIOCSSERIAL here" if _TIOCGSERIAL is None else "not open")
        try:
            flags = _flags(fd)
        except OSError as error:
            return LowLatency(outcome=Outcome.UNSUPPORTED, detail=error.strerror or str(error))
        if flags & ASYNC_LOW_LATENCY:
            return LowLatency(outcome=Outcome.ALREADY)
    elif not callable(getattr(port, "set_low_latency_mode", None)):
        return LowLatency(outcome=Outcome.UNSUPPORTED, detail="not a POSIX serial port")
    try:
        _set(port, True)
    except (OSError, ValueError) as error:
        return LowLatency(outcome=Outcome.UNSUPPORTED, detail=str(error))
    return LowLatency(outcome=Outcome.SET, _port=port)


def _is_posix(port: Any) -> bool:
    return _PosixSerial is not None and isinstance(port, _PosixSerial)


def _flags(fd: int) -> int:
    """The port's ``struct serial_struct`` flags (TIOCGSERIAL)."""
    assert _TIOCGSERIAL is not None
    buffer = array.array("i", [0] * 32)  # struct serial_struct is 72 bytes on LP64
    fcntl.ioctl(fd, _TIOCGSERIAL, buffer)
    return buffer[_FLAGS]


def _set(port: Any, on: bool) -> None:
    """pyserial's own call (TIOCSSERIAL on POSIX); a closed POSIX port has nothing to change."""
    if _is_posix(port) and (not isinstance(getattr(port, "fd", None), int) or _TIOCGSERIAL is None):
        return
    port.set_low_latency_mode(on)
