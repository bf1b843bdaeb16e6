"""The STM32 system-memory bootloader, seen from the chip: one core for every link.

:class:`BootloaderCore` holds what the ROM decides whatever the link: which
commands its version lists, which are allowed under readout protection, which
addresses a command may touch, and what each command does to the
:class:`~transports.sim.chip.SimChip`. The link front ends (the byte stream of
USART and I2C in :mod:`transports.sim.stream`, the CAN node in
:mod:`transports.sim.canbus`) parse the wire and call these operations.

Profiles: the version and which optional commands are listed come from
:mod:`transports.chips.rom` (the same chip knowledge the links plan with) and
may be overridden per device with
``quirks`` of its :class:`~transports.sim.world.DeviceProfile`:

* ``usart-version`` / ``i2c-version`` / ``can-version``: the version byte;
* ``commands``: the exact Get list (a list of codes);
* ``checksum: true``: add Get Checksum (0xA1) to the list;
* ``double-ack``: answer the USART 0x7F with two ACKs (STM32L412/L422, AN2606);
* ``sync-zero``: emit a 0x00 before the first ACK (a USART TX glitch at start-up);
* ``no-mass-erase``: NACK the mass-erase code (L0/L1 behaviour; also from the
  chip database flag of the same name).

Faults planned on the chip fire here and come back as :class:`WireFault`
(what the wire shows: ``timeout`` no answer, ``nack``, ``link-lost``,
``brownout``); a ``corrupt`` fault programs one flipped byte and still ACKs,
as a marginal cell would.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transports.checksums import stm32_crc32
from transports.chips import Chip, rom_bootloader
from transports.sim.chip import SimChip, SimFlashFault
from transports.sim.faults import InjectedFault

__all__ = [
    "ACK",
    "BUSY",
    "NACK",
    "BootloaderCore",
    "Link",
    "WireFault",
    "bootloader_profile",
]

ACK = 0x79
NACK = 0x1F
BUSY = 0x76

# AN3155 §1.4 / AN4221 §2.3 / AN3154 §3 command codes.
GET, GET_VERSION, GET_ID, SPEED = 0x00, 0x01, 0x02, 0x03
READ, GO, WRITE, WRITE_NS = 0x11, 0x21, 0x31, 0x32
ERASE, EXT_ERASE, ERASE_NS = 0x43, 0x44, 0x45
WRITE_PROTECT, WRITE_PROTECT_NS = 0x63, 0x64
WRITE_UNPROTECT, WRITE_UNPROTECT_NS = 0x73, 0x74
READOUT_PROTECT, READOUT_PROTECT_NS = 0x82, 0x83
READOUT_UNPROTECT, READOUT_UNPROTECT_NS = 0x92, 0x93
CHECKSUM = 0xA1

#: AN3155 §1.3 rule 5: the only commands a read-protected chip accepts (AN3154 §3.3
#: lists CAN's Speed among neither the refused nor the allowed; it touches no memory).
ALLOWED_UNDER_RDP = frozenset({GET, GET_VERSION, GET_ID, SPEED, READOUT_UNPROTECT,
                               READOUT_UNPROTECT_NS})

_PROTECTION = (WRITE_PROTECT, WRITE_UNPROTECT, READOUT_PROTECT, READOUT_UNPROTECT)
_NO_STRETCH = (WRITE_NS, ERASE_NS, WRITE_PROTECT_NS, WRITE_UNPROTECT_NS, READOUT_PROTECT_NS,
               READOUT_UNPROTECT_NS)


#: Flash controllers that refuse to program a unit that is not erased: F0/F1/F3
#: (PGERR, PM0075 §2.3.3, "except when 0x0000 is programmed"), the double- and
#: quad-word controllers (PROGERR, RM0351 §3.3.7 / RM0444 §3.3.8 / RM0456, the same
#: all-zero exception) and L0 (NOTZEROERR, RM0367 §3.3.4).
_CHECKS_ERASED = frozenset({"f0", "f1", "f1xl", "l0", "l4", "g0", "g4", "wb", "wl", "c0",
                            "l5", "u5", "h5"})


class Link(enum.Enum):
    USART = "usart"
    I2C = "i2c"
    CAN = "can"


class WireFault(Exception):
    """An injected fault, as the wire will show it (``timeout``, ``nack``, ``link-lost``…)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True, slots=True, kw_only=True)
