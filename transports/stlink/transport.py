"""``kind: stlink`` — an STM32 reached through an ST-Link probe over SWD.

The session stacks the layers: USB (:mod:`.usb`, or :mod:`.v1` framing for
the mass-storage V1), the command protocol (:mod:`.protocol`), the target's
run control and identity (:mod:`.target`), and the flash controller driver
of the chip's family (:mod:`.flash`). The pyusb backend and the clock come
from the run's endpoint provider: libusb and the host's clock on hardware; in
a rehearsal the simulated probe plugged when the run was composed, and the
chip's clock, which also passes while the host sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
    SpeedModel,
    no_progress,
)
from transports.checksums import stm32_crc32
from transports.chips import Chip, FlashBlock
from transports.errors import (
    ChipMismatch,
    ConnectError,
    FlashError,
    ReadProtected,
    TransportError,
)
from transports.stlink.flash import FlashDriver, driver_for
from transports.stlink.loaders import CrcRoutine, LoaderError, RamLoader
from transports.stlink.loaders.crc import CRC_CYCLES_PER_WORD
from transports.stlink.loaders.ram import RESET_CLOCK_HZ
from transports.stlink.oncrc import OnTargetCrc, crc_planned, crc_unavailable
from transports.stlink.protocol import MemoryFault, StLink
from transports.stlink.target import CLONE_SIGNS, Target, TargetInfo
from transports.stlink.usb import (
    BulkFraming,
    ProbeCandidate,
    UsbPipe,
    find_candidates,
    select_probe,
)
from transports.stlink.v1 import BotFraming
from transports.stlink.writemode import (
    WRITE_MODES,
    choose_write_mode,
    fallback_mode,
)
from transports.usb import LinkNames

__all__ = ["StLinkTransport"]

DEFAULT_CLOCK_KHZ = 1800
UNPOWERED_V = 0.5


class StLinkTransport:
    """A session with one STM32 behind one ST-Link."""

    kind: ClassVar[str] = "stlink"
    #: Endpoints a rehearsal reaches through the endpoint seam (docs/architecture.md).
    simulation: ClassVar[frozenset[str]] = frozenset({"usb_backend", "clock"})
    #: What every session offers; the on-target CRC (the CRC routine, or the RAM
    #: loader's) adds the checksum.
    capabilities_base: ClassVar[frozenset[Capability]] = frozenset({
        Capability.ERASE_PAGES, Capability.ERASE_MASS, Capability.WRITE, Capability.READ,
        Capability.RESET_HARDWARE, Capability.RESET_SOFTWARE, Capability.OPTION_BYTES,
        Capability.UID})
    capabilities: ClassVar[frozenset[Capability]] = (
        capabilities_base | {Capability.CHECKSUM})
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "serial": {"type": "string", "minLength": 1,
                       "description": "The probe's serial number (24 hex digits)."},
            "port-path": {"type": "string", "pattern": r"^[0-9]+-[0-9]+(\.[0-9]+)*$",
                          "description": "USB port path bus-port.port… (cannot collide)."},
            "connect": {"enum": ["normal", "under-reset", "hot-plug"], "default": "normal",
                        "description": "normal: attach and reset halted; under-reset: hold "
                                       "NRST while attaching; hot-plug: attach, halt, no "
                                       "reset."},
            "clock-khz": {"type": "integer", "minimum": 5, "maximum": 24000,
                          "default": DEFAULT_CLOCK_KHZ,
                          "description": "SWD clock; the fastest rate not above it is used."},
            "flash-size-kib": {"type": "integer", "minimum": 1,
                               "description": "Trust this flash size instead of the chip's "
                                              "flash-size register."},
            "write-mode": {"enum": list(WRITE_MODES), "default": "auto",
                           "description": "auto: the RAM flash loader where the probe cannot "
                                          "write the program unit, else block writes on "
                                          "genuine parts and one unit at a time on clones; "
                                          "loader, fast, safe force one path."},
            "on-target-crc": {"type": "boolean", "default": True,
                              "description": "Compare (verify, skip-unchanged) by a CRC-32 "
                                             "the target computes in SRAM; false: read "
                                             "flash back."},
            "min-voltage": {"type": "number", "minimum": 0, "maximum": 5, "default": 0,
                            "description": "Refuse to flash below this target VDD (volts)."},
        },
    }

    def __init__(self, request: LinkRequest) -> None:
        self.request = request
        self.chip = request.chip
        self.options = request.options
        #: this session's set: the planned one, then what connect found (the loader)
        self.capabilities: frozenset[Capability] = self.planned_capabilities(  # type: ignore[misc]
            request.options, request.chip)
        self.link: StLink | None = None
        self.target: Target | None = None
        self.driver: FlashDriver | None = None
        self.info: TargetInfo | None = None
        self.candidate: ProbeCandidate | None = None
        self.voltage: float | None = None
        self.write_mode = "safe"
        #: why the loader is not used although auto would have chosen it
        self.loader_note: str | None = None
        #: what computes the checksums on the target; None: read-back (``crc_note`` why)
        self.crc: OnTargetCrc | None = None
        self.crc_note: str | None = None
        self._identity: ChipIdentity | None = None

    # ------------------------------------------------------------------ class side

    @classmethod
    def speed_model(cls, options: Mapping[str, Any], chip: Chip) -> SpeedModel:
        """Figures of the simulator's latency model (full-speed USB, 0.125 ms a transfer)."""
        khz = int(options.get("clock-khz", DEFAULT_CLOCK_KHZ))
        transfer_s, wire_s_per_byte = 0.000125, 1 / 1.0e6
        program_per_kib = chip.timing.program_seconds(1024, chip.flash.write_unit)
        if options.get("write-mode") == "safe":
            # Per program unit: command, data, status, then an SR poll (6 transfers).
            units = 1024 / chip.flash.write_unit
            write = 1024 / (units * 6 * transfer_s + program_per_kib)
        else:
            usb_per_kib = 1.5 * transfer_s + 1024 * wire_s_per_byte
            swd_per_kib = 512 * 46 / (khz * 1000)
            write = 1024 / (usb_per_kib + max(swd_per_kib, program_per_kib))
        read = 1024 / (transfer_s + 1024 * wire_s_per_byte + 256 * 46 / (khz * 1000))
        # The on-target CRC: its loop at the part's reset clock (the transfers per unit are
        # few); None when the session reads back.
        checksum = RESET_CLOCK_HZ.get(chip.controller, 2.0e6) / CRC_CYCLES_PER_WORD * 4 \
            if crc_planned(options, chip) else None
        return SpeedModel(connect_s=0.3, write_bytes_per_s=write, read_bytes_per_s=read,
                          checksum_bytes_per_s=checksum, erase_overhead_s=0.002)

    @classmethod
    def planned_capabilities(cls, options: Mapping[str, Any],
                             chip: Chip) -> frozenset[Capability]:
        """The on-target checksum wherever a session will have an on-target CRC (oncrc)."""
        if crc_planned(options, chip):
            return cls.capabilities_base | {Capability.CHECKSUM}
        return cls.capabilities_base

    @classmethod
    def resource_key(cls, link: str, options: Mapping[str, Any]) -> str:
        probe = options.get("serial") or options.get("port-path") or link
        return f"stlink:{probe}"

    @classmethod
    def open(cls, request: LinkRequest) -> StLinkTransport:
        return cls(request)

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Name the link and device on every error leaving the session."""
        try:
            yield
        except TransportError as error:
            if error.transport is None:
                error.transport = self.request.link
            if error.device is None:
                error.device = self.request.device
            raise

    def _require(self) -> tuple[StLink, Target, FlashDriver]:
        if self.link is None or self.target is None or self.driver is None:
            raise ConnectError(f"session with {self.request.device} is not connected",
                               transport=self.request.link, device=self.request.device)
        return self.link, self.target, self.driver

    # ------------------------------------------------------------------ contract

    def connect(self) -> None:
        with self._errors():
            if driver_for(self.chip.controller) is None:
                raise ConnectError(f"flashing {self.chip.controller} flash controllers "
                                   f"({self.chip.part}) over ST-Link is not supported yet",
                                   hint="use the system bootloader (uart, dfu) for this part")
            endpoints = self.request.endpoints
            names = LinkNames(link=self.request.link, device=self.request.device)
            candidates = find_candidates(endpoints.usb_backend(self.request), names)
            self.candidate = select_probe(candidates, serial=self.options.get("serial"),
                                          port_path=self.options.get("port-path"),
                                          link=self.request.link, device=self.request.device)
            pipe = UsbPipe(self.candidate, names=names)
            pipe.trace = self.request.trace
            pipe.open()
            framing = BotFraming(pipe) if self.candidate.kind.generation == "v1" \
                else BulkFraming(pipe)
            link = StLink(framing, endpoints.clock(self.request), pid=self.candidate.kind.pid,
                          generation=self.candidate.kind.generation, trace=self.request.trace)
            self.link = link
            try:
                self._bring_up(link)
            except BaseException:
                self.close()
                raise

    def _bring_up(self, link: StLink) -> None:
        version = link.read_version()
        if version.api < 2:
            raise ConnectError(f"ST-Link firmware {version} only speaks API v1, which has no "
                               f"SWD", hint="update the probe's firmware")
        link.leave_current_mode()
        self.voltage = link.target_voltage()
        if self.voltage is not None:
            if self.voltage < UNPOWERED_V:
                raise ConnectError(f"target not powered (VDD {self.voltage:.2f} V)",
                                   hint="power the board; the ST-Link does not supply it")
            minimum = float(self.options.get("min-voltage", 0))
            if self.voltage < minimum:
                raise ConnectError(f"target VDD {self.voltage:.2f} V is below min-voltage "
                                   f"{minimum:.2f} V", hint="check the board's supply")
        if version.hardware >= 2:
            link.set_swd_clock(int(self.options.get("clock-khz", DEFAULT_CLOCK_KHZ)))
        mode = self.options.get("connect", "normal")
        if mode == "under-reset" and not version.has("nrst"):
            raise ConnectError(f"an ST-Link/{'V1' if version.hardware == 1 else version} "
                               f"cannot drive NRST, so it cannot connect under reset",
                               hint="use connect: normal or hot-plug with this probe")
        target = Target(link)
        if mode == "under-reset":
            # Reference §7.4: NRST low before and after ENTER, halt, release.
            link.drive_nrst(0)
            link.enter_swd()
            link.drive_nrst(0)
            target.halt()
            link.write_word(0xE000EDFC, 0x01000501)
            link.drive_nrst(1)
        else:
            link.enter_swd()
        cpuid = link.read_word(0xE000ED00)
        part = (cpuid >> 4) & 0xFFF
        # OpenOCD: the AHB-AP of M3/M4/M7 auto-increments over 4 KiB, others 1 KiB.
        link.window = 4096 if part in (0xC23, 0xC24, 0xC27) else 1024
        if mode == "normal":
            target.reset(halt=True)
        else:
            target.halt()
        self.target = target
        kind = driver_for(self.chip.controller)
        assert kind is not None  # checked in connect()
        self.info = target.identify(self.chip)
        requested = self.options.get("write-mode", "auto")
        half_words = link.version.has("mem-16bit")
        self.write_mode = choose_write_mode(requested, self.chip, self.info,
                                            half_word_writes=half_words, voltage=self.voltage)
        loader: RamLoader | None = None
        if self.write_mode == "loader":
            try:
                loader = RamLoader(link, self.chip)
                loader.load()
            except LoaderError as error:
                fallback = fallback_mode(self.chip, self.info, half_word_writes=half_words)
                if requested != "auto" or fallback is None:
                    raise ConnectError(f"the RAM flash loader cannot be used: {error}",
                                       hint=error.hint or "use write-mode: fast or safe") \
                        from error
                # The register path is the verified fallback; the log says why.
                self.loader_note = str(error)
                self.write_mode, loader = fallback, None
                self.request.fallback("the RAM flash loader",
                                      f"the register path (write-mode {fallback})",
                                      self.loader_note)
        self.driver = kind(link, self.chip, fast=self.write_mode == "fast",
                           voltage=self.voltage)
        self.driver.loader = loader
        self.crc = self._on_target_crc(link, loader)
        self.capabilities = self.capabilities_base | (  # type: ignore[misc]
            {Capability.CHECKSUM} if self.crc is not None else set())

    def _on_target_crc(self, link: StLink, loader: RamLoader | None) -> OnTargetCrc | None:
        """The loader's CRC, else the CRC routine (self-checked at first use), else None."""
        self.crc_note = crc_unavailable(self.options, self.chip)
        if self.crc_note is not None:
            return None
        if loader is not None:
            return loader  # it passed its own self-check as it loaded
        try:
            # Loaded and self-checked at its first use (CrcRoutine.crc32): a session
            # that never compares or verifies never runs it.
            return CrcRoutine(link, self.chip)
        except LoaderError as error:
            self._crc_failed(error)
            return None

    def _crc_failed(self, error: LoaderError) -> None:
        """Read back from now on, and say so: an event and a warning, never silently."""
        self.crc, self.crc_note = None, str(error)
        self.capabilities = self.capabilities - {Capability.CHECKSUM}  # type: ignore[misc]
        self.request.fallback("the on-target CRC", "read-back", self.crc_note)

    def identify(self) -> ChipIdentity:
        with self._errors():
            link, _target, driver = self._require()
            info = self.info
            assert info is not None and self.candidate is not None
            rdp: int | None
            try:
                rdp = driver.read_option_bytes().rdp_level
            except MemoryFault:
                rdp = None
            if info.dev_id == self.chip.dev_id:
                self._check_flash_size(info)
            details: dict[str, Any] = {
                "probe_serial": self.candidate.serial, "probe_port": self.candidate.port_path,
                "dp_idcode": f"0x{info.dp_idcode:08X}", "cpuid": f"0x{info.cpuid:08X}",
                "write_mode": self.write_mode}
            if self.loader_note:
                details["loader_fallback"] = self.loader_note
            details["checksum"] = "read-back" if self.crc is None else \
                "on-target CRC (RAM loader)" if self.crc is driver.loader else \
                "on-target CRC (CRC routine)"
            if self.crc_note:
                details["checksum_note"] = self.crc_note
            if info.clone:
                details["clone"] = info.clone
                details["clone_evidence"] = CLONE_SIGNS.get(info.clone, "")
            if self.voltage is not None:
                details["target_voltage"] = round(self.voltage, 2)
            self._identity = ChipIdentity(
                dev_id=info.dev_id, rev_id=info.rev_id, uid=info.uid.hex(),
                flash_size=info.flash_kib * 1024 if info.flash_kib is not None else None,
                rdp_level=rdp, probe=f"{self.candidate.kind.name} {link.version}",
                details=details)
            return self._identity

    def _check_flash_size(self, info: TargetInfo) -> None:
        override = self.options.get("flash-size-kib")
        size = int(override) if override is not None else info.flash_kib
        if size is None or size in (0, 0xFFFF):
            raise ChipMismatch(f"{self.chip.part}: the flash-size register reads "
                               f"{info.flash_kib!r}", hint="set flash-size-kib for parts "
                               "that hide their size", transport=self.request.link,
                               device=self.request.device)
        if size != self.chip.flash_kib:
            raise ChipMismatch(f"{self.chip.part} has {self.chip.flash_kib} KiB of flash but "
                               f"the chip reports {size} KiB", hint="name the right part in "
                               "the manifest, or set flash-size-kib if the register lies",
                               transport=self.request.link, device=self.request.device)

    def _protected(self, error: Exception, address: int | None) -> ReadProtected | None:
        _link, _target, driver = self._require()
        try:
            level = driver.read_option_bytes().rdp_level
        except TransportError:
            return None
        if level >= 1:
            where = f" at 0x{address:08X}" if address is not None else ""
            return ReadProtected(f"{self.chip.part} refuses flash access{where}: readout "
                                 f"protection level {level}",
                                 hint="remove it with option-bytes: {rdp: 0} (this mass-erases "
                                      "the chip)", transport=self.request.link,
                                 device=self.request.device)
        return None

    def erase(self, blocks: Sequence[FlashBlock], progress: Progress = no_progress) -> None:
        with self._errors():
            _link, _target, driver = self._require()
            if self._identity is None:
                self.identify()
            try:
                driver.erase(blocks, progress)
            except FlashError as error:
                protected = self._protected(error, error.address)
                if protected is not None:
                    raise protected from error
                raise

    def write(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        with self._errors():
            _link, _target, driver = self._require()
            if self._identity is None:
                self.identify()
            try:
                driver.write(address, data, progress)
            except (FlashError, MemoryFault, LoaderError) as error:
                protected = self._protected(error, getattr(error, "address", None))
                if protected is not None:
                    raise protected from error
                raise

    def read(self, address: int, length: int, progress: Progress = no_progress) -> bytes:
        with self._errors():
            link, _target, _driver = self._require()
            try:
                return link.read_memory(address, length,
                                        progress=lambda done: progress(done, length))
            except MemoryFault as error:
                protected = self._protected(error, error.address)
                if protected is not None:
                    raise protected from error
                raise

    def checksum(self, address: int, length: int) -> Checksum:
        """STM32 CRC-32 of a flash range, computed on the target.

        The words are summed on the core (the CRC routine, or the RAM loader's
        CRC); an unaligned tail is read back and padded with erased bytes, as
        the runner pads it. Without an on-target CRC (it failed, or this very
        call made it fail) the range is read back and summed here: slower,
        never wrong.
        """
        with self._errors():
            link, _target, _driver = self._require()
            erased = bytes([self.chip.flash.erased])
            whole = length - length % 4 if address % 4 == 0 and self.crc else 0
            try:
                crc = 0xFFFFFFFF
                if whole and self.crc is not None:
                    try:
                        crc = self.crc.crc32(address, whole)
                    except LoaderError as error:
                        self._crc_failed(error)
                        whole = 0
                rest = link.read_memory(address + whole, length - whole)
                value = stm32_crc32(rest + erased * (-len(rest) % 4), crc) if rest else crc
            except MemoryFault as error:
                protected = self._protected(error, error.address)
                if protected is not None:
                    raise protected from error
                raise
            return Checksum(algorithm="stm32-crc32", value=value)

    def reset(self, mode: ResetMode) -> None:
        with self._errors():
            link, target, _driver = self._require()
            self._sram_reclaimed()
            if mode is ResetMode.HALT:
                target.reset(halt=True)
            elif mode is ResetMode.HARDWARE and link.version.hardware >= 2:
                target.hardware_reset(halt=False)
            else:
                target.reset(halt=False)

    def read_option_bytes(self) -> OptionBytes:
        with self._errors():
            _link, _target, driver = self._require()
            return driver.read_option_bytes()

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        with self._errors():
            _link, target, driver = self._require()
            driver.write_option_bytes(change)
            self._sram_reclaimed()
            # Options load at the next reset (F0/F1/F3) or have reset the part (OBL_LAUNCH).
            target.reset(halt=True)
            self._identity = None

    def _sram_reclaimed(self) -> None:
        """After a reset the part's own code may run and overwrite SRAM: load again."""
        if self.driver is not None and self.driver.loader is not None:
            self.driver.loader.loaded = False
        if isinstance(self.crc, CrcRoutine):
            self.crc.loaded = False

    def close(self) -> None:
        link, self.link = self.link, None
        self.target = self.driver = None
        if link is None:
            return
        try:
            link.exit_debug()
        except TransportError:
            pass
        finally:
            link.framing.close()
