"""The STM32 system-memory bootloader: one command engine, a framing per link.

* :mod:`transports.sysboot.commands` — command codes and the set a ROM lists;
* :mod:`transports.sysboot.framing` — the interface a link implements;
* :mod:`transports.sysboot.engine` — the AN3155 command engine;
* :mod:`transports.sysboot.transport` — the transport contract on top of it.

The links themselves are :mod:`transports.uart`, :mod:`transports.i2c` and
:mod:`transports.can`.
"""

from __future__ import annotations

from transports.sysboot.commands import Command, CommandSet
from transports.sysboot.engine import BootloaderEngine
from transports.sysboot.framing import Block, BlockKind, Framing
from transports.sysboot.transport import BASE_CAPABILITIES, BootloaderSession

__all__ = ["BASE_CAPABILITIES", "Block", "BlockKind", "BootloaderEngine", "BootloaderSession",
           "Command", "CommandSet", "Framing"]
