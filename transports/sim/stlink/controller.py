"""The common part of simulated flash controllers: keys, lock, busy time, error bits.

Each family's controller (``f1``, ``f4``, ``l0``, ``l4``, ``h7``, ``h5``) is a
register file at the chip database's ``flash-controller`` address, driven by
32-bit register accesses and by bus writes into the flash array, the way
silicon is. Time is simulated: an operation keeps BSY set until the chip's
clock passes its end. The KEYR/CR/SR register set most families share is in
:mod:`transports.sim.stlink.regfile`.

What happens when the bus writes to flash while BSY is still set is the one
behaviour that differs between genuine parts and some clones, so it is a
setting (``writes_during_busy``): ``"stall"`` holds the bus until the
controller is ready (genuine STM32F1, as tools that write 1 KiB per command
without polling rely on), ``"drop"`` loses the write (APM32F103, as the
embassy project reported).
"""

from __future__ import annotations

from transports.chips import FlashBlock
from transports.sim.chip import SimChip, SimFlashFault

__all__ = ["KEY1", "KEY2", "OPTKEY1", "OPTKEY2", "BusFault", "KeyLock", "SimFlashController"]

KEY1 = 0x45670123
KEY2 = 0xCDEF89AB
OPTKEY1 = 0x08192A3B
OPTKEY2 = 0x4C5D6E7F


class BusFault(Exception):  # a simulator-side signal: the AHB access failed
    """The access faulted on the bus; the probe reports an AP fault."""

    def __init__(self, address: int, why: str = "") -> None:
        super().__init__(why or f"bus fault at 0x{address:08X}")
        self.address = address


class KeyLock:
    """A KEYR-style lock: KEY1 then KEY2 unlocks; a wrong sequence locks until reset."""

    def __init__(self, first: int, second: int) -> None:
        self.first, self.second = first, second
        self.locked = True
        self.blocked = False
        self._armed = False

    def write(self, value: int, address: int) -> None:
        if self.blocked:
            raise BusFault(address, "key register is blocked until reset")
        if not self._armed and value == self.first:
            self._armed = True
            return
        if self._armed and value == self.second:
            self._armed = False
            self.locked = False
            return
        # RM0008 §3.3.1 / RM0090 §3.5.1: a wrong key sequence locks the
        # controller until the next reset and raises a bus error.
        self._armed = False
        self.locked = True
        self.blocked = True
        raise BusFault(address, "wrong key sequence")

    def lock(self) -> None:
        self.locked = True
        self._armed = False

    def reset(self) -> None:
        self.locked = True
        self.blocked = False
        self._armed = False


