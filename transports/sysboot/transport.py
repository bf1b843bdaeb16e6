"""The transport contract on top of the bootloader engine, shared by USART, I2C and CAN.

:class:`BootloaderSession` turns the runner's requests (erase these blocks,
write this image, read, checksum, reset, option bytes) into bootloader
commands: 256-byte chunks aligned to 256-byte boundaries, page lists cut to
what one Erase takes, Get Checksum where the ROM lists it, and a clean
reconnect after the commands that make the chip reset itself.

A hardware reset pulses NRST with BOOT0 low where the link has the lines;
otherwise, and on empty-check parts (which re-enter the ROM after a plain
reset until their option bytes reload), the chip is left with Go to the
vector table at the start of flash.

Writes skip a 256-byte chunk that holds only the erased value when *this
session* erased the pages under it and has not programmed that chunk since:
programming it would change nothing. Nothing else is ever skipped.

Link subclasses supply the :class:`~transports.sysboot.framing.Framing`
(:meth:`BootloaderSession.open_framing`) and the class-level contract
(``kind``, ``options_schema``, ``speed_model``, ``resource_key``, ``open``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from transports.base import (
    Capability,
    Checksum,
    ChipIdentity,
    LinkRequest,
    OptionBytes,
    OptionBytesChange,
    Progress,
    ResetMode,
    no_progress,
)
from transports.chips import Chip, FlashBlock, rom_bootloader
from transports.errors import (
    ConnectError,
    EraseError,
    LinkLost,
    ProtocolError,
    ReadProtected,
    Refused,
)
from transports.sysboot.commands import Command
from transports.sysboot.engine import MAX_BLOCK, BootloaderEngine
from transports.sysboot.framing import Framing

__all__ = ["BASE_CAPABILITIES", "ROM_CHECKSUM_BYTES_PER_S", "BootloaderSession"]

#: Estimate of a ROM's Get Checksum throughput: the command moves 14 bytes whatever
#: the length, the rest is the ROM feeding flash words to the CRC unit.
ROM_CHECKSUM_BYTES_PER_S = 2_000_000.0

#: Flash size and UID closer than this are read in one Read Memory (F0/F1/F3: 20 to 34 bytes);
#: farther apart, the bytes between are left unread.
_SPAN_READ = 40

#: What every bootloader link can do, whatever the ROM.
BASE_CAPABILITIES = frozenset({
    Capability.ERASE_PAGES, Capability.ERASE_MASS, Capability.WRITE, Capability.READ,
    Capability.GO, Capability.OPTION_BYTES, Capability.READ_UNPROTECT,
    Capability.WRITE_UNPROTECT, Capability.UID,
})


class BootloaderSession:
    """One session with one chip's ROM bootloader; subclasses bring the link."""

    #: What this link offers whatever the ROM, before :meth:`link_capabilities` trims it.
    capabilities_base: ClassVar[frozenset[Capability]] = BASE_CAPABILITIES
    #: The AN2606 interface name of this link (``usart``, ``i2c``, ``can``).
    interface: ClassVar[str] = ""
    #: Write rules, checked when a manifest is validated (before anything is erased):
    #: AN3155 §3.6 (and AN4221, AN3154 for I2C and CAN): Write Memory starts at a
    #: 4-byte aligned address; the length is padded to a multiple of 4 with 0xFF.
    write_alignment: ClassVar[int] = 4

    def __init__(self, request: LinkRequest) -> None:
        self.request = request
        self.chip = request.chip
        self.capabilities: frozenset[Capability] = self.link_capabilities(request.options)
        self._framing: Framing | None = None
        self._engine: BootloaderEngine | None = None
        self._erased: set[int] = set()
        self._programmed: set[int] = set()

    # ------------------------------------------------------------------ class side

    @classmethod
    def link_capabilities(cls, options: Mapping[str, Any]) -> frozenset[Capability]:
        """What the link offers with these options, whatever the ROM (wiring, lines)."""
        return cls.capabilities_base

    @classmethod
    def planned_capabilities(cls, options: Mapping[str, Any],
                             chip: Chip) -> frozenset[Capability]:
        """The link's own set, plus Get Checksum where the chip's ROM lists it."""
        offered = cls.link_capabilities(options)
        if rom_bootloader(chip, cls.interface).checksum:
            offered |= {Capability.CHECKSUM}
        return offered

    # ------------------------------------------------------------------ link

    def open_framing(self) -> Framing:
        """Open the physical (or simulated) link; the subclass's one job."""
        raise LinkLost(f"{type(self).__name__} cannot open a link", transport=self.request.link,
                       device=self.request.device)

    @property
    def engine(self) -> BootloaderEngine:
        if self._engine is None:
            raise LinkLost(f"session with {self.request.device} is not connected",
                           transport=self.request.link, device=self.request.device,
                           hint="connect first (or reconnect after a reset)")
        return self._engine

    def connect(self) -> None:
        self.close()
        offered = self.chip.bootloader.interfaces
        if offered and self.interface and self.interface not in offered:
            raise ConnectError(f"the ROM bootloader of {self.chip.part} does not listen on "
                               f"{self.interface.upper()} (AN2606: "
                               f"{', '.join(sorted(offered))})",
                               transport=self.request.link, device=self.request.device,
                               hint="reach this chip over one of those interfaces")
        framing = self.open_framing()
        framing.trace = self.request.trace
        self._framing = framing
        engine = BootloaderEngine(framing, self.chip, link=self.request.link,
                                  device=self.request.device, trace=self.request.trace)
        try:
            engine.start()
        except BaseException:
            self.close()
            raise
        self._engine = engine
        # The Get reply is the truth: the chip database may know an older or newer ROM.
        extra = {Capability.CHECKSUM} if Command.GET_CHECKSUM in engine.commands else set()
        self.capabilities = self.link_capabilities(self.request.options) | extra

    def close(self) -> None:
        framing, self._framing, self._engine = self._framing, None, None
        if framing is not None:
            framing.close()

    # ------------------------------------------------------------------ identity

    def identify(self) -> ChipIdentity:
        engine = self.engine
        uid = ""
        flash_size: int | None = None
        rdp = 0
        # One Read Memory over both where they sit close (an F1's 20 bytes), else one each;
        # an F401 or L05x ROM NACKs short reads of these words but answers a read of the
        # whole device-information page from its base (stm32loader PR #25, #61).
        readers = [self._span_reader(engine), engine.read_memory, self._paged_reader(engine)]
        for read in (reader for reader in readers if reader is not None):
            try:
                flash_size, uid = self._device_words(read)
                break
            except ReadProtected:
                rdp = 1
                break
            except (ProtocolError, Refused):
                continue  # some ROMs refuse these words altogether: identity stays partial
        details = {"bootloader_commands": " ".join(f"{c:02X}" for c in
                                                   sorted(engine.commands.codes))}
        if engine.commands.unknown:
            details["bootloader_unknown_commands"] = " ".join(
                f"{c:02X}" for c in engine.commands.unknown)
        return ChipIdentity(dev_id=engine.pid or 0, uid=uid, flash_size=flash_size,
                            rdp_level=rdp, bootloader_version=engine.commands.version_text,
                            probe=self.framing_name, details=details)

    def _device_words(self, read: Callable[[int, int], bytes]) -> tuple[int, str]:
        """The flash-size register (in bytes) and the UID (hex), read through ``read``."""
        flash_size = int.from_bytes(read(self.chip.flash_size_address, 2), "little") * 1024
        offsets = self.chip.uid_offsets
        if offsets == (0, 4, 8):
            return flash_size, read(self.chip.uid_address, 12).hex()
        # L0/L1 scatter the UID words: read each one.
        return flash_size, b"".join(read(self.chip.uid_address + off, 4)
                                    for off in offsets).hex()

    def _span_reader(self, engine: BootloaderEngine) -> Callable[[int, int], bytes] | None:
        """Reads served from one Read Memory over the flash size and the UID (None: far apart)."""
        chip = self.chip
        if chip.uid_offsets != (0, 4, 8):
            return None
        start = min(chip.flash_size_address, chip.uid_address)
        end = max(chip.flash_size_address + 2, chip.uid_address + 12)
        if end - start > _SPAN_READ:
            return None
        span: list[bytes] = []

        def read(address: int, length: int) -> bytes:
            if not span:
                span.append(engine.read_memory(start, end - start))
            return span[0][address - start:address - start + length]
        return read

    @staticmethod
    def _paged_reader(engine: BootloaderEngine) -> Callable[[int, int], bytes]:
        """Reads served from whole 256-byte pages, each read once from its base."""
        pages: dict[int, bytes] = {}

        def read(address: int, length: int) -> bytes:
            out = b""
            while len(out) < length:
                base = (address + len(out)) & ~0xFF
                if base not in pages:
                    pages[base] = engine.read_memory(base, 0x100)
                start = address + len(out) - base
                out += pages[base][start:start + length - len(out)]
            return out
        return read

    @property
    def framing_name(self) -> str:
        return self._framing.name if self._framing is not None else self.request.link

    # ------------------------------------------------------------------ erase

    def erase(self, blocks: Sequence[FlashBlock], progress: Progress = no_progress) -> None:
        engine = self.engine
        geometry = self.chip.flash
        every = list(range(len(geometry.blocks)))
        if not blocks:
            self._mass_erase(every, progress)
            return
        indexes = sorted({block.index for block in blocks})
        if indexes == every:
            # Every page: one global erase (stm32flash does the same when the whole flash
            # is written); an F103's 128 pages one by one take ~2.6 s, a mass erase ~40 ms.
            self._mass_erase(every, progress)
            return
        bank = self._whole_bank(indexes)
        if bank is not None and engine.commands.pick("erase") != Command.ERASE:
            try:
                engine.mass_erase(bank)
                progress(1, 1)
            except EraseError:
                # AN3155 §3.8: bank codes are optional; the pages themselves always work.
                self._erase_pages(indexes, progress)
        else:
            self._erase_pages(indexes, progress)
        self._note_erased(indexes)

    def _whole_bank(self, indexes: list[int]) -> int | None:
        geometry = self.chip.flash
        if geometry.banks < 2 or "no-mass-erase" in self.chip.bootloader.flags:
            return None
        for bank in (1, 2):
            members = [b.index for b in geometry.blocks if b.bank == bank]
            if members and indexes == members:
                return bank
        return None

    def _erase_pages(self, indexes: list[int], progress: Progress) -> None:
        # As few commands as the ROM takes: each costs a round trip and the host's
        # turnaround between two erases, and the pages erased are the same.
        self.engine.erase_pages(indexes, progress)

    def _mass_erase(self, every: list[int], progress: Progress) -> None:
        if "no-mass-erase" in self.chip.bootloader.flags:
            # AN2606: these ROMs NACK the global erase code; erase page by page.
            self._erase_pages(every, progress)
        else:
            try:
                self.engine.mass_erase()
            except (EraseError, ProtocolError):
                # Some ROMs NACK the global code without being flagged; pages still work.
                self._erase_pages(every, progress)
            progress(1, 1)
        self._note_erased(every)

    def _note_erased(self, indexes: Sequence[int]) -> None:
        blocks = self.chip.flash.blocks
        self._erased.update(indexes)
        for index in indexes:
            block = blocks[index]
            self._programmed -= set(range(block.address, block.end, MAX_BLOCK))

    # ------------------------------------------------------------------ write / read

    def _chunks(self, address: int, length: int) -> list[tuple[int, int]]:
        """(address, size) pieces of at most 256 bytes that end on 256-byte boundaries."""
        pieces = []
        end = address + length
        while address < end:
            size = min(MAX_BLOCK - address % MAX_BLOCK, end - address)
            pieces.append((address, size))
            address += size
        return pieces

    def _skippable(self, address: int, chunk: bytes) -> bool:
        geometry = self.chip.flash
        if chunk.count(geometry.erased) != len(chunk) or not geometry.contains(address,
                                                                               len(chunk)):
            return False
        if address - address % MAX_BLOCK in self._programmed:
            return False
        return all(block.index in self._erased
                   for block in geometry.blocks_covering(address, len(chunk)))

    def write(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        # Progress is reported per chunk written, while the ROM programs the next one
        # (BootloaderEngine.write_blocks); skipped chunks count with the chunk before.
        blocks: list[tuple[int, bytes]] = []
        reach: list[int] = []   # bytes of ``data`` done once blocks[i] is written
        skipped = 0
        for at, size in self._chunks(address, len(data)):
            chunk = data[at - address:at - address + size]
            if self._skippable(at, chunk):
                if reach:
                    reach[-1] = at + size - address
                else:
                    skipped = at + size - address
                continue
            blocks.append((at, chunk))
            reach.append(at + size - address)
        if skipped:
            progress(skipped, len(data))
        # Counted as programmed before they are sent: a write that fails half way may
        # have programmed any of them, so none is skipped as still erased later.
        self._programmed.update(at - at % MAX_BLOCK for at, _ in blocks)
        self.engine.write_blocks(blocks, lambda index: progress(reach[index], len(data)))

    def read(self, address: int, length: int, progress: Progress = no_progress) -> bytes:
        out = bytearray()

        def got(_index: int, data: bytes) -> None:
            out.extend(data)
            progress(len(out), length)

        self.engine.read_blocks(self._chunks(address, length), got)
        return bytes(out)

    def checksum(self, address: int, length: int) -> Checksum:
        """Get Checksum over ``length`` rounded up to whole words (padding read as stored)."""
        if Capability.CHECKSUM not in self.capabilities or address % 4:
            raise Refused(f"on-target checksum is not available for 0x{address:08X} on "
                          f"{self.request.device}", command="checksum",
                          transport=self.request.link, device=self.request.device,
                          hint="verify by read-back (verify: {method: readback})")
        words = length + (-length % 4)
        return Checksum(algorithm="stm32-crc32", value=self.engine.get_checksum(address, words))

    # ------------------------------------------------------------------ reset

    def reset(self, mode: ResetMode) -> None:
        engine = self.engine
        if mode is ResetMode.HALT:
            raise Refused("a bootloader link cannot leave the chip halted",
                          command="reset", transport=self.request.link,
                          device=self.request.device, hint="use reset mode go or hardware")
        # Empty-check parts (AN2606; stm32flash F_OBLL/F_PEMPTY) boot the ROM again after
        # an NRST pulse until their option bytes reload: Go reaches the application anyway.
        empty_check = bool({"obl-launch", "pempty"} & self.chip.bootloader.flags)
        if mode is ResetMode.HARDWARE and not empty_check and engine.framing.leave():
            self.close()
            return
        # AN3155 §3.5: Go to the vector table at the start of flash runs the application.
        engine.go(self.chip.flash.base)
        self.close()

    # ------------------------------------------------------------------ option bytes

    def _option_area(self) -> tuple[int, int]:
        area = self.chip.bootloader.option_bytes
        ob = self.chip.option_bytes
        if area is not None and area[0] == ob.address:
            return ob.address, min(ob.size, area[1] - area[0])
        return ob.address, ob.size

    def read_option_bytes(self) -> OptionBytes:
        address, size = self._option_area()
        try:
            raw = self.read(address, size)
        except ReadProtected:
            # The ROM reads nothing under RDP level 1; the level itself is known.
            return OptionBytes(raw=b"", rdp_level=1)
        return OptionBytes(raw=raw, rdp_level=self.chip.option_bytes.level_of(raw))

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        engine = self.engine
        link, device = self.request.link, self.request.device
        if change.fields:
            raise Refused("the system bootloader changes only readout protection here",
                          command="option-bytes", transport=link, device=device,
                          hint="set other option bytes with an ST-Link")
        if change.rdp_level == 0:
            engine.readout_unprotect()
            self._note_erased(range(len(self.chip.flash.blocks)))
        elif change.rdp_level == 1:
            engine.readout_protect()
        elif change.rdp_level == 2:
            self._rdp_level2(change)

    def _rdp_level2(self, change: OptionBytesChange) -> None:
        link, device = self.request.link, self.request.device
        ob = self.chip.option_bytes
        if not change.confirmed_irreversible:
            raise Refused("RDP level 2 is irreversible and was not confirmed",
                          command="option-bytes", transport=link, device=device,
                          hint="add confirm: irreversible to the step")
        if not ob.has_level2:
            raise Refused(f"{self.chip.part} has no RDP level 2", command="option-bytes",
                          transport=link, device=device)
        address, size = self._option_area()
        image = bytearray(self.read(address, size))
        image[ob.rdp_offset] = ob.rdp_level2  # F2/F4/F7/H7: byte 0 is USER/BOR, kept as read
        if self.chip.controller in ("f0", "f1", "f1xl") and size >= ob.rdp_offset + 2:
            image[ob.rdp_offset + 1] = ob.rdp_level2 ^ 0xFF  # RM0008 §2.5: byte, then complement
        image += b"\xff" * (-len(image) % 4)
        self.engine.write_memory(address, bytes(image))
        # Level 2 disables the ROM bootloader for good: there is nothing to reconnect to.
        self.close()
