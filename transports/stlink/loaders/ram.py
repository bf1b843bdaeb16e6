"""Running the RAM flash loader: upload, double-buffered blocks, CRC, failure handling.

SRAM layout (from the chip database's RAM start): the loader image, then two
block buffers of equal size. Each block is a 24-byte header (destination,
byte count, status register address, program unit, busy mask, error mask)
followed by the data. The host writes block N+1 into one buffer while the
core programs block N from the other, so USB transfers overlap programming;
the only round trips per block are setting r0 and PC, resuming, polling
DHCSR and reading r0 back (ARMv7-M C1.6: core registers through DCRSR/DCRDR).

Failure is never silent. A run that does not halt in time, halts on a fault
(DFSR.VCATCH: hard-fault vector catch) or locks up raises :class:`LoaderError`;
a unit that reports controller error bits raises :class:`WriteError` naming
them; a unit that reads back different raises :class:`WriteError` too. The
driver's register path is the fallback chosen at connect (see
:mod:`transports.stlink.writemode`), never silently mid-write.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from transports.base import Progress, no_progress
from transports.checksums import stm32_crc32
from transports.chips import Chip
from transports.errors import WriteError
from transports.stlink.loaders.image import LoaderImage, flash_loader
from transports.stlink.loaders.run import CoreRunner, LoaderError
from transports.stlink.protocol import StLink

__all__ = ["LoaderError", "LoaderSpan", "RamLoader", "loader_fits"]

MISMATCH = 0x80000000
#: The smallest block worth a loader run; below it the register path is used.
MIN_BLOCK = 256
MAX_BLOCK = 16 * 1024
#: The clock the core runs the loader at: the part's reset clock (each family's
#: RM, RCC chapter: HSI 8/16/64/32 MHz, MSI 4 or 2.1 MHz); the loader leaves RCC alone.
RESET_CLOCK_HZ = {
    "f0": 8e6, "f1": 8e6, "f1xl": 8e6, "f2": 16e6, "f4": 16e6, "f7": 16e6, "g0": 16e6,
    "g4": 16e6, "c0": 12e6, "l4": 4e6, "l5": 4e6, "u5": 4e6, "wb": 4e6, "wl": 4e6,
    "l0": 2.097e6, "l1": 2.097e6, "h7": 64e6, "h7ab": 64e6, "h5": 32e6,
}
#: Cycles of the loader's own work per program unit (copy, barrier, poll, check) and
#: per word summed by the CRC routine; the host waits that long before it polls.
PROGRAM_CYCLES_PER_UNIT, CRC_CYCLES_PER_WORD = 40, 40


@dataclass(frozen=True, slots=True, kw_only=True)
class LoaderSpan:
    """One stretch of flash the loader programs with one control-register setting.

    ``setup`` and ``teardown`` are register writes (address, value) the host
    makes before and after: clearing the status flags, setting PG/PSIZE/FPRG,
    clearing PG again. ``clear`` is where error flags are cleared (SR itself,
    or H7/H5's CCR).
    """

    address: int
    length: int
    status: int
    clear: int
    unit: int
    busy_mask: int
    error_mask: int
    setup: tuple[tuple[int, int], ...] = ()
    teardown: tuple[tuple[int, int], ...] = ()
    #: status bit → what an error message calls it
    error_names: Mapping[int, str] = field(default_factory=dict)


def _layout(chip: Chip, image: LoaderImage) -> tuple[int, int]:
    """(first buffer address, buffer size) for ``chip``'s SRAM; size 0 when it does not fit."""
    start, end = chip.ram
    first = start + (-(-len(image.code) // 64) * 64)
    size = min((end - first) // 2, MAX_BLOCK + image.header) & ~0x3F
    return first, size


def loader_fits(chip: Chip) -> bool:
    """Whether the loader and two blocks worth a run fit in ``chip``'s SRAM."""
    image = flash_loader()
    return _layout(chip, image)[1] - image.header >= MIN_BLOCK


class RamLoader:
    """The loader in one halted target's SRAM."""

    def __init__(self, link: StLink, chip: Chip, image: LoaderImage | None = None) -> None:
        self.link = link
        self.chip = chip
        self.image = image or flash_loader()
        self.base = chip.ram[0]
        first, size = _layout(chip, self.image)
        if size - self.image.header < MIN_BLOCK:
            raise LoaderError(f"{chip.part} has too little SRAM for the flash loader "
                              f"({(chip.ram[1] - chip.ram[0]) // 1024} KiB)",
                              hint="use write-mode: fast or safe for this part")
        self.buffers = (first, first + size)
        self.block = (size - self.image.header) & ~0x1F
        self.clock_hz = RESET_CLOCK_HZ.get(chip.controller, 2.0e6)
        self.loaded = False
        self.core = CoreRunner(link, self.base)

    @property
    def runs(self) -> int:
        return self.core.runs

    def load(self) -> None:
        """Upload the image and check that it runs: a CRC of itself, computed on the core."""
        self.core.prepare()
        code = self.image.code + b"\0" * (-len(self.image.code) % 4)
        self.link.write_memory(self.base, code, width=4)
        self.loaded = True
        expected = stm32_crc32(code)
        got = self._crc_run(self.base, len(code), 0xFFFFFFFF)
        if got != expected:
            self.loaded = False
            raise LoaderError(f"the flash loader computed CRC 0x{got:08X} of itself, not "
                              f"0x{expected:08X}: the core does not run it correctly",
                              hint="use write-mode: fast or safe for this target")

    def _wait(self, expected_s: float, what: str, since: float) -> int:
        """Wait for the core to halt at the loader's bkpt; r0 is the result."""
        self.core.wait(expected_s, f"flash loader's {what}", since,
                       hint="the register path (write-mode: fast or safe) avoids the "
                            "loader; reset the target first")
        if self.core.faulted():
            raise LoaderError(f"the flash loader's {what} faulted (hard-fault vector catch)",
                              hint="the register path (write-mode: fast or safe) avoids the "
                                   "loader; report this part")
        return self.core.read_register(0)

    # -- CRC ---------------------------------------------------------------------------

    def _crc_run(self, address: int, length: int, crc: int) -> int:
        started = self.core.start(self.image.crc_entry, (address, length, crc))
        expected = length // 4 * CRC_CYCLES_PER_WORD / self.clock_hz
        return self._wait(expected, "CRC", started)

    def crc32(self, address: int, length: int) -> int:
        """The STM32 CRC-32 of ``length`` bytes (a multiple of 4) at ``address``, on target."""
        if not self.loaded:
            self.load()
        crc = 0xFFFFFFFF
        # One run per 64 KiB keeps each run well inside its timeout.
        for at in range(address, address + length, 0x10000):
            crc = self._crc_run(at, min(0x10000, address + length - at), crc)
        return crc

    # -- programming ---------------------------------------------------------------------

    def program(self, spans: Sequence[LoaderSpan], data: bytes,
                progress: Progress = no_progress) -> None:
        """Program ``data`` (laid over the spans in order), double-buffered."""
        if not self.loaded:
            self.load()
        blocks: list[tuple[LoaderSpan, int, bytes]] = []
        offset = 0
        for span in spans:
            size = self.block - self.block % span.unit
            for at in range(span.address, span.address + span.length, size):
                chunk = data[offset + at - span.address:
                             offset + min(at + size, span.address + span.length) - span.address]
                blocks.append((span, at, chunk))
            offset += span.length
        done = 0
        running: tuple[LoaderSpan, int, bytes, float] | None = None
        current: LoaderSpan | None = None
        for index, (span, at, chunk) in enumerate(blocks):
            buffer = self.buffers[index % 2]
            header = struct.pack("<6I", at, len(chunk), span.status, span.unit, span.busy_mask,
                                 span.error_mask)
            # While the previous block programs, this one travels over USB.
            self.link.write_memory(buffer, header + chunk, width=4)
            if running is not None:
                done += self._finish(running)
                progress(done, len(data))
            if span is not current:
                if current is not None:
                    self._registers(current.teardown)
                self._registers(span.setup)
                current = span
            started = self.core.start(self.image.program_entry, (buffer,))
            running = (span, at, chunk, started)
        if running is not None:
            done += self._finish(running)
            progress(done, len(data))
        if current is not None:
            self._registers(current.teardown)

    def _registers(self, writes: Sequence[tuple[int, int]]) -> None:
        for address, value in writes:
            self.link.write_word(address, value)

    def _finish(self, block: tuple[LoaderSpan, int, bytes, float]) -> int:
        span, at, chunk, started = block
        expected = self.chip.timing.program_seconds(len(chunk), span.unit) \
            + len(chunk) // span.unit * PROGRAM_CYCLES_PER_UNIT / self.clock_hz
        result = self._wait(expected, f"program run at 0x{at:08X}", started)
        if result == 0:
            return len(chunk)
        stopped = self.core.read_register(1)
        if result == MISMATCH:
            raise WriteError(f"flash at 0x{stopped:08X} reads back different from what the "
                             f"loader programmed", address=stopped,
                             hint="erase the area first; if it persists the part may be worn")
        bad = result & span.error_mask
        self.link.write_word(span.clear, bad)
        flags = ", ".join(name for bit, name in span.error_names.items() if bad & bit) \
            or f"status 0x{result:08X}"
        raise WriteError(f"program at 0x{stopped:08X} failed: {flags}", address=stopped,
                         hint="erase the area before writing, or check write protection")
