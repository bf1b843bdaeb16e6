"""What every flash-controller driver shares: waiting on BSY, error bits, write paths.

A driver programs through the debug port only (no code runs on the target).
Two write paths exist:

* ``fast`` — set PG once and stream whole blocks with one memory command per
  MEM-AP window, checking the status register once per block. It relies on
  the flash interface holding the bus while a program operation is busy,
  which genuine STM32 parts do (pystlink writes 1 KiB per command this way).
* ``safe`` — one program unit per command, then poll BSY before the next.
  Clones (APM32F103 loses a write issued during BSY, per the embassy project)
  and unknown parts take this path.

A third path hands the data to the RAM flash loader
(:mod:`transports.stlink.loaders`): the driver only describes the spans
(:meth:`FlashDriver.loader_spans`: which control-register setting, status
register and program unit), the loader programs them. Whichever path runs,
the runner verifies afterwards.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import ClassVar

from transports.base import OptionBytes, OptionBytesChange, Progress, no_progress
from transports.chips import Chip, FlashBlock
from transports.errors import EraseError, FlashError, Refused, WriteError
from transports.stlink.loaders.ram import LoaderSpan, RamLoader
from transports.stlink.protocol import MemoryFault, StLink

__all__ = ["KEYS", "OPTION_KEYS", "SECTOR_HINT", "FlashDriver", "check_rdp_change"]

#: KEYR unlock sequence of every KEYR/CR controller (RM0008 §3.3.1, RM0090 §3.5.1).
KEYS = (0x45670123, 0xCDEF89AB)
#: OPTKEYR sequence of F2/F4/F7, L4 and its kin, H7, H5.
OPTION_KEYS = (0x08192A3B, 0x4C5D6E7F)
#: What a failed operation on a flash-word controller (H7, H5) suggests.
SECTOR_HINT = "erase the sector first, or check write protection"


def check_rdp_change(chip: Chip, change: OptionBytesChange) -> None:
    """Refuse what the silicon cannot do or the manifest did not confirm."""
    if change.rdp_level == 2:
        if not chip.option_bytes.has_level2:
            raise Refused(f"{chip.part} has no RDP level 2", command="option-bytes",
                          hint="use rdp: 1 for readout protection on this part")
        if not change.confirmed_irreversible:
            raise Refused("RDP level 2 is irreversible and was not confirmed",
                          command="option-bytes",
                          hint="add confirm: irreversible to the option-bytes step")


class FlashDriver(ABC):
    """Base of the per-family drivers. Subclasses fill in registers and sequences."""

    #: Bytes programmed by one program operation (F1 half-word, F4/L0 word); 0 takes the
    #: chip database's write unit (L4 double word, U5/H5 quad word, H7 flash word).
    unit = 0
    #: SR bits that mean "busy" and "failed", and the end-of-operation flag.
    busy_mask = 0
    error_mask = 0
    eop_mask = 0
    #: SR error bit → what an error message calls it.
    error_names: ClassVar[dict[int, str]] = {}
    #: The hint a failed operation gives; None picks one from the flags set.
    error_hint: ClassVar[str | None] = None

    def __init__(self, link: StLink, chip: Chip, *, fast: bool,
                 voltage: float | None = None) -> None:
        self.link = link
        self.chip = chip
        self.fast = fast
        self.voltage = voltage
        if chip.flash_controller_address is None:
            raise FlashError(f"the chip database has no flash controller address for "
                             f"{chip.part}", hint="report this part; it cannot be flashed yet")
        self.base = chip.flash_controller_address
        if not self.unit:
            self.unit = chip.flash.write_unit
        #: the RAM loader writes go through, when the session chose that path
        self.loader: RamLoader | None = None

    # -- subclass interface -----------------------------------------------------------------

    @abstractmethod
    def unlock(self) -> None:
        ...

    @abstractmethod
    def lock(self) -> None:
        ...

    @abstractmethod
    def erase_block(self, block: FlashBlock) -> None:
        ...

    @abstractmethod
    def mass_erase(self) -> None:
        ...

    @abstractmethod
    def program(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        ...

    @abstractmethod
    def read_option_bytes(self) -> OptionBytes:
        ...

    def loader_spans(self, address: int, length: int) -> list[LoaderSpan] | None:
        """How the RAM loader programs ``[address, address+length)``; None: it cannot."""
        return None

    def span(self, address: int, length: int, *, status: int, setup: tuple[tuple[int, int], ...],
             teardown: tuple[tuple[int, int], ...], clear: int | None = None) -> LoaderSpan:
        """A :class:`LoaderSpan` with this driver's unit, busy and error bits."""
        return LoaderSpan(address=address, length=length, status=status,
                          clear=status if clear is None else clear, unit=self.unit,
                          busy_mask=self.busy_mask, error_mask=self.error_mask, setup=setup,
                          teardown=teardown, error_names=self.error_names)

    @abstractmethod
    def write_option_bytes(self, change: OptionBytesChange) -> None:
        ...

    # -- shared machinery -----------------------------------------------------------------

    def erase(self, blocks: Sequence[FlashBlock], progress: Progress = no_progress) -> None:
        self.unlock()
        try:
            if not blocks or len({b.index for b in blocks}) == len(self.chip.flash.blocks):
                # The image covers the whole flash: one mass erase beats N page erases.
                self.mass_erase()
                progress(1, 1)
                return
            rest = list(blocks)
            if self.chip.flash.banks > 1:
                for bank in range(1, self.chip.flash.banks + 1):
                    whole = [b for b in self.chip.flash.blocks if b.bank == bank]
                    wanted = {b.index for b in rest if b.bank == bank}
                    if wanted == {b.index for b in whole} and self.erase_bank(bank):
                        rest = [b for b in rest if b.bank != bank]
            if rest:
                self.erase_blocks(rest, progress)
            progress(len(blocks), len(blocks))
        finally:
            self.lock()

    def erase_bank(self, bank: int) -> bool:
        """Erase one whole bank in one operation; False where the controller cannot."""
        return False

    def erase_blocks(self, blocks: Sequence[FlashBlock], progress: Progress) -> None:
        """Erase units one by one (drivers override to batch register writes)."""
        for done, block in enumerate(blocks, 1):
            self.erase_block(block)
            progress(done, len(blocks))

    def write(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        if address % self.unit or len(data) % self.unit:
            raise WriteError(f"write of {len(data)} bytes at 0x{address:08X} is not aligned to "
                             f"the {self.unit}-byte program unit", address=address,
                             hint="the plan pads images to the write unit; report this")
        self.unlock()
        try:
            spans = None if self.loader is None else self.loader_spans(address, len(data))
            if self.loader is not None and spans:
                self.loader.program(spans, data, progress)
            else:
                self.program(address, data, progress)
        finally:
            self.lock()

    def wait_ready(self, sr_address: int, *, expected_s: float, what: str, address: int,
                   error: type[FlashError], busy_mask: int | None = None) -> int:
        """Poll SR until not busy; sleep the expected time first, then in small steps."""
        busy = self.busy_mask if busy_mask is None else busy_mask
        timebase = self.link.timebase
        deadline = timebase.monotonic() + max(expected_s * 10, 0.5)
        if expected_s > 0.002:
            timebase.sleep(expected_s)
        step = max(expected_s / 8, 0.0002)
        while True:
            status = self.link.read_word(sr_address)
            if not status & busy:
                return status
            if timebase.monotonic() > deadline:
                raise error(f"{what} at 0x{address:08X} did not finish in time",
                            address=address, hint="power-cycle the target and try again")
            timebase.sleep(step)

    def check_status(self, status: int, sr_address: int, *, what: str, address: int,
                     error: type[FlashError], clear_address: int | None = None) -> None:
        """Raise ``error`` naming the SR error bits set, after clearing them.

        The bits are cleared by writing them back to SR, or to ``clear_address``
        on controllers with a separate clear register (H7 CCR, H5 NSCCR).
        """
        bad = status & self.error_mask
        if not bad:
            return
        self.link.write_word(sr_address if clear_address is None else clear_address, bad)
        names = self.error_names
        flags = ", ".join(name for bit, name in names.items() if bad & bit) or f"0x{bad:X}"
        hint = self.error_hint
        if hint is None:
            hint = ("the area is write-protected: change the option bytes"
                    if any(n.startswith("WRP") for bit, n in names.items() if bad & bit)
                    else "erase the area before writing, or check the image's alignment")
        raise error(f"{what} at 0x{address:08X} failed: {flags}", address=address, hint=hint)

    def settle(self, sr_address: int, *, expected_s: float, what: str, address: int,
               error: type[FlashError], clear_address: int | None = None) -> None:
        """Wait for the running operation to end, then raise on its error flags."""
        status = self.wait_ready(sr_address, expected_s=expected_s, what=what, address=address,
                                 error=error)
        self.check_status(status, sr_address, what=what, address=address, error=error,
                          clear_address=clear_address)

    def unlock_control(self, cr_address: int, lock_bit: int, keyr_address: int, *,
                       name: str = "the flash controller", address: int | None = None
                       ) -> None:
        """Clear CR's LOCK with the key sequence when set; fail if it stays set."""
        if not self.link.read_word(cr_address) & lock_bit:
            return
        self.write_keys(keyr_address, KEYS)
        if self.link.read_word(cr_address) & lock_bit:
            raise WriteError(f"{name} stayed locked after the key sequence",
                             address=self.base if address is None else address,
                             hint="reset the target and try again")

    def run_operation(self, cr: int, *, cr_address: int, start_bit: int, sr_address: int,
                      clear_address: int, expected_s: float, what: str, address: int) -> None:
        """One erase: clear the flags, write CR, set START, wait, check, clear CR.

        ``clear_address`` is SR on controllers whose flags clear in place and
        the clear register on the others (H7 CCR, H5 NSCCR).
        """
        self.link.write_word(clear_address, self.error_mask | self.eop_mask)
        self.link.write_word(cr_address, cr)
        self.link.write_word(cr_address, cr | start_bit)
        self.settle(sr_address, expected_s=expected_s, what=what, address=address,
                    error=EraseError, clear_address=clear_address)
        self.link.write_word(cr_address, 0)

    def bank_start(self, bank: int) -> int:
        """The address of the first erase unit of ``bank``."""
        return next(b.address for b in self.chip.flash.blocks if b.bank == bank)

    @staticmethod
    def windows(address: int, length: int, step: int) -> Iterator[tuple[int, int, int]]:
        """Split ``length`` bytes at ``address`` into pieces that do not cross a
        ``step``-aligned boundary: ``(offset, address, size)`` each."""
        offset = 0
        while offset < length:
            at = address + offset
            size = min(step - at % step, length - offset)
            yield offset, at, size
            offset += size

    def write_keys(self, register: int, keys: tuple[int, int]) -> None:
        """Write an unlock key pair; a refused key means the controller is blocked."""
        try:
            for key in keys:
                self.link.write_word(register, key)
        except MemoryFault as error:
            # RM0008 §3.3.1: after a wrong key sequence the controller stays locked
            # until the next reset, and every further key write is a bus error.
            raise WriteError("the flash controller refuses its keys: it is locked until "
                             "the next reset", address=register,
                             hint="reset the target (reset: {}) and run again") from error

    def blocks_by_bank(self, address: int, length: int) -> list[tuple[int, int]]:
        """Split a span at the bank boundary (registers differ per bank on some parts)."""
        bank2 = self.chip.flash.bank2_base
        if bank2 is None or not address < bank2 < address + length:
            return [(address, length)]
        return [(address, bank2 - address), (bank2, address + length - bank2)]


