"""The system-bootloader command engine (AN3155 command set), link independent.

One :class:`BootloaderEngine` drives one ROM bootloader through a
:class:`~transports.sysboot.framing.Framing`; it knows the commands, their
blocks, sizes, alignment and timeouts, and nothing of USART, I2C or CAN.

Failures leave as :mod:`transports.errors`: a NACK is a :class:`ProtocolError`
naming the command and the stage (command byte, address, length, data…),
except where its meaning is known — a listed command refused on its command
byte means readout protection (:class:`ReadProtected`, AN3155 §2), a refused
write or erase carries its address (:class:`WriteError`, :class:`EraseError`);
silence is a :class:`LinkTimeout`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial, reduce
from operator import xor

from transports.chips import Chip
from transports.errors import (
    ConnectError,
    EraseError,
    LinkTimeout,
    ProtocolError,
    ReadProtected,
    Refused,
    RunnerError,
    WriteError,
)
from transports.sysboot.commands import ALLOWED_UNDER_RDP, Command, CommandSet, command_name
from transports.sysboot.framing import (
    BadReply,
    Block,
    CountMismatch,
    Framing,
    Nack,
    NoReply,
    Prepared,
)
from transports.trace import NO_TRACE, Trace

__all__ = ["MAX_BLOCK", "BootloaderEngine"]


@dataclass(slots=True)
class _Reply:
    """What a command's trace line says the ROM answered."""

    text: str = "ACK"

#: AN3155 §3.4/§3.6: Read and Write Memory move at most 256 bytes.
MAX_BLOCK = 256
#: AN3155 §3.7: legacy Erase takes at most 255 one-byte page numbers.
_LEGACY_ERASE_PAGES = 255
#: stm32flash's limit for Extended Erase lists (STM32L0 refuses more).
_EXTENDED_ERASE_PAGES = 511
_SHORT = 1.0

_PROTECTION_HINT = ("remove readout protection first (option-bytes: {rdp: 0}); "
                    "this mass-erases the chip")


