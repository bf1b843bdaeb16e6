"""Per-unit data: a value computed for each chip and written at an address.

Three sources, each producing the bytes to write and, for the audit log, the
value in readable form and where it came from (:class:`UnitValue`):

* :class:`CounterSource` — serial numbers from a station-wide counter
  (:class:`runner.serials.SerialCounter`: atomic, journaled, never reused);
* :class:`UidSource` — derived from the chip's 96-bit unique ID: the UID
  itself, its CRC-32, a sha256 prefix, or an ASCII template of them;
* :class:`CsvSource` — a column of a CSV file, the row chosen by the chip's
  UID or taken in order (rows consumed through a counter, same atomicity).

Numbers become bytes through an :class:`Encoding`: binary of ``width`` bytes
in an ``endianness``, or ASCII through a printf-style ``template``
(``"SN-%06d"``), NUL-padded to ``width`` when one is given.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import string
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from runner.errors import UnitDataError
from runner.inputs import DATA_FILE_LIMIT, read_input
from runner.serials import SerialCounter

__all__ = [
    "AssignedSource",
    "CounterSource",
    "CsvSource",
    "Encoding",
    "UidSource",
    "UnitSource",
    "UnitValue",
    "check_source",
    "compute_unit_value",
    "describe_source",
    "rehearsal_source",
    "source_from_mapping",
    "unit_size",
]

Endianness = Literal["little", "big"]

#: The largest field (schema ``field-width``).
_MAX_WIDTH = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitValue:
    """What to write (``data``) and, for the log, the value and its source."""

    data: bytes
    value: str
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Encoding:
    """Numbers and text → bytes. ``template`` set: ASCII; else ``width`` binary bytes."""

    width: int | None = None
    endianness: Endianness = "little"
    template: str | None = None

    def check(self) -> None:
        """Raise :class:`UnitDataError` for a template or width that cannot work."""
        if self.width is not None and self.width <= 0:
            raise UnitDataError(f"width {self.width} must be at least 1 byte")
        if self.template is not None:
            _bounded(self.template, self.template, printf=True)
            try:
                self.template % 0
            except (TypeError, ValueError) as error:
                raise UnitDataError(f"template {self.template!r} is not a printf-style "
                                    f"template for one number: {error}",
                                    hint="use one conversion, e.g. 'SN-%06d'") from error

    def pad(self, text: str) -> bytes:
        try:
            data = text.encode("ascii")
        except UnicodeEncodeError as error:
            raise UnitDataError(f"{text!r} is not ASCII", hint="write the value in ASCII"
                                ) from error
        if self.width is None:
            return data
        if len(data) > self.width:
            raise UnitDataError(f"{text!r} is {len(data)} bytes, longer than the field's "
                                f"{self.width}", hint="widen the field or shorten the value")
        return data.ljust(self.width, b"\0")

    def number(self, value: int) -> bytes:
        if self.template is not None:
            return self.pad(self.template % value)
        width = self.width if self.width is not None else 4
        try:
            return value.to_bytes(width, self.endianness)
        except OverflowError as error:
            raise UnitDataError(f"{value} does not fit in {width} bytes",
                                hint="widen the field, or start a new counter range") from error


@dataclass(frozen=True, slots=True, kw_only=True)
class CounterSource:
    """``{counter: {state: serials.json, start: 1000, width: 4, endianness: little}}``."""

    state: Path
    start: int = 0
    step: int = 1
    limit: int | None = None
    encoding: Encoding = field(default_factory=Encoding)

    @property
    def counter(self) -> SerialCounter:
        return SerialCounter(state=self.state, start=self.start, step=self.step, limit=self.limit)


UidDerivation = Literal["uid", "crc32", "sha256"]


@dataclass(frozen=True, slots=True, kw_only=True)
class UidSource:
    """``{uid: {derive: crc32}}`` or ``{uid: {template: "ID-{uid}"}}``.

    ``derive``: ``uid`` (its 12 bytes as read), ``crc32`` (4 bytes in
    ``endianness``), ``sha256`` (the first ``length`` bytes of the digest).
    ``template`` instead gives ASCII with ``{uid}`` (hex), ``{crc32}`` (a number:
    ``{crc32:08X}``) and ``{sha256}`` (hex); NUL-padded to ``width`` if set.
    """

    derive: UidDerivation = "uid"
    length: int | None = None
    template: str | None = None
    width: int | None = None
    endianness: Endianness = "little"


CsvEncoding = Literal["ascii", "hex", "int"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvSource:
    """``{csv: {file: units.csv, key: uid, column: calibration}}``.

    ``key: uid`` picks the row whose ``key_column`` (default ``uid``) equals
    the chip's UID; without ``key``, rows are used in order and ``state``
    (default ``<file>.state.json``) records how many were used. The cell is
    written as ``ascii`` text, ``hex`` bytes, or an ``int`` through ``encoding``.
    """

    file: Path
    column: str
    key: Literal["uid"] | None = None
    key_column: str = "uid"
    state: Path | None = None
    cell: CsvEncoding = "ascii"
    encoding: Encoding = field(default_factory=Encoding)

    @property
    def state_path(self) -> Path:
        return self.state if self.state is not None else \
            self.file.with_name(self.file.name + ".state.json")


@dataclass(frozen=True, slots=True, kw_only=True)
class AssignedSource:
    """``{assigned: {folder, key, size}}``: a value handed out by the host of a run on stations.

    A station's run never allocates serial numbers itself (two stations would
    hand out the same): for each unit it asks the host by writing
    ``<folder>/<device>@<key>.request`` and waits for ``<device>@<key>.value``
    (``{"data": hex, "value": text, "source": text}``), which the host writes
    after allocating the value from its own journaled counter.
    """

    folder: Path
    key: str
    size: int
    timeout_s: float = 300.0


UnitSource = CounterSource | UidSource | CsvSource | AssignedSource


def _uid_bytes(uid: str) -> bytes:
    try:
        data = bytes.fromhex(uid)
    except ValueError as error:
        raise UnitDataError(f"the chip's UID {uid!r} is not hexadecimal") from error
    if not data:
        raise UnitDataError("the link did not report the chip's UID, which this value needs",
                            hint="use a link that reads the UID, or a counter source")
    return data


def _from_uid(source: UidSource, uid: str) -> UnitValue:
    raw = _uid_bytes(uid)
    crc = zlib.crc32(raw)
    digest = hashlib.sha256(raw).digest()
    if source.template is not None:
        try:
            text = source.template.format(uid=raw.hex(), crc32=crc,
                                          sha256=digest.hex())
        except (KeyError, IndexError, ValueError) as error:
            raise UnitDataError(f"template {source.template!r} is invalid: {error}",
                                hint="use the fields {uid}, {crc32} and {sha256}") from error
        data = Encoding(width=source.width).pad(text)
        return UnitValue(data=data, value=text, source=f"template of UID {raw.hex()}")
    if source.derive == "crc32":
        data = crc.to_bytes(4, source.endianness)
        return UnitValue(data=data, value=f"0x{crc:08X}",
                         source=f"CRC-32 of UID {raw.hex()}")
    if source.derive == "sha256":
        data = digest[:source.length or len(digest)]
        return UnitValue(data=data, value=data.hex(),
                         source=f"sha256 of UID {raw.hex()} ({len(data)} bytes)")
    return UnitValue(data=raw, value=raw.hex(), source="chip UID")


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and (line number, row) pairs of a CSV file."""
    hint = "check the file exists and is UTF-8 CSV with a header"
    try:
        text = read_input(path, limit=DATA_FILE_LIMIT).decode("utf-8")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = [(reader.line_num, dict(row)) for row in reader]
        header = list(reader.fieldnames or [])
    except OSError as error:
        raise UnitDataError(f"cannot read {path}: {error.strerror or error}", source=str(path),
                            hint=hint) from error
    except UnicodeDecodeError as error:
        raise UnitDataError(f"cannot read {path}: not UTF-8 text (byte {error.start})",
                            source=str(path), hint=hint) from error
    except csv.Error as error:
        # Say where, not what: the file may be anything the user can read.
        raise UnitDataError(f"cannot read {path}: not CSV (line {reader.line_num})",
                            source=str(path), hint=hint) from error
    return header, rows


