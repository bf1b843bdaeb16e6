"""A simulated I2C bus with smbus2's ``i2c_rdwr`` semantics, hosting ROM bootloaders.

:class:`SimI2cBus` takes real :class:`smbus2.i2c_msg` messages, as
``SMBus.i2c_rdwr`` does, and exposes the ``funcs`` bit mask smbus2 reads from
the adapter (``I2C_FUNCS``), so a driver's "plain I2C supported?" check runs
against it. Each attached device is an AN4221 byte-stream ROM
(:class:`~transports.sim.bootloader_stream.StreamBootloader` in I2C mode):

* a write message is one host frame; a read message one reply transaction;
* a 1-byte status read while a no-stretch command works answers BUSY (0x76);
* an address nobody answers, a chip running its application, or one that has
  dropped off the bus (``link-lost``) NAKs: ``OSError(EREMOTEIO)`` like i2c-dev;
* reading more than the chip has to say returns 0xFF (undefined on silicon).

Wire time: 9 bits per byte plus the address byte and start/stop per message,
at the bus clock.
"""

from __future__ import annotations

import ctypes
import errno
import threading
from collections.abc import Callable

from smbus2 import I2cFunc, i2c_msg

from transports.sim.bootloader import BUSY
from transports.sim.bootloader_stream import StreamBootloader

__all__ = ["SMBUS_ONLY_FUNCS", "SimI2cBus"]

_I2C_M_RD = 0x0001

#: What an SMBus-only controller reports: no plain I2C transactions.
SMBUS_ONLY_FUNCS = (I2cFunc.SMBUS_QUICK | I2cFunc.SMBUS_READ_BYTE | I2cFunc.SMBUS_WRITE_BYTE
                    | I2cFunc.SMBUS_READ_BYTE_DATA | I2cFunc.SMBUS_WRITE_BYTE_DATA
                    | I2cFunc.SMBUS_READ_WORD_DATA | I2cFunc.SMBUS_WRITE_WORD_DATA
                    | I2cFunc.SMBUS_READ_I2C_BLOCK | I2cFunc.SMBUS_WRITE_I2C_BLOCK)


class SimI2cBus:
    """One simulated I2C adapter and the bootloaders on it."""

    def __init__(self, *, clock_hz: int = 100_000, smbus_only: bool = False) -> None:
        self.clock_hz = clock_hz
        self.funcs: I2cFunc = SMBUS_ONLY_FUNCS if smbus_only \
            else SMBUS_ONLY_FUNCS | I2cFunc.I2C
        self.devices: dict[int, StreamBootloader] = {}
        self._clocks: dict[int, Callable[[float], None]] = {}
        self._lock = threading.Lock()
        self.transactions = 0

    def attach(self, address: int, device: StreamBootloader) -> StreamBootloader:
        """Put a ROM at 7-bit ``address`` (kept if one is already there)."""
        with self._lock:
            existing = self.devices.setdefault(address, device)
            self._clocks.setdefault(address, existing.core.sim.clock.advance)
            return existing

    def _charge(self, address: int, nbytes: int) -> None:
        # START + address byte (9 bits) + data bytes (9 bits each) + STOP.
        bits = 2 + 9 * (1 + nbytes)
        self._clocks[address](bits / self.clock_hz)

    def i2c_rdwr(self, *messages: i2c_msg) -> None:
        """Run each message as a transaction, like ``SMBus.i2c_rdwr``."""
        for message in messages:
            with self._lock:
                self.transactions += 1
                device = self.devices.get(message.addr)
            # The ROM still sends the ACK of Go before the application takes over.
            if device is None or (not device.core.running and not device.output):
                raise OSError(errno.EREMOTEIO, "Remote I/O error")
            if device.dead:   # the chip lost power or its link: the bus itself fails
                raise OSError(errno.EIO, "Input/output error")
            self._charge(message.addr, message.len)
            if message.flags & _I2C_M_RD and not device.output and not device.busy_polls:
                # A silent ROM does not acknowledge its address: the host sees no reply.
                raise OSError(errno.EREMOTEIO, "Remote I/O error")
            if message.flags & _I2C_M_RD:
                data = self._reply(device, message.len)
                ctypes.memmove(message.buf, data, len(data))
            else:
                device.feed(bytes(message))

    def _reply(self, device: StreamBootloader, length: int) -> bytes:
        with device.lock:
            if length == 1 and device.busy_polls > 0:
                device.busy_polls -= 1
                return bytes([BUSY])
            data = device.take(length)
        return data + b"\xff" * (length - len(data))

    def close(self) -> None:
        """An SMBus handle's close; the simulated bus lives on with its world."""