class BootloaderEngine:
    """Commands of one ROM bootloader session over a framing.

    Args:
        framing: the link's framing.
        chip: the chip the manifest names (timeouts, erase units).
        link, device: manifest names, for errors.
        trace: where each command and its reply are reported (``-v``).
    """

    def __init__(self, framing: Framing, chip: Chip, *, link: str, device: str,
                 trace: Trace = NO_TRACE) -> None:
        self.framing = framing
        self.trace = trace
        self.chip = chip
        self.link = link
        self.device = device
        self.commands = CommandSet(version=0, codes=frozenset())
        self.version = 0
        self.option_status = b""
        self.pid: int | None = None

    # ------------------------------------------------------------------ errors

    def _protocol(self, code: int, stage: str, what: str, reply: bytes = b"",
                  hint: str | None = None) -> ProtocolError:
        return ProtocolError(f"{command_name(code)}: {what} at the {stage} stage "
                             f"on {self.device}", command=command_name(code), reply=reply,
                             hint=hint, transport=self.link, device=self.device)

    @contextmanager
    def _command(self, code: int, *, address: int | None = None,
                 size: int | None = None) -> Iterator[_Reply]:
        """Map the framing's NACK / silence for ``code`` to our error tree; trace it.

        The body may set the yielded reply's ``text`` (what the ROM answered, for
        ``-v``); it reads ACK otherwise.
        """
        reply = _Reply()
        started = time.monotonic() if self.trace.commands else 0.0
        try:
            yield reply
            if self.trace.commands:
                self._traced(code, address, size, reply.text, started)
        except (Nack, BadReply, NoReply) as failure:
            raise self._failed(code, failure, address, size, started) from failure

    def _failed(self, code: int, failure: Nack | BadReply | NoReply, address: int | None,
                size: int | None, started: float) -> RunnerError:
        """The error a NACK, a garbled reply or silence of ``code`` is (traced with ``-v``)."""
        if isinstance(failure, Nack):
            if self.trace.commands:
                self._traced(code, address, size, f"NACK ({failure.stage})", started)
            return self._refusal(code, failure, address)
        if isinstance(failure, BadReply):
            if self.trace.commands:
                self._traced(code, address, size, f"unexpected {failure.reply.hex()} "
                                                  f"({failure.stage})", started)
            self._try_resync()
            return self._protocol(code, failure.stage, f"unexpected reply "
                                  f"{failure.reply.hex()}", failure.reply,
                                  hint="check the baud rate and the wiring")
        if self.trace.commands:
            self._traced(code, address, size, f"no answer ({failure.stage})", started)
        self._try_resync()
        return LinkTimeout(
            f"{command_name(code)}: no answer at the {failure.stage} stage on "
            f"{self.device}", transport=self.link, device=self.device,
            hint="check wiring, power and that the chip is in its bootloader")

    def _traced(self, code: int, address: int | None, size: int | None, reply: str,
                started: float) -> None:
        detail = " ".join(part for part in (
            f"0x{address:08X}" if address is not None else "",
            f"{size} B" if size is not None else "") if part)
        self.trace.command(command_name(code), reply, started=started, detail=detail)

    def _plausible(self, address: int | None) -> bool:
        """Could the chip accept ``address`` at all (flash, RAM, option or system words)?"""
        if address is None:
            return True
        chip = self.chip
        areas = [(chip.flash.base, chip.flash.end), chip.ram,
                 (chip.option_bytes.address, chip.option_bytes.address + chip.option_bytes.size),
                 (chip.uid_address, chip.uid_address + 12),
                 (chip.flash_size_address, chip.flash_size_address + 2)]
        areas += [area for area in (chip.bootloader.system_memory, chip.bootloader.option_bytes)
                  if area is not None]
        return any(start <= address < end for start, end in areas)

    def _refusal(self, code: int, nack: Nack, address: int | None) -> RunnerError:
        # AN3155 §2: a listed command refused on its command byte means readout
        # protection. CAN carries the address in the command frame (AN3154), so
        # there a refusal of an address the chip cannot have is the address's fault.
        if nack.stage == "command" and code in self.commands \
                and code not in ALLOWED_UNDER_RDP and self._plausible(address):
            return ReadProtected(f"{command_name(code)} refused on {self.device}: readout "
                                 f"protection is active", transport=self.link,
                                 device=self.device, also=("nack",), hint=_PROTECTION_HINT)
        if code in (Command.WRITE, Command.WRITE_NS) and nack.stage != "command":
            return WriteError(f"{command_name(code)} refused at the {nack.stage} stage on "
                              f"{self.device}", address=address, transport=self.link,
                              device=self.device, also=("nack",),
                              hint="the address must be writable, 4-byte aligned and erased "
                                   "(F0/F1/F3, L0, L4/G0/G4 and newer refuse to program over data)")
        if code in (Command.ERASE, Command.EXTENDED_ERASE, Command.ERASE_NS):
            return EraseError(f"{command_name(code)} refused at the {nack.stage} stage on "
                              f"{self.device}", address=address, transport=self.link,
                              device=self.device, also=("nack",),
                              hint="check write protection and the page numbers")
        return Refused(f"{command_name(code)}: NACK at the {nack.stage} stage on {self.device}",
                       command=command_name(code), reply=nack.reply, transport=self.link,
                       device=self.device,
                       hint="the chip refused the request; check the address range")

    def _try_resync(self) -> None:
        try:
            self.framing.resync()
        except (RunnerError, Nack, NoReply, BadReply):
            pass

    def _require(self, function: str) -> int:
        code = self.commands.pick(function)
        if code is None:
            raise Refused(f"the bootloader of {self.device} (v{self.commands.version_text})"
                          f" does not offer {function.replace('_', ' ')}",
                          command=function, transport=self.link, device=self.device,
                          hint="use a link or probe that can do it")
        return code

    # ------------------------------------------------------------------ session

    def start(self) -> None:
        """Sync, then Get Version, Get and Get ID — the order stm32flash uses."""
        self.framing.sync()
        try:
            self.get_version()
        except LinkTimeout as silent:
            raise ConnectError(f"no bootloader answers on {self.framing.name}",
                               transport=self.link, device=self.device, also=("timeout",),
                               hint="check that BOOT0 selects the system bootloader, the "
                                    "wiring and the address or port") from silent
        self._handshake()

    def restart(self, settle: float = 0.1) -> None:
        """After the chip reset itself: back into the ROM, and learn it again.

        ``settle`` covers what the chip still does after its last ACK (the mass
        erase of Readout Unprotect, AN3155 §3.12) before it reboots.
        """
        self.framing.reenter(settle)
        self.get_version()
        self._handshake()

    def _handshake(self) -> None:
        self.get()
        missing = self.commands.missing_mandatory
        if missing:
            raise ConnectError(f"the bootloader of {self.device} does not list "
                               f"{', '.join(command_name(c) for c in missing)}",
                               transport=self.link, device=self.device,
                               hint="this is not an STM32 system bootloader")
        self.get_id()

    def get_version(self) -> int:
        code = Command.GET_VERSION
        with self._command(code) as traced:
            self.framing.request(code, timeout=_SHORT)
            reply = self.framing.receive(self.framing.version_reply_length, timeout=_SHORT,
                                         code=code)
            self.framing.expect_ack("reply", timeout=_SHORT, code=code)
            traced.text = f"ACK v{reply[0] >> 4}.{reply[0] & 0xF}"
        self.version = reply[0]
        self.option_status = bytes(reply[1:])
        self.framing.learn_version(self.version)
        return self.version

    def get(self) -> CommandSet:
        code = Command.GET
        expected: int | None = None
        for _ in range(2):
            try:
                with self._command(code) as traced:
                    self.framing.request(code, timeout=_SHORT)
                    reply = self.framing.receive_counted(expected, timeout=_SHORT, code=code)
                    self.framing.expect_ack("reply", timeout=_SHORT, code=code)
                    traced.text = f"ACK v{reply[0] >> 4}.{reply[0] & 0xF}, " \
                                  f"{len(reply) - 1} commands"
                break
            except CountMismatch as mismatch:
                # A frame link guessed the list length wrong: ask again with the real one.
                expected = mismatch.count
                self._try_resync()
        else:
            raise self._protocol(code, "reply", "inconsistent command list length")
        self.commands = CommandSet.from_get(reply[0], reply[1:])
        return self.commands

    def get_id(self) -> int:
        code = Command.GET_ID
        with self._command(code) as traced:
            self.framing.request(code, timeout=_SHORT)
            reply = self.framing.receive_counted(1, timeout=_SHORT, code=code)
            self.framing.expect_ack("reply", timeout=_SHORT, code=code)
            traced.text = f"ACK PID 0x{reply.hex().upper()}"
        if len(reply) < 2:
            raise self._protocol(code, "reply", "a product ID shorter than 2 bytes", reply)
        # AN3155 §3.3: STM32 PIDs are 2 bytes; extra bytes (other ROMs) are ignored.
        self.pid = int.from_bytes(reply[:2], "big") & 0xFFF
        return self.pid

    # ------------------------------------------------------------------ memory

    def read_memory(self, address: int, length: int) -> bytes:
        """AN3155 §3.4: read 1…256 bytes."""
        if not 1 <= length <= MAX_BLOCK:
            raise ValueError("Read Memory reads 1 to 256 bytes")
        code = Command.READ
        with self._command(code, address=address, size=length):
            self.framing.request(code, (Block.word("address", address),
                                        Block.value("length", bytes([length - 1]))),
                                 timeout=_SHORT)
            data = self.framing.receive(length, timeout=_SHORT + length *
                                        self.framing.byte_time * 2, code=code)
            if self.framing.read_data_acked:
                self.framing.expect_ack("data", timeout=_SHORT, code=code)
        return data

    def read_blocks(self, blocks: Sequence[tuple[int, int]],
                    got: Callable[[int, bytes], None]) -> None:
        """Read Memory for every ``(address, length)`` in order, as :meth:`read_memory` each.

        ``got(index, data)`` is told of every block's bytes: of all but the last
        while the ROM is busy with the next read (after its request is sent, before
        its answer is awaited), so between a block's last byte and the next
        command there is only the write of that command, built beforehand.
        """
        for _, length in blocks:
            if not 1 <= length <= MAX_BLOCK:
                raise ValueError("Read Memory reads 1 to 256 bytes")
        if not blocks:
            return
        code = Command.READ
        pending: list[tuple[int, bytes]] = []
        upcoming = [self._read_request(code, *blocks[0])]
        raised: list[BaseException] = []

        def busy(index: int) -> None:
            if index + 1 < len(blocks):
                upcoming.append(self._read_request(code, *blocks[index + 1]))
            if pending:
                try:
                    got(*pending.pop())
                except BaseException as error:  # raised once this read's answer is in
                    raised.append(error)

        for index, (address, length) in enumerate(blocks):
            prepared = upcoming.pop()
            started = time.monotonic() if self.trace.commands else 0.0
            try:
                self.framing.send(prepared, timeout=_SHORT, busy=partial(busy, index))
                data = self.framing.receive(length, timeout=_SHORT + length *
                                            self.framing.byte_time * 2, code=code)
                if self.framing.read_data_acked:
                    self.framing.expect_ack("data", timeout=_SHORT, code=code)
            except (Nack, BadReply, NoReply) as failure:
                raise self._failed(code, failure, address, length, started) from failure
            if self.trace.commands:
                self._traced(code, address, length, "ACK", started)
            if raised:
                raise raised[0]
            pending.append((index, data))
        if pending:
            got(*pending.pop())

    def _read_request(self, code: int, address: int, length: int) -> Prepared:
        return self.framing.prepare(code, (Block.word("address", address),
                                           Block.value("length", bytes([length - 1]))))

    def write_blocks(self, blocks: Sequence[tuple[int, bytes]],
                     wrote: Callable[[int], None]) -> None:
        """Write Memory for every ``(address, data)`` in order, as :meth:`write_memory` each.

        ``wrote(index)`` is told of every block once its ACK is in: of all but the
        last while the ROM programs the next (after its data is sent, before its ACK
        is awaited), and the next block's frames are built there too, so between an
        ACK and the next command there is only the write of that command.
        """
        for address, data in blocks:
            self._check_write(address, data)
        if not blocks:
            return
        code = self._require("write")
        done: list[int] = []
        upcoming = [self._write_request(code, *blocks[0])]

        def busy(index: int) -> None:
            if index + 1 < len(blocks):
                upcoming.append(self._write_request(code, *blocks[index + 1]))
            if done:
                wrote(done.pop())

        for index, (address, data) in enumerate(blocks):
            prepared, timeout = upcoming.pop()
            started = time.monotonic() if self.trace.commands else 0.0
            try:
                self.framing.send(prepared, timeout=timeout, busy=partial(busy, index))
            except (Nack, BadReply, NoReply) as failure:
                raise self._failed(code, failure, address, len(data), started) from failure
            if self.trace.commands:
                self._traced(code, address, len(data) + (-len(data) % 4), "ACK", started)
            done.append(index)
        if done:
            wrote(done.pop())

    def _check_write(self, address: int, data: bytes) -> None:
        if address % 4:
            raise WriteError(f"Write Memory needs a 4-byte aligned address, not 0x{address:08X}",
                             address=address, transport=self.link, device=self.device,
                             hint="align the image (the plan pads to the write unit)")
        if not 1 <= len(data) + (-len(data) % 4) <= MAX_BLOCK:
            raise ValueError("Write Memory writes 1 to 256 bytes")

    def _write_request(self, code: int, address: int, data: bytes) -> tuple[Prepared, float]:
        """The prepared Write Memory of ``data`` (padded with 0xFF), and its timeout."""
        padded = data + b"\xff" * (-len(data) % 4)
        program = self.chip.timing.program_seconds(len(padded), self.chip.flash.write_unit)
        return (self.framing.prepare(code, (Block.word("address", address),
                                            Block.payload(padded))),
                _SHORT + 10 * program)

    def write_memory(self, address: int, data: bytes) -> None:
        """AN3155 §3.6: program 1…256 bytes at a 4-byte aligned address (padded with 0xFF)."""
        self._check_write(address, data)
        code = self._require("write")
        prepared, timeout = self._write_request(code, address, data)
        with self._command(code, address=address, size=len(data) + (-len(data) % 4)):
            self.framing.send(prepared, timeout=timeout)

    def go(self, address: int) -> None:
        """AN3155 §3.5: jump to the vector table at ``address`` (MSP, then reset handler)."""
        with self._command(Command.GO, address=address):
            self.framing.request(Command.GO, (Block.word("address", address),),
                                 timeout=_SHORT)

    def get_checksum(self, address: int, length: int) -> int:
        """AN3155 §3.14 (as stm32flash drives it): the STM32 CRC-32 of ``length`` bytes."""
        code = Command.GET_CHECKSUM
        if code not in self.commands:
            raise Refused(f"the bootloader of {self.device} has no Get Checksum",
                          command=command_name(code), transport=self.link,
                          device=self.device, hint="verify by read-back")
        with self._command(code, address=address, size=length) as traced:
            self.framing.request(code, (Block.word("address", address),
                                        Block.word("length", length)),
                                 timeout=_SHORT)
            self.framing.expect_ack("checksum", timeout=_SHORT + length / 1e6, code=code)
            reply = self.framing.receive(5, timeout=_SHORT, code=code)
            traced.text = f"ACK CRC 0x{reply[:4].hex().upper()}"
        if reduce(xor, reply, 0) != 0:
            raise self._protocol(code, "reply", "a CRC with a bad check byte", reply,
                                 hint="the link corrupts data; lower the speed")
        return int.from_bytes(reply[:4], "big")

    # ------------------------------------------------------------------ erase

    def _page_timeout(self, pages: Sequence[int]) -> float:
        blocks = self.chip.flash.blocks
        typical = sum(self.chip.timing.erase_seconds(blocks[p].size) if p < len(blocks)
                      else 0.1 for p in pages)
        return _SHORT + 5 * typical + 0.1 * len(pages)

    @property
    def mass_erase_timeout(self) -> float:
        # stm32flash waits 35 s; large parts are allowed five times their typical figure.
        return max(35.0, 5 * self.chip.timing.mass_erase_ms / 1000)

    def erase_pages(self, pages: Sequence[int],
                    erased: Callable[[int, int], None] | None = None) -> None:
        """Erase pages (or sectors) by number, in as few commands as the ROM takes.

        ``erased(done, total)`` is told after each command (stm32flash, too, sends
        one command per list the ROM accepts: 255 legacy pages, 511 extended).
        """
        code = self._require("erase")
        legacy = code == Command.ERASE
        limit = _LEGACY_ERASE_PAGES if legacy else _EXTENDED_ERASE_PAGES
        for start in range(0, len(pages), limit):
            chunk = list(pages[start:start + limit])
            first = chunk[0]
            address = self.chip.flash.blocks[first].address \
                if first < len(self.chip.flash.blocks) else None
            if legacy and max(chunk) > 0xFF:
                raise EraseError(f"{command_name(code)} numbers pages with one byte; page "
                                 f"{max(chunk)} of {self.chip.part} is out of its reach",
                                 address=address, transport=self.link, device=self.device,
                                 hint="erase the whole flash (erase: {scope: mass})")
            block = Block.items("pages", chunk, 1 if legacy else 2)
            with self._command(code, address=address) as traced:
                self.framing.request(code, (block,), timeout=self._page_timeout(chunk))
                traced.text = f"ACK ({len(chunk)} page{'s' if len(chunk) != 1 else ''})"
            if erased is not None:
                erased(start + len(chunk), len(pages))

    def mass_erase(self, bank: int | None = None) -> None:
        """Global erase (0x43 ``FF 00`` / 0x44 ``FFFF``), or one bank with 0x44 ``FFFE/FFFD``."""
        code = self._require("erase")
        if code == Command.ERASE:
            if bank is not None:
                raise ValueError("legacy Erase has no bank erase")
            special = Block.value("mass erase", b"\xff")
        else:
            special = Block.value("mass erase", {None: b"\xff\xff", 1: b"\xff\xfe",
                                                 2: b"\xff\xfd"}[bank])
        with self._command(code, address=self.chip.flash.base):
            self.framing.request(code, (special,), timeout=self.mass_erase_timeout)

    # ------------------------------------------------------------------ protection

    def write_protect(self, sectors: Sequence[int]) -> None:
        """AN3155 §3.9: protect these sectors (the new set replaces the old); chip resets."""
        code = self._require("write_protect")
        with self._command(code):
            self.framing.request(code, (Block.items("sectors", sectors, 1),),
                                 timeout=2 * _SHORT)
        self.restart()

    def _two_ack(self, function: str, timeout: float, settle: float = 0.1) -> None:
        code = self._require(function)
        with self._command(code):
            self.framing.request(code, timeout=_SHORT)
            self.framing.expect_ack("completion", timeout=timeout, code=code)
        # AN3155 §2 (device reset): the ROM reboots after the second ACK.
        self.restart(settle)

    def write_unprotect(self) -> None:
        self._two_ack("write_unprotect", 2 * _SHORT)

    def readout_protect(self) -> None:
        self._two_ack("readout_protect", 2 * _SHORT)

    def readout_unprotect(self) -> None:
        """Remove readout protection; the chip mass-erases and resets (AN3155 §3.12)."""
        # ST's ROM sends the second ACK before it erases: let the erase finish first.
        self._two_ack("readout_unprotect", self.mass_erase_timeout,
                      settle=0.1 + 1.5 * self.chip.timing.mass_erase_ms / 1000)