def _cell_bytes(source: CsvSource, text: str, where: str) -> bytes:
    try:
        if source.cell == "hex":
            data = bytes.fromhex(text)
        elif source.cell == "int":
            number = int(text, 0)
    except ValueError as error:
        raise UnitDataError(f"{where}: {text!r} is not a valid {source.cell} value",
                            source=str(source.file)) from error
    if source.cell == "int":
        return source.encoding.number(number)
    if source.cell == "ascii":
        return source.encoding.pad(text)
    width = source.encoding.width
    if width is not None and len(data) != width:
        raise UnitDataError(f"{where}: {text!r} is {len(data)} bytes, the field is {width}",
                            source=str(source.file))
    return data


def _from_csv(source: CsvSource, *, device: str, run_id: str, uid: str) -> UnitValue:
    header, rows = _read_csv(source.file)
    _check_columns(source, header)
    if source.key == "uid":
        wanted = _uid_bytes(uid).hex()
        matches = [(line, row) for line, row in rows
                   if (row.get(source.key_column) or "").strip().lower() == wanted]
        if not matches:
            raise UnitDataError(f"{source.file} has no row for UID {wanted}",
                                source=str(source.file),
                                hint="add the unit to the file before flashing it")
        if len(matches) > 1:
            lines = ", ".join(str(line) for line, _ in matches)
            raise UnitDataError(f"{source.file} has several rows for UID {wanted} "
                                f"(lines {lines})", source=str(source.file))
        line, row = matches[0]
        detail = f"uid {wanted}"
    else:
        if not rows:
            raise UnitDataError(f"{source.file} has no rows", source=str(source.file))
        counter = SerialCounter(state=source.state_path, start=0, limit=len(rows) - 1)
        index = counter.allocate(device=device, run_id=run_id).value
        line, row = rows[index]
        detail = f"row {index + 1} of {len(rows)}"
    text = (row.get(source.column) or "").strip()
    where = f"{source.file}:{line}"
    data = _cell_bytes(source, text, where)
    return UnitValue(data=data, value=text,
                     source=f"{where} column {source.column} ({detail})")


