"""``flashrunner info``: connect to one chip, identify it, print what it says. Nothing is written.

The session is the link's own (the transport a run would open, on the
endpoints a run would use: docs/architecture.md, "The endpoint seam"), so
``info`` reads DEV_ID, revision, UID, flash size, RDP level and option bytes
exactly as ``run`` would before its first write. Two cases are reported
rather than refused:

- a chip other than the manifest's part: flagged, with the parts its DEV_ID
  names, and read again as that part so the rest of the report is right;
- a read-protected chip (RDP level 1): the link reports what the protection
  leaves readable (DEV_ID, the bootloader version, the level itself) and
  says what it could not read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from runner.errors import BusFault, ChipMismatch, PlanError, RunnerError, TransportError
from runner.plan import DevicePlan, Plan
from runner.romlinks import unreachable
from transports.base import ChipIdentity, LinkRequest, OptionBytes
from transports.chips import Chip, ChipDatabase, chip_database
from transports.endpoints import HARDWARE, Endpoints
from transports.registry import load_transport

__all__ = ["ChipInfo", "as_json", "chip_info", "plan_endpoints", "render_text"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChipInfo:
    """What one session read; ``mismatch`` set when the chip is not the expected part."""

    device: str
    link: str
    kind: str
    expected: str | None
    identity: ChipIdentity | None
    parts: tuple[str, ...] = ()
    family: str | None = None
    option_bytes: OptionBytes | None = None
    mismatch: str | None = None
    notes: tuple[str, ...] = ()


@contextmanager
def plan_endpoints(plan: Plan, world: Any = None) -> Iterator[Endpoints]:
    """The hardware, or ``plan``'s rehearsal bench (``world``, else a new one, closed after).

    In a rehearsal every device's simulated chip is its plan part before anything is
    opened, so identifying it can never make the simulation plug another part.
    """
    from runner.launch import compose_endpoints, needs_simulation, simulation_world

    if world is None and not needs_simulation(plan):
        yield HARDWARE
        return
    own = world is None
    world = simulation_world(plan) if world is None else world
    try:
        endpoints = compose_endpoints(plan, world)
        for device in plan.devices:
            # Each simulated chip is the manifest's part from the start, whatever part
            # a session later asks for (a board carrying another chip is substituted).
            world.chip(device.device, device.chip)
        yield endpoints
    finally:
        if own:
            world.close()


def _read(request: LinkRequest) -> tuple[ChipIdentity, OptionBytes | None, list[str]]:
    transport = load_transport(request.kind).open(request)
    notes: list[str] = []
    try:
        transport.connect()
        identity = transport.identify()
        options: OptionBytes | None = None
        try:
            options = transport.read_option_bytes()
        except TransportError as error:
            notes.append(f"option bytes not read: {error.message}")
        return identity, options, notes
    finally:
        transport.close()


def _representatives(chips: ChipDatabase) -> list[Chip]:
    """One part per flash controller: enough to read DEV_ID when no part is named."""
    seen: dict[str, Chip] = {}
    for chip in chips.chips.values():
        seen.setdefault(chip.controller, chip)
    return list(seen.values())


def _faulted_at_identity(error: BusFault, chip: Chip) -> bool:
    """``error`` is a memory fault at one of ``chip``'s identity registers."""
    address = getattr(error, "address", None)
    if address is None:
        return False
    registers = [chip.idcode_address, chip.flash_size_address & ~3,
                 *(chip.uid_address + offset for offset in chip.uid_offsets)]
    return address in [r for r in registers if r is not None]


def _guess(request: LinkRequest, device: DevicePlan, chips: ChipDatabase,
           fault: BusFault) -> tuple[ChipIdentity, OptionBytes | None, list[str], Chip]:
    """Read the chip as one part of each other flash-controller family until one answers.

    Not over DFU: the ROM does not report DEV_ID there, the link infers it from the
    flash layout and the part it was given, so a guess would name a wrong chip. A
    rehearsal's chip stays the manifest's part: a guess the simulation refuses
    (``ValueError``) is not that chip.
    """
    for guess in _representatives(chips):
        if guess.part == device.chip.part or \
                unreachable(guess, device.kind, device.options) is not None:
            continue
        try:
            identity, options, notes = _read(replace(request, chip=guess))
        except (TransportError, ValueError):
            continue
        return identity, options, notes, guess
    raise fault


