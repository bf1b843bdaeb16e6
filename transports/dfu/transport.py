"""``kind: dfu`` — the STM32 ROM DFU bootloader over USB (DFU 1.1 + DfuSe, AN3156).

The session finds the device by VID:PID, picks one by serial and/or USB port
path (refusing an ambiguous match), reads the raw configuration descriptor for
the DFU functional descriptor and the alternate settings' layout strings,
confirms the chip (:mod:`transports.dfu.identity`), then erases, writes and
reads through :class:`~transports.dfu.protocol.DfuProtocol`.

The pyusb backend and the clock come from the run's endpoint provider: libusb
and the host's clock on hardware; in a rehearsal the simulated USB bus with the
ROM DFU boards plugged when the run was composed, and the chip's clock, which
also passes while the host waits bwPollTimeout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import usb.core
import usb.util

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
    StaticCapabilities,
    no_progress,
)
from transports.chips import Chip, FlashBlock
from transports.dfu import identity
from transports.dfu.layout import ERASABLE, READABLE, WRITABLE, MemoryLayout, parse_layout
from transports.dfu.protocol import DfuProtocol
from transports.dfu.usb import (
    DFU_MODE_PROTOCOL,
    DeviceDescription,
    DfuCandidate,
    FunctionalDescriptor,
    LinkNames,
    find_candidates,
    read_description,
    select_candidate,
    usb_errors,
)
from transports.errors import ConnectError, ProtocolError, ReadProtected, Refused

__all__ = ["DfuTransport"]

_HEX16 = {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 0xFFFF},
                    {"type": "string", "pattern": "^(0[xX])?[0-9A-Fa-f]{1,4}$"}]}
_MAX_TRANSFER = 4096  # dfu-util caps wTransferSize here too
# USB full speed, for estimates: one 1 ms frame per control transfer plus
# ~51 us per 64-byte data packet (77 bytes on the bus at 12 Mbit/s).
_FRAME_S, _PACKET_S = 0.001, 77 * 8 / 12e6


def _usb_id(value: Any, default: int) -> int:
    if value is None:
        return default
    return value if isinstance(value, int) else int(str(value), 16)


def _control_s(nbytes: int) -> float:
    return _FRAME_S + -(-nbytes // 64) * _PACKET_S


class DfuTransport(StaticCapabilities):
    """A session with an STM32's ROM DFU bootloader."""

    kind: ClassVar[str] = "dfu"
    #: Endpoints a rehearsal reaches through the endpoint seam (docs/architecture.md).
    simulation: ClassVar[frozenset[str]] = frozenset({"usb_backend", "clock"})
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.ERASE_PAGES, Capability.ERASE_MASS, Capability.WRITE, Capability.READ,
        Capability.GO, Capability.OPTION_BYTES, Capability.READ_UNPROTECT, Capability.UID})
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "vid": {**_HEX16, "default": "0x0483", "description": "USB vendor ID."},
            "pid": {**_HEX16, "default": "0xDF11", "description": "USB product ID."},
            "serial": {"type": "string", "minLength": 1,
                       "description": "The DFU device's serial string. ROM serials can "
                                      "collide: prefer port-path on a line of boards."},
            "port-path": {"type": "string", "pattern": r"^[0-9]+-[0-9]+(\.[0-9]+)*$",
                          "description": "USB port path <bus>-<port>[.<port>...] "
                                         "(as dfu-util -p)."},
            "alt": {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 255},
                              {"type": "string", "minLength": 1}],
                    "description": "Alternate setting of the flash: number or region name "
                                   "(default: the one holding the chip's flash)."},
            "uid": {"type": "string", "pattern": "^[0-9A-Fa-f]{24}$",
                    "description": "Expected 96-bit UID; a different chip is refused."},
            "transfer-size": {"type": "integer", "minimum": 64, "maximum": _MAX_TRANSFER,
                              "description": "Lower the block size below the device's "
                                             "wTransferSize (never above it)."},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 5,
                        "description": "Seconds per USB control transfer."},
        },
    }

    def __init__(self, request: LinkRequest) -> None:
        self.request = request
        self.chip = request.chip
        self.names = LinkNames(link=request.link, device=request.device)
        options = request.options
        self.vid = _usb_id(options.get("vid"), 0x0483)
        self.pid = _usb_id(options.get("pid"), 0xDF11)
        self.serial: str | None = options.get("serial")
        self.port_path: str | None = options.get("port-path")
        self.backend: Any = None
        self.clock = request.endpoints.clock(request)
        self.sleep = self.clock.sleep
        self.timeout_ms = int(float(options.get("timeout", 5)) * 1000)
        self._device: Any = None
        self._protocol: DfuProtocol | None = None
        self._candidate: DfuCandidate | None = None
        self._product = ""
        self._bcd_device = 0
        self._functional: FunctionalDescriptor | None = None
        self._interface = 0
        self._layouts: dict[int, MemoryLayout] = {}
        self._flash_alt = 0
        self._option_alt: int | None = None
        self._identity: ChipIdentity | None = None

    # ------------------------------------------------------------------ class side

    @classmethod
    def speed_model(cls, options: Mapping[str, Any], chip: Chip) -> SpeedModel:
        size = int(options.get("transfer-size", 2048))
        # A write block: DNLOAD with data + two GETSTATUS; a read block: one UPLOAD.
        write_s = _control_s(size) + 2 * _control_s(6)
        return SpeedModel(connect_s=0.05, write_bytes_per_s=size / write_s,
                          read_bytes_per_s=size / _control_s(size),
                          erase_overhead_s=_control_s(5) + 2 * _control_s(6))

    @classmethod
    def resource_key(cls, link: str, options: Mapping[str, Any]) -> str:
        if options.get("port-path"):
            return f"usb:{options['port-path']}"
        vid, pid = _usb_id(options.get("vid"), 0x0483), _usb_id(options.get("pid"), 0xDF11)
        usb_id = f"{vid:04x}:{pid:04x}"
        # Without a port path the session may land on any device with this serial.
        return f"usb-dfu:{usb_id}:{options.get('serial', '*')}"

    @classmethod
    def open(cls, request: LinkRequest) -> DfuTransport:
        return cls(request)

    # ------------------------------------------------------------------ session set-up

    @property
    def protocol(self) -> DfuProtocol:
        if self._protocol is None:
            raise ConnectError(f"the DFU session of {self.names.device} is not connected",
                               transport=self.names.link, device=self.names.device)
        return self._protocol

    def connect(self) -> None:
        self.close()  # a reconnect starts from a fresh handle
        self.backend = self.request.endpoints.usb_backend(self.request)
        candidates = find_candidates(self.vid, self.pid, self.backend, self.names)
        chosen = select_candidate(candidates, vid=self.vid, pid=self.pid, serial=self.serial,
                                  port_path=self.port_path, names=self.names)
        self._candidate, self._device = chosen, chosen.device
        device = chosen.device
        description = read_description(device, self.names)
        self._check_interfaces(description.interfaces, description.functional)
        self._product, self._bcd_device = description.product, description.bcd_device
        self._interface = description.interfaces[0].number
        self._layouts = {}
        for alternate, text in description.alternates.items():
            try:
                self._layouts[alternate] = parse_layout(text)
            except ProtocolError:
                continue  # an alternate we cannot parse is one we do not use
        self._flash_alt = self._choose_flash_alt(description.alternates)
        self._option_alt = self._find_alt("Option Bytes", self.chip.option_bytes.address)
        identity.check_product(self._product, self.chip, self.names)
        identity.check_flash_layout(self._layouts[self._flash_alt], self.chip, self.names)
        with usb_errors("claiming the DFU interface", self.names):
            usb.util.claim_interface(device, self._interface)
        self._protocol = DfuProtocol(device, interface=self._interface,
                                     transfer_size=self._transfer_size(description),
                                     timeout_ms=self.timeout_ms, sleep=self.sleep,
                                     names=self.names, trace=self.request.trace)
        self._select_alt(self._flash_alt)
        self.protocol.ensure_idle()

    def _check_interfaces(self, interfaces: Sequence[Any],
                          functional: FunctionalDescriptor | None) -> None:
        where = {"transport": self.names.link, "device": self.names.device}
        if not interfaces:
            raise ConnectError(f"the USB device of {self.names.device} has no DFU interface",
                               hint="check vid/pid name the DFU bootloader", **where)
        if interfaces[0].protocol != DFU_MODE_PROTOCOL:
            raise ConnectError(f"the device of {self.names.device} runs its application "
                               f"(DFU run-time mode), not the ROM bootloader",
                               hint="hold BOOT0 high and reset the board", **where)
        if functional is None:
            raise ProtocolError(f"the DFU device of {self.names.device} has no DFU functional "
                                f"descriptor", command="GET_DESCRIPTOR",
                                transport=self.names.link, device=self.names.device)
        if not functional.is_dfuse:
            raise ConnectError(f"the DFU device of {self.names.device} speaks DFU "
                               f"{functional.dfu_version:#06x}, not ST's DfuSe (0x011a)",
                               hint="flashrunner drives STM32 ROM bootloaders; check vid/pid",
                               **where)
        self._functional = functional

    def _transfer_size(self, description: DeviceDescription) -> int:
        """Bytes per DNLOAD/UPLOAD: the functional descriptor's wTransferSize, the most
        the device takes (DFU 1.1 §4.1.3; some ROMs take only 1024); ``transfer-size``
        may lower it, never raise it."""
        assert description.functional is not None
        size = min(int(self.request.options.get("transfer-size", _MAX_TRANSFER)),
                   description.functional.transfer_size)
        return max(min(size, _MAX_TRANSFER), description.max_packet_size)

    def _find_alt(self, name: str, address: int) -> int | None:
        for alternate, layout in sorted(self._layouts.items()):
            if layout.name.lower() == name.lower() and layout.covers(address):
                return alternate
        return None

    def _choose_flash_alt(self, names: Mapping[int, str]) -> int:
        """The alternate setting holding the chip's flash: the ``alt`` option, else found."""
        wanted = self.request.options.get("alt")
        where = {"transport": self.names.link, "device": self.names.device}
        offers = "; ".join(names.values())
        candidates = sorted(names)
        if wanted is not None:
            candidates = [alt for alt in candidates if wanted == alt or (
                isinstance(wanted, str)
                and names[alt].lstrip("@").split("/")[0].strip().lower()
                == wanted.strip().lower())]
            if not candidates:
                raise ConnectError(f"the DFU device of {self.names.device} has no alternate "
                                   f"setting {wanted!r} (it offers: {offers})", **where)
        for alternate in candidates:
            layout = self._layouts.get(alternate)
            if layout is not None and layout.covers(self.chip.flash.base):
                return alternate
        for alternate in candidates:
            if alternate not in self._layouts:
                parse_layout(names[alternate])  # raises, saying what is malformed
        chosen = f"alternate setting {wanted!r}" if wanted is not None else "no alternate setting"
        raise ConnectError(f"{chosen} of {self.names.device}'s DFU device holds its flash at "
                           f"0x{self.chip.flash.base:08X} (it offers: {offers})",
                           hint="name the Internal Flash alternate (alt: 0)", **where)

    def _select_alt(self, alternate: int) -> None:
        with usb_errors("SET_INTERFACE", self.names):
            self._device.set_interface_altsetting(interface=self._interface,
                                                  alternate_setting=alternate)

    # ------------------------------------------------------------------ identity

    def identify(self) -> ChipIdentity:
        protocol = self.protocol
        chip = self.chip
        uid: bytes | None = None
        flash_kib: int | None = None
        rdp: int | None = None
        unreadable: str | None = None
        try:
            if chip.uid_offsets == (0, 4, 8):
                uid = protocol.upload(chip.uid_address, 12)
            else:
                uid = b"".join(protocol.upload(chip.uid_address + o, 4) for o in chip.uid_offsets)
            rdp = 0
            flash_kib = int.from_bytes(protocol.upload(chip.flash_size_address, 2), "little")
        except ReadProtected:
            rdp = 1
            unreadable = "readout protection hides it"
        except Refused as refused:
            # AN2662 lists system memory among the Set Address Pointer targets, but some
            # ROMs take only addresses inside the selected alternate's layout (errTARGET):
            # the chip is then known by its product string, layout and serial alone.
            if uid is None:
                unreadable = (f"its ROM refused to read the UID register at "
                              f"0x{chip.uid_address:08X} ({refused})")
        if self._option_alt is not None:
            rdp = self.read_option_bytes().rdp_level
        identity.check_registers(uid=uid, flash_kib=flash_kib,
                                 expected_uid=self.request.options.get("uid"),
                                 chip=chip, names=self.names, unreadable=unreadable)
        candidate = self._candidate
        assert candidate is not None and self._functional is not None
        details: dict[str, Any] = {
            "serial": candidate.serial or "", "port_path": candidate.port_path,
            "product": self._product, "flash_layout": self._layouts[self._flash_alt].text,
            "transfer_size": protocol.transfer_size,
            "dev_id_source": "product string" if identity.product_dev_id(self._product)
            else "flash layout and chip database"}
        if uid is not None:
            serial = (candidate.serial or "").upper()
            details["serial_matches_uid"] = identity.rom_serial(uid) == serial
        elif unreadable is not None:
            details["uid_unread"] = unreadable
            details["uid_source"] = "USB serial (48 of the UID's 96 bits)"
        self._identity = ChipIdentity(
            dev_id=identity.product_dev_id(self._product) or chip.dev_id,
            uid=uid.hex() if uid is not None else "",
            flash_size=flash_kib * 1024 if flash_kib is not None else None, rdp_level=rdp,
            bootloader_version=f"DfuSe {self._functional.dfu_version >> 8}."
                               f"{self._functional.dfu_version & 0xFF:x} "
                               f"(bcdDevice 0x{self._bcd_device:04X})",
            probe=f"USB DFU {self.vid:04x}:{self.pid:04x} {candidate.describe()}",
            details=details)
        return self._identity

    def _confirmed(self) -> None:
        """Nothing is erased or written before the chip is confirmed."""
        if self._identity is None:
            self.identify()

    # ------------------------------------------------------------------ flash

    def _require(self, address: int, length: int, flag: int, verb: str) -> None:
        layout = self._layouts[self._flash_alt]
        if not layout.allows(address, length, flag):
            raise Refused(f"cannot {verb} 0x{address:08X}+{length} on {self.names.device}: "
                          f"the device's layout {layout.text!r} does not allow it",
                          command=verb, transport=self.names.link, device=self.names.device,
                          hint="keep images inside the chip's flash")

    def erase(self, blocks: Sequence[FlashBlock], progress: Progress = no_progress) -> None:
        self._confirmed()
        if not blocks:
            self.protocol.mass_erase()
            progress(1, 1)
            return
        for done, block in enumerate(blocks, 1):
            self._require(block.address, block.size, ERASABLE, "erase")
            self.protocol.erase_page(block.address)
            progress(done, len(blocks))

    def write(self, address: int, data: bytes, progress: Progress = no_progress) -> None:
        self._confirmed()
        self._require(address, len(data), WRITABLE, "write")
        self.protocol.download(address, data, progress)

    def read(self, address: int, length: int, progress: Progress = no_progress) -> bytes:
        self._require(address, length, READABLE, "read")
        return self.protocol.upload(address, length, progress)

    def checksum(self, address: int, length: int) -> Checksum:
        raise Refused("the DFU bootloader has no checksum command", command="checksum",
                      transport=self.names.link, device=self.names.device,
                      hint="verify by read-back (verify: {method: readback})")

    def reset(self, mode: ResetMode) -> None:
        if mode is not ResetMode.GO:
            raise Refused(f"the DFU bootloader cannot reset {mode.value}; it can only "
                          f"leave to the application", command="reset",
                          transport=self.names.link, device=self.names.device,
                          hint="use reset: {mode: go} with kind dfu")
        self.protocol.leave(self.chip.flash.base)
        self.close()

    # ------------------------------------------------------------------ option bytes

    def read_option_bytes(self) -> OptionBytes:
        alternate = self._option_alt_or_fail()
        ob = self.chip.option_bytes
        self._select_alt(alternate)
        try:
            raw = self.protocol.upload(ob.address, ob.size)
        finally:
            self._select_alt(self._flash_alt)
        return OptionBytes(raw=raw, rdp_level=ob.level_of(raw))

    def write_option_bytes(self, change: OptionBytesChange) -> None:
        link, device = self.names.link, self.names.device
        if change.fields:
            raise Refused(f"DFU sets only the RDP level; cannot set "
                          f"{', '.join(sorted(change.fields))}", command="option-bytes",
                          hint="set other option bytes over ST-Link or USART",
                          transport=link, device=device)
        if change.rdp_level is None:
            return
        if change.rdp_level == 2 and not change.confirmed_irreversible:
            raise Refused("RDP level 2 is irreversible and was not confirmed",
                          command="option-bytes", hint="add confirm: irreversible",
                          transport=link, device=device)
        current = self.read_option_bytes()
        if current.rdp_level == change.rdp_level:
            return
        if change.rdp_level == 0:
            self.read_unprotect()
            return
        ob = self.chip.option_bytes
        image = bytearray(current.raw)
        rdp = ob.rdp_level2 if change.rdp_level == 2 else 0xBB
        image[ob.rdp_offset] = rdp  # F2/F4/F7/H7: byte 0 is USER/BOR and stays as read
        if self.chip.controller in ("f0", "f1", "f1xl") and len(image) > ob.rdp_offset + 1:
            image[ob.rdp_offset + 1] = rdp ^ 0xFF  # RM0008 §2.5: each byte, then its complement
        self._select_alt(self._option_alt_or_fail())
        self.protocol.write_and_reset(ob.address, bytes(image))
        if change.rdp_level == 2:
            self.close()  # level 2 disables the ROM bootloader for good: nothing comes back
            return
        self._reenumerate()

    def read_unprotect(self) -> None:
        """Remove readout protection: the ROM mass-erases the flash and resets."""
        self.protocol.read_unprotect()
        self._reenumerate()

    def _option_alt_or_fail(self) -> int:
        if self._option_alt is None:
            raise Refused(f"the DFU device of {self.names.device} offers no Option Bytes "
                          f"alternate setting", command="option-bytes",
                          transport=self.names.link, device=self.names.device,
                          hint="change option bytes over ST-Link or USART")
        return self._option_alt

    def _reenumerate(self) -> None:
        """After a chip reset: find the same port again and start a new session.

        Read unprotect mass-erases before the ROM comes back, so the wait
        allows for twice the datasheet mass-erase time.
        """
        wait_s = 5.0 + 2 * self.chip.timing.mass_erase_ms / 1000
        candidate = self._candidate
        self.close()
        assert candidate is not None
        self.port_path = candidate.port_path
        waited = 0.0
        while True:
            found = [c for c in find_candidates(self.vid, self.pid, self.backend, self.names)
                     if c.port_path == candidate.port_path]
            if found or waited >= wait_s:
                break
            self.sleep(0.1)
            waited += 0.1
        self._identity = None
        self.connect()

    def close(self) -> None:
        device, self._device, self._protocol = self._device, None, None
        if device is None:
            return
        try:
            usb.util.release_interface(device, self._interface)
        except (usb.core.USBError, ValueError):
            pass  # the device may already have left the bus
        usb.util.dispose_resources(device)