def compute_unit_value(source: UnitSource, *, device: str, run_id: str,
                       uid: str = "") -> UnitValue:
    """The value for one unit; counters and in-order CSV rows are consumed here."""
    if isinstance(source, CounterSource):
        source.encoding.check()
        allocation = source.counter.allocate(device=device, run_id=run_id,
                                             usable=_fits(source))
        data = source.encoding.number(allocation.value)
        shown = source.encoding.template % allocation.value if source.encoding.template \
            else str(allocation.value)
        return UnitValue(data=data, value=shown, source=f"counter {source.state}")
    if isinstance(source, UidSource):
        return _from_uid(source, uid)
    if isinstance(source, AssignedSource):
        return _assigned(source, device)
    return _from_csv(source, device=device, run_id=run_id, uid=uid)


def _assigned(source: AssignedSource, device: str) -> UnitValue:
    import json
    import time

    name = f"{device}@{source.key}"
    answer = source.folder / f"{name}.value"
    if not answer.exists():
        source.folder.mkdir(parents=True, exist_ok=True)
        request = source.folder / f"{name}.request"
        partial = request.with_name(request.name + ".part")
        partial.write_text(json.dumps({"device": device, "key": source.key}) + "\n")
        partial.replace(request)
    deadline = time.monotonic() + source.timeout_s
    while not answer.exists():
        if time.monotonic() > deadline:
            raise UnitDataError(f"the host assigned no value for {name} within "
                                f"{source.timeout_s:g} s", source=str(answer),
                                hint="the host lost contact with this station; nothing was "
                                     "written for this unit")
        time.sleep(0.02)
    try:
        given = json.loads(answer.read_text("utf-8"))
        data = bytes.fromhex(given["data"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UnitDataError(f"{answer} is not a value the host wrote: {error}",
                            source=str(answer)) from error
    return UnitValue(data=data, value=str(given.get("value", data.hex())),
                     source=str(given.get("source", "assigned by the host")))


def unit_size(source: UnitSource) -> int:
    """Bytes the value takes in flash, known before any value is computed.

    Raises :class:`UnitDataError` when the size depends on the value (an ASCII
    template or a CSV cell without ``width``): a field in flash has a fixed size.
    """
    if isinstance(source, CounterSource):
        source.encoding.check()
        if source.encoding.template is not None and source.encoding.width is None:
            raise UnitDataError("a counter written as text needs `width` (the field's size)",
                                hint="add e.g. `width: 12` beside the template")
        return source.encoding.width or 4
    if isinstance(source, UidSource):
        if source.template is not None:
            if source.width is None:
                raise UnitDataError("a UID template needs `width` (the field's size)",
                                    hint="add e.g. `width: 24` beside the template")
            return source.width
        return {"uid": 12, "crc32": 4}.get(source.derive) or source.length or 32
    if isinstance(source, AssignedSource):
        return source.size
    if source.encoding.width is None:
        raise UnitDataError(f"the CSV column {source.column} needs `width` (the field's size)",
                            hint="add e.g. `width: 16`")
    source.encoding.check()
    return source.encoding.width


def _encoding(data: Mapping[str, Any]) -> Encoding:
    return Encoding(width=data.get("width"), endianness=data.get("endianness", "little"),
                    template=data.get("template"))


def source_from_mapping(data: Mapping[str, Any], base: Path) -> UnitSource:
    """Build a source from its manifest form (already schema-checked); paths from ``base``.

    ``{counter: {state, start, step, limit, width, endianness, template}}``,
    ``{uid: {derive, length, template, width, endianness}}`` or
    ``{csv: {file, column, key, key-column, state, cell, width, endianness}}``.
    """
    if "counter" in data:
        spec = data["counter"]
        return CounterSource(state=base / spec["state"], start=spec.get("start", 0),
                             step=spec.get("step", 1), limit=spec.get("limit"),
                             encoding=_encoding(spec))
    if "assigned" in data:
        spec = data["assigned"]
        return AssignedSource(folder=base / spec["folder"], key=spec["key"], size=spec["size"])
    if "uid" in data:
        spec = data["uid"] or {}
        return UidSource(derive=spec.get("derive", "uid"), length=spec.get("length"),
                         template=spec.get("template"), width=spec.get("width"),
                         endianness=spec.get("endianness", "little"))
    spec = data["csv"]
    state = spec.get("state")
    return CsvSource(file=base / spec["file"], column=spec["column"], key=spec.get("key"),
                     key_column=spec.get("key-column", "uid"),
                     state=base / state if state else None, cell=spec.get("cell", "ascii"),
                     encoding=_encoding(spec))


def describe_source(source: UnitSource) -> str:
    """The source in a few words, for plans (before any value exists)."""
    if isinstance(source, CounterSource):
        return f"counter {source.state.name} from {source.start}"
    if isinstance(source, UidSource):
        if source.template is not None:
            return f"template {source.template!r} of the chip UID"
        return "the chip UID" if source.derive == "uid" else f"{source.derive} of the chip UID"
    if isinstance(source, AssignedSource):
        return "a value assigned by the run's host"
    how = "by UID" if source.key == "uid" else "next unused row"
    return f"{source.file.name} column {source.column} ({how})"


def _fits(source: CounterSource) -> Callable[[int], object]:
    """A check that a counter value can be written in the source's field."""
    def check(value: int) -> object:
        try:
            return source.encoding.number(value)
        except UnitDataError as error:
            raise UnitDataError(
                f"counter {source.state}: the next value {value} cannot be written: "
                f"{error.message}; nothing was allocated", source=str(source.state),
                hint="widen the field (`width`), or start a new range with a new state "
                     "file and `start`") from error
    return check


def check_source(source: UnitSource) -> None:
    """What can be checked before a run.

    A counter's first and last values, and the next one its state files hold,
    fit its field; a UID template names only its fields; a CSV file is readable
    and has the columns named.
    """
    if isinstance(source, CounterSource):
        check = _fits(source)
        check(source.start)
        if source.limit is not None:
            check(source.limit)
        check(source.counter.stored_next())
        return
    if isinstance(source, UidSource):
        _check_uid_template(source.template)
        return
    if isinstance(source, AssignedSource):
        return
    _check_columns(source, _read_csv(source.file)[0])


_UID_FIELDS = ("uid", "crc32", "sha256")


def _check_uid_template(template: str | None) -> None:
    if template is None:
        return
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        raise UnitDataError(f"template {template!r} is malformed: {error}",
                            hint="write fields as {uid}, {crc32:08X}") from error
    for _, name, spec, _ in parts:
        if name is None:
            continue
        if name not in _UID_FIELDS:
            raise UnitDataError(f"template {template!r} names {{{name}}}",
                                hint="use the fields {uid}, {crc32} and {sha256}")
        _bounded(spec or "", template)


def _bounded(spec: str, template: str, *, printf: bool = False) -> None:
    """No width or precision in a template is larger than the largest field."""
    found = re.findall(r"%[#0 +\-]*(\d*)(?:\.(\d*))?", spec) if printf \
        else [(digits, "") for digits in re.findall(r"\d+", spec)]
    if any(int(digits) > _MAX_WIDTH for pair in found for digits in pair if digits):
        raise UnitDataError(f"template {template!r} asks for more than {_MAX_WIDTH} "
                            f"characters", hint="a field holds at most 4096 bytes")


def _check_columns(source: CsvSource, header: list[str]) -> None:
    wanted = [source.column] + ([source.key_column] if source.key == "uid" else [])
    missing = [column for column in wanted if column not in header]
    if missing:
        # The header is not shown: a file without the expected columns may be any file.
        raise UnitDataError(f"{source.file} has no column {', '.join(map(repr, missing))} "
                            f"in its first line ({len(header)} columns)",
                            source=str(source.file),
                            hint="the first line of the CSV file names its columns")


def _rehearsal_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rehearsal{path.suffix}")


def rehearsal_source(source: UnitSource) -> UnitSource:
    """The source a simulated run uses: the same, but consuming nothing real.

    A rehearsal must not burn production serial numbers or CSV rows, so its
    counters live in ``<state>.rehearsal.<ext>`` beside the real ones.
    """
    if isinstance(source, CounterSource):
        return replace(source, state=_rehearsal_path(source.state))
    if isinstance(source, CsvSource) and source.key is None:
        return replace(source, state=_rehearsal_path(source.state_path))
    return source