class BootloaderProfile:
    """What one simulated ROM answers to Get / Get Version."""

    version: int
    commands: tuple[int, ...]
    double_ack: bool = False
    sync_zero: bool = False
    mass_erase: bool = True
    #: ``aligned-block``: device-information reads must start at the page base (F401, L05x).
    device_info_read: str = "any"


def bootloader_profile(chip: Chip, link: Link, quirks: Mapping[str, Any]) -> BootloaderProfile:
    """The ROM a chip runs on ``link``, from the chip database and the device's quirks."""
    override = quirks.get(f"{link.value}-version")
    rom = rom_bootloader(chip, link.value, version=None if override is None else int(override))
    commands: list[int] = [GET, GET_VERSION, GET_ID]
    if rom.speed:
        commands.append(SPEED)
    commands += [READ, GO, WRITE, EXT_ERASE if rom.extended_erase else ERASE, *_PROTECTION]
    if rom.no_stretch:
        commands += _NO_STRETCH
    if rom.checksum or quirks.get("checksum"):
        commands.append(CHECKSUM)
    if "commands" in quirks:
        commands = [int(code) for code in quirks["commands"]]
    version = rom.version
    mass = not (quirks.get("no-mass-erase") or "no-mass-erase" in chip.bootloader.flags)
    return BootloaderProfile(version=version, commands=tuple(commands),
                             double_ack=bool(quirks.get(
                                 "double-ack", chip.bootloader.usart_double_ack)),
                             sync_zero=bool(quirks.get("sync-zero", False)), mass_erase=mass,
                             device_info_read=str(quirks.get("device-info-read", "any")))