def chip_info(device: DevicePlan, endpoints: Endpoints, *, expected: bool = True,
              chips: ChipDatabase | None = None) -> ChipInfo:
    """Connect to ``device`` over its link and read who it is.

    With ``expected`` false the plan's part is only a first guess (``info
    --link`` without ``--chip``) and no mismatch is flagged.

    Raises:
        PlanError: the link cannot reach the part's ROM (its kind or a missing address).
        RunnerError: the link could not be opened (no device, no permission, …).
    """
    chips = chips or chip_database()
    request = LinkRequest(device=device.device, link=device.link, kind=device.kind,
                          options=device.options, chip=device.chip, endpoints=endpoints)
    base = ChipInfo(device=device.device, link=device.link, kind=device.kind,
                    expected=device.chip.part if expected else None, identity=None)
    if "write-mode" in load_transport(device.kind).options_schema.get("properties", {}):
        # The register path: no RAM loader is put into the target's SRAM.
        request = replace(request, options={**device.options, "write-mode": "safe"})
    why = unreachable(device.chip, device.kind, device.options)
    if why is not None:  # a configuration error: nothing is opened, nothing guessed
        raise PlanError(f"device {device.device} on link {device.link}: {why}")
    try:
        identity, options, notes = _read(request)
        used = device.chip
    except ChipMismatch as error:
        if not expected:
            raise
        return replace(base, mismatch=error.message,
                       notes=(f"the link found another chip than {device.chip.part} and "
                              f"could not identify it further",))
    except BusFault as error:
        # Only a chip that answered, and faulted where the named part keeps its
        # identity (another line's DEV_ID/UID/flash-size address), is worth naming
        # by trying the other families; any other failure is the report.
        if device.kind == "dfu" or not _faulted_at_identity(error, device.chip):
            raise
        identity, options, notes, used = _guess(request, device, chips, error)
    parts = tuple(sorted((c.part for c in chips.by_dev_id(identity.dev_id)),
                         key=lambda part: part != device.chip.part))
    mismatch = None
    if expected and identity.dev_id != device.chip.dev_id:
        mismatch = (f"the manifest names {device.chip.part} (DEV_ID 0x{device.chip.dev_id:03X}) "
                    f"but the chip reports DEV_ID 0x{identity.dev_id:03X} "
                    f"({', '.join(parts) or 'a part flashrunner does not know'})")
    if parts and used.part not in parts:
        # Read it again as the part it is: UID and flash-size addresses differ per line.
        try:
            identity, options, notes = _read(replace(request, chip=chips.part(parts[0])))
        except (RunnerError, ValueError) as error:
            notes = [*notes, f"not read again as {parts[0]}: {error}"]
    family = chips.part(parts[0]).family if parts else None
    if identity.rdp_level == 1:
        notes.append("readout protection level 1: flash contents, and on some links the UID "
                     "and flash size, cannot be read")
    return replace(base, identity=identity, parts=parts, family=family,
                    option_bytes=options, mismatch=mismatch, notes=tuple(notes))


# ------------------------------------------------------------------------------ rendering


def _size(size: int | None) -> str:
    if size is None:
        return "unknown"
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


#: The table's width: a long option-byte block is laid out in rows that fit it.
COLUMNS = 100


def _option_rows(options: OptionBytes, column: int) -> list[str]:
    """The option bytes as hex, on one line when it fits, else in rows of 4-byte words.

    Rows start with their offset in the block; the words are the bytes in memory
    order, and the decoded fields follow, wrapped to the same width.
    """
    raw = options.raw.hex().upper()
    fields = ", ".join(f"{k}=0x{v:X}" for k, v in options.fields.items())
    line = raw + (f" ({fields})" if fields else "")
    room = COLUMNS - column
    if len(line) <= room:
        return [line]
    offset = f"+0x{len(options.raw) - 1:X}  "  # the widest offset sets its column
    words = max(1, (room - len(offset) + 1) // 9)
    words = 1 << (words.bit_length() - 1)  # a power of two: offsets stay round
    step = 4 * words
    rows = [f"+0x{start:0{len(offset) - 5}X}  " + " ".join(
                raw[at:at + 8] for at in range(2 * start, 2 * min(start + step,
                                                                  len(options.raw)), 8))
            for start in range(0, len(options.raw), step)]
    if fields:
        import textwrap

        rows += textwrap.wrap(f"({fields})", width=room, break_on_hyphens=False)
    return rows


def render_text(info: ChipInfo) -> str:
    rows: list[tuple[str, str]] = []
    identity = info.identity
    if identity is not None:
        part = ", ".join(p.upper() for p in info.parts) or "unknown part"
        rows.append(("chip", f"{part} (DEV_ID 0x{identity.dev_id:03X}"
                             f"{', family ' + info.family if info.family else ''})"))
        if identity.rev_id is not None:
            rows.append(("revision", f"0x{identity.rev_id:04X}"))
        rows.append(("uid", identity.uid or "not readable"))
        rows.append(("flash", _size(identity.flash_size)))
        rows.append(("rdp", "unknown" if identity.rdp_level is None
                     else f"level {identity.rdp_level}"))
        if info.option_bytes is not None and info.option_bytes.raw:
            rows.append(("option bytes", ""))  # laid out below, once the column is known
        if identity.bootloader_version:
            rows.append(("bootloader", identity.bootloader_version))
        if identity.probe:
            rows.append(("via", identity.probe))
        for key, value in identity.details.items():
            if key == "write_mode":  # info writes nothing; the session's mode is moot
                continue
            rows.append((key.replace("_", " "), str(value)))
    width = max((len(key) for key, _ in rows), default=0)
    expected = f", expected {info.expected}" if info.expected else ""
    lines = [f"{info.device} on link {info.link} ({info.kind}{expected})"]
    column = 2 + width + 2
    for key, value in rows:
        if key == "option bytes" and info.option_bytes is not None:
            first, *more = _option_rows(info.option_bytes, column)
            lines.append(f"  {key.ljust(width)}  {first}")
            lines += [" " * column + row for row in more]
        else:
            lines.append(f"  {key.ljust(width)}  {value}")
    if info.mismatch:
        lines.append(f"! chip differs: {info.mismatch}")
    lines += [f"  note: {note}" for note in info.notes]
    return "\n".join(lines) + "\n"


def as_json(info: ChipInfo) -> dict[str, Any]:
    identity = info.identity
    data: dict[str, Any] = {"device": info.device, "link": info.link, "kind": info.kind,
                            "expected_part": info.expected, "parts": list(info.parts),
                            "family": info.family, "mismatch": info.mismatch,
                            "notes": list(info.notes)}
    data["identity"] = identity.log_fields() if identity is not None else None
    if info.option_bytes is not None:
        data["option_bytes"] = {"raw": info.option_bytes.raw.hex(),
                                "rdp_level": info.option_bytes.rdp_level,
                                "fields": dict(info.option_bytes.fields)}
    return data


def render_json(infos: Sequence[ChipInfo]) -> str:
    return json.dumps([as_json(info) for info in infos], indent=2) + "\n"