class SimFlashController:
    """Base of the family models. Subclasses define registers and flash writes."""

    #: Size of the register window, from the controller's base address.
    window = 0x400

    def __init__(self, sim: SimChip, *, writes_during_busy: str = "stall") -> None:
        if writes_during_busy not in ("stall", "drop"):
            raise ValueError("writes_during_busy is 'stall' or 'drop'")
        self.sim = sim
        self.chip = sim.chip
        base = sim.chip.flash_controller_address
        if base is None:
            raise ValueError(f"{sim.chip.part} has no flash controller address")
        self.base = base
        self.writes_during_busy = writes_during_busy
        self.busy_until = 0.0
        self.dropped_writes = 0
        #: While the target's core executes, the time it has reached (it runs ahead
        #: of or behind the host's clock, see :mod:`transports.sim.stlink.core`).
        self.local_time: float | None = None

    # -- time -------------------------------------------------------------------------

    @property
    def now(self) -> float:
        if self.local_time is not None:
            return self.local_time
        return self.sim.clock.elapsed

    @property
    def busy(self) -> bool:
        return self.now < self.busy_until

    def occupy(self, seconds: float) -> None:
        """The controller is busy for ``seconds`` from now (or from when it frees)."""
        self.busy_until = max(self.now, self.busy_until) + seconds

    def stall_until_ready(self) -> None:
        """A bus access the flash interface holds until the operation ends (reads)."""
        if self.busy:
            if self.local_time is not None:
                self.local_time = self.busy_until
            else:
                self.sim.clock.advance(self.busy_until - self.now)

    def accept_write_while_busy(self) -> bool:
        """True when a flash write may go ahead; stalls or drops while busy."""
        if not self.busy:
            return True
        if self.writes_during_busy == "stall":
            self.stall_until_ready()
            return True
        self.dropped_writes += 1
        return False

    def program_time(self, nbytes: int) -> float:
        return self.chip.timing.program_seconds(nbytes, self.chip.flash.write_unit)

    # -- the bus side -------------------------------------------------------------------

    def owns(self, address: int) -> bool:
        return self.base <= address < self.base + self.window

    def read_register(self, offset: int) -> int:
        raise BusFault(self.base + offset)

    def write_register(self, offset: int, value: int) -> None:
        raise BusFault(self.base + offset)

    def write_flash(self, address: int, data: bytes) -> None:
        """One bus write of ``len(data)`` bytes (1, 2 or 4) into the flash array."""
        raise BusFault(address, "flash is not writable")

    def write_flash_run(self, address: int, data: bytes, width: int) -> None:
        """Consecutive ``width``-byte bus writes into the flash array, in address order.

        As the bus issues them: one :meth:`write_flash` per cycle, so a fault
        leaves the cycles before it done. Families override this to take a
        run whole where every cycle would behave alike.
        """
        for offset in range(0, len(data), width):
            self.write_flash(address + offset, data[offset:offset + width])

    def stall_through_run(self, cycles: int, seconds_each: float) -> None:
        """``cycles`` writes programmed back to back, the bus held while each waits.

        With stalling writes, cycle *k* waits for cycle *k-1*'s programming to
        end, so a run of ``n`` ends ``n-1`` program times after its first write
        was taken, and the last one's programming is still under way
        (:meth:`occupy` has counted all ``n``). One clock step stands for the
        ``n-1`` stalls.
        """
        if cycles <= 1:
            return
        held = (cycles - 1) * seconds_each
        if self.local_time is not None:
            self.local_time += held
        else:
            self.sim.clock.advance(held)

    def read_option_area(self, address: int, length: int) -> bytes | None:
        """What the option-byte area reads; ``None`` lets the chip answer."""
        return None

    def system_reset(self) -> None:
        """A system reset: locks come back, pending option bytes are loaded."""

    # -- helpers for subclasses -----------------------------------------------------------

    def program_array(self, address: int, data: bytes, *, require_erased: bool) -> str | None:
        """Program through SimChip; returns the fault reason instead of raising."""
        try:
            self.sim.program(address, data, require_erased=require_erased, timed=False)
        except SimFlashFault as fault:
            return fault.reason
        self.occupy(self.program_time(len(data)))
        return None

    def erase_unit(self, index: int) -> str | None:
        unit = self.chip.flash.blocks[index]
        self.sim.faults.check("erase", unit.size)  # an InjectedFault reaches the probe
        try:
            self.sim.erase_block(index, timed=False)
        except SimFlashFault as fault:
            return fault.reason
        self.occupy(self.chip.timing.erase_seconds(unit.size))
        return None

    def bank_blocks(self, bank: int) -> list[int]:
        """The indexes of every erase unit of ``bank`` (1 or 2)."""
        return [block.index for block in self.chip.flash.blocks if block.bank == bank]

    def block_in_bank(self, bank: int, number: int) -> FlashBlock | None:
        """Erase unit ``number`` counted within ``bank`` (SNB/PNB), or None past its end."""
        for block in self.chip.flash.blocks:
            if block.bank == bank and block.index_in_bank == number:
                return block
        return None

    def load_option_bytes(self, offset: int, data: bytes) -> bool:
        """Load ``data`` into the chip's option bytes at ``offset``, as a reload applies it.

        False when the chip refuses the change (leaving RDP level 2 is
        impossible): the caller raises the family's option error flag.
        """
        image = bytearray(self.sim.option_bytes)
        image[offset:offset + len(data)] = data
        try:
            self.sim.write_option_bytes(bytes(image))
        except SimFlashFault:
            return False
        return True

    def erase_all(self, blocks: list[int] | None = None) -> str | None:
        self.sim.faults.check("erase", 0)
        try:
            if blocks is None:
                self.sim.mass_erase(timed=False)
            else:
                for index in blocks:
                    self.sim.erase_block(index, timed=False)
        except SimFlashFault as fault:
            return fault.reason
        share = 1.0 if blocks is None else len(blocks) / len(self.chip.flash.blocks)
        self.occupy(self.chip.timing.mass_erase_ms / 1000 * share)
        return None