class BootloaderCore:
    """The link-independent half of a simulated ROM bootloader over one :class:`SimChip`.

    ``active`` is false while the application runs (after Go, or a reset with
    BOOT0 low): the ROM then answers nothing.
    """

    def __init__(self, sim: SimChip, profile: BootloaderProfile, *, active: bool = True) -> None:
        self.sim = sim
        self.chip = sim.chip
        self.profile = profile
        self.active = active
        self.synced = False
        #: Set when the chip reset itself (RDP/WRP commands, option bytes, brown-out).
        self.self_resets = 0
        self.last_go: int | None = None
        #: The next command the host sends opens a session: ``op: connect`` faults fire.
        self.connecting = True

    # ------------------------------------------------------------------ session

    @property
    def running(self) -> bool:
        """The ROM listens: selected at the last reset, and not disabled by RDP level 2."""
        return self.active and self.sim.rdp_level < 2

    @property
    def version(self) -> int:
        return self.profile.version

    @property
    def commands(self) -> tuple[int, ...]:
        return self.profile.commands

    def accepts(self, code: int) -> bool:
        """AN3155 §1.3: listed, and allowed at the current protection level."""
        if code not in self.profile.commands:
            return False
        return self.sim.rdp_level == 0 or code in ALLOWED_UNDER_RDP

    def reset(self, *, boot0: bool = True) -> None:
        """A system reset: back to waiting for the link's activation (or to the app)."""
        self.sim.reset()
        self.synced = False
        self.active = boot0

    def self_reset(self) -> None:
        """The reset the ROM performs after WRP/RDP/option-byte commands (AN3155 §1.6)."""
        self.self_resets += 1
        self.reset(boot0=True)

    def session_started(self) -> None:
        """The host opened a new session: connect faults may fire again."""
        self.connecting = True
        self.sim.faults.reset_counters()

    def connect_fault(self) -> WireFault | None:
        """The ``op: connect`` fault of a session's first command, if one fires.

        A failed connect leaves the session unopened: the next attempt connects again."""
        if not self.connecting:
            return None
        self.connecting = False
        try:
            self.fault("connect", 0)
        except WireFault as fault:
            self.connecting = True
            return fault
        return None

    def fault(self, op: str, length: int = 0) -> None:
        """Let a planned fault fire; raise :class:`WireFault` with its wire behaviour."""
        try:
            self.sim.faults.check(op, length)
        except InjectedFault as injected:
            if injected.kind == "brownout":
                self.reset(boot0=True)
            raise WireFault(injected.kind) from injected

    @property
    def pid(self) -> int:
        return self.chip.dev_id

    # ------------------------------------------------------------------ address checks

    def _free_ram(self) -> tuple[int, int]:
        return self.chip.bootloader.ram or self.chip.ram

    def _option_area(self) -> tuple[int, int]:
        ob = self.chip.option_bytes
        return ob.address, ob.address + ob.size

    def _in(self, area: tuple[int, int] | None, address: int, length: int = 1) -> bool:
        return area is not None and area[0] <= address and address + length <= area[1]

    def readable(self, address: int, length: int = 1) -> bool:
        return (self.sim.geometry.contains(address, length)
                or self._in(self._free_ram(), address, length)
                or self._in(self._option_area(), address, length)
                or self._system_readable(address, length))

    def _device_page(self) -> tuple[int, int]:
        """The 256-byte page of system memory that holds the UID (and often the flash size)."""
        base = self.chip.uid_address & ~0xFF
        return base, base + 0x100

    def length_accepted(self, address: int, length: int) -> bool:
        """The Read Memory length check, once the address was accepted.

        With the ``device-info-read: aligned-block`` quirk the ROM NACKs the length of a
        read inside the device-information page unless it starts at the page's base:
        an F401 ROM refuses 12 bytes at the UID and 2 at the flash size but answers 256
        bytes from 0x1FFF7A00, and an L05x ROM the same at 0x1FF80000 (stm32loader
        PR #25, issues #43 and #61).
        """
        if self.profile.device_info_read != "aligned-block":
            return True
        page = self._device_page()
        return not self._in(page, address) or address == page[0]

    def _system_readable(self, address: int, length: int) -> bool:
        system = self.chip.bootloader.system_memory
        if self._in(system, address, length) or self._in(self._device_page(), address, length):
            return True
        spans = self._system_map()
        return all(any(base <= addr < base + len(value) for base, value in spans.items())
                   for addr in range(address, address + length))

    def writable(self, address: int) -> bool:
        return (self.sim.geometry.contains(address) or self._in(self._free_ram(), address)
                or self._in(self._option_area(), address))

    def go_target(self, address: int) -> bool:
        # AN3155 §3.5 (v2.1+): flash or RAM only; option bytes and system memory refused.
        return self.sim.geometry.contains(address) or self._in(self._free_ram(), address)

    def _system_map(self) -> dict[int, bytes]:
        data = dict(self.sim.system_bytes())
        boot = self.chip.bootloader
        if boot.bl_id and boot.bl_id_address is not None:
            data[boot.bl_id_address] = bytes([boot.bl_id[0]])
        return data

    # ------------------------------------------------------------------ operations

    def read(self, address: int, length: int) -> bytes:
        self.fault("read", length)
        if self.sim.geometry.contains(address, length) or self._in(self._free_ram(), address,
                                                                   length) \
                or self._in(self._option_area(), address, length):
            return self.sim.read_memory(address, length, debug=False)
        out = bytearray()
        system = self._system_map()
        for addr in range(address, address + length):
            for base, value in system.items():
                if base <= addr < base + len(value):
                    out.append(value[addr - base])
                    break
            else:
                out.append(0x00)
        return bytes(out)

    def write(self, address: int, data: bytes) -> None:
        """Program flash (NOR, unchecked, as the ROM does), fill RAM, or replace option bytes."""
        self.fault("write", len(data))
        if self._in(self._option_area(), address, len(data)):
            # AN3155 §3.6: a Write Memory to the option bytes erases the whole option
            # area first, so the bytes the host does not send come back erased (on F1
            # that includes RDP when it is left out: 0xFF is level 1, RM0008 §2.5).
            image = bytearray([self.sim.geometry.erased]) * len(self.sim.option_bytes)
            offset = address - self._option_area()[0]
            image[offset:offset + len(data)] = data
            try:
                self.sim.write_option_bytes(bytes(image))
            except SimFlashFault as error:
                raise WireFault("nack") from error
            self.self_reset()
            return
        if self._in(self._free_ram(), address, len(data)):
            self.sim.write_ram(address, data)
            return
        checked = self.chip.controller in _CHECKS_ERASED
        try:
            # AN3155 §3.6: the ROM reports no error for protected pages; data is not written.
            # A unit the controller refuses to program (PGERR/PROGERR/NOTZEROERR) fails
            # the write, and the ROM answers NACK; F2/F4/F7/H7/L1 just clear bits.
            self.sim.program(address, data, require_erased=checked,
                             zero_overwrite=checked and self.chip.controller != "l0")
        except SimFlashFault as error:
            if error.reason != "write-protected":
                raise WireFault("nack") from error

    def corrupt_write(self, address: int, data: bytes) -> None:
        """A ``corrupt`` fault: the first byte comes out with bit 0 flipped."""
        self.sim.program(address, bytes([data[0] ^ 0x01]) + data[1:], require_erased=False)

    def erase_pages(self, pages: Sequence[int]) -> None:
        blocks = self.sim.geometry.blocks
        if any(not 0 <= page < len(blocks) for page in pages):
            raise WireFault("nack")
        for page in pages:
            self.fault("erase", blocks[page].size)
            try:
                self.sim.erase_block(page)
            except SimFlashFault as error:
                if error.reason != "write-protected":
                    raise WireFault("nack") from error

    def mass_erase(self, bank: int | None = None) -> None:
        if not self.profile.mass_erase:
            raise WireFault("nack")
        geometry = self.sim.geometry
        if bank is not None:
            if geometry.banks < 2:
                raise WireFault("nack")
            pages = [block.index for block in geometry.blocks if block.bank == bank]
            self.erase_pages(pages)
            return
        self.fault("erase", geometry.size)
        try:
            self.sim.mass_erase()
        except SimFlashFault as error:
            raise WireFault("nack") from error

    def go(self, address: int) -> None:
        """Jump: to flash, the application runs; to RAM, a host's reset stub runs.

        stm32flash's ``-R`` writes a stub that requests a system reset into RAM and
        jumps there (reference §1.5.5); the chip then restarts (BOOT0 still high).
        """
        self.last_go = address
        if self._in(self._free_ram(), address):
            self.self_reset()
            return
        self.active = False

    def write_protect(self, sectors: Sequence[int]) -> None:
        pps = max(1, self.chip.bootloader.pages_per_sector)
        blocks = len(self.sim.geometry.blocks)
        # AN3155 §3.9: the new set replaces the old one; sectors are not range checked.
        self.sim.write_protect(range(blocks), protected=False)
        pages = [page for sector in sectors for page in range(sector * pps, sector * pps + pps)
                 if page < blocks]
        self.sim.write_protect(pages)

    def write_unprotect(self) -> None:
        self.sim.write_protect(range(len(self.sim.geometry.blocks)), protected=False)

    def readout_protect(self) -> None:
        self.sim.set_rdp_level(1)

    def readout_unprotect(self) -> None:
        # AN3155 §3.12: removing RDP mass-erases the flash (SimChip does it on 1 → 0).
        self.sim.write_protect(range(len(self.sim.geometry.blocks)), protected=False)
        if self.sim.rdp_level == 0:
            self.sim.mass_erase()
        else:
            self.sim.set_rdp_level(0)
            self.sim.clock.advance(self.chip.timing.mass_erase_ms / 1000)

    def checksum(self, address: int, length: int) -> int:
        """AN3155 §1.5.13: STM32 CRC-32 over ``length`` bytes (a multiple of 4)."""
        if address % 4 or length % 4 or length == 0 or not self.readable(address, length):
            raise WireFault("nack")
        return stm32_crc32(self.read(address, length))
