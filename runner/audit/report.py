"""``flashrunner audit report``: one row per unit over many logs.

Each row is one device of one run: when, where (station), by whom
(operator), which chip (UID, DEV_ID), which images (name and sha256), how it
was verified, its RDP level and option bytes, its unit-data values, its
outcome and the chain status of the log it comes from (``audit verify``'s
verdict, without a key). Filters answer the recall question: ``--image
SHA256`` lists every UID that received that image.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runner.audit.records import RunRecord, UnitRecord, read_run
from runner.audit.verify import verify_log
from runner.errors import PlanError

__all__ = ["COLUMNS", "ReportRow", "collect_logs", "filter_rows", "render", "report_rows",
           "sort_rows"]

#: The report's columns, in order.
COLUMNS = ("time", "run_id", "station", "operator", "manifest", "device", "chip", "uid",
           "images", "verify", "rdp_level", "option_bytes", "unit_data", "outcome", "error",
           "chain")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRow:
    """One unit of one run, flattened for people and spreadsheets."""

    time: str
    run_id: str
    station: str
    operator: str
    manifest: str
    device: str
    chip: str
    uid: str
    #: ``name@sha256`` of each image written, ``;``-separated in the text forms.
    images: tuple[tuple[str, str], ...]
    verify: str
    rdp_level: str
    option_bytes: str
    unit_data: str
    outcome: str
    error: str
    chain: str
    log: str

    def cells(self) -> list[str]:
        values = asdict(self)
        values["images"] = "; ".join(f"{name}@{digest}" for name, digest in self.images)
        return [str(values[column]) for column in COLUMNS]


def collect_logs(paths: Sequence[Path]) -> list[Path]:
    """The log files named, and every ``*.jsonl`` under the folders named (not ledgers)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.jsonl")
                            if p.name != "ledger.jsonl" and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise PlanError(f"{path}: no such log file or folder")
    return found


def _unit_row(run: RunRecord, unit: UnitRecord, chain: str) -> ReportRow:
    verify = f"{unit.verify_method} {unit.verify_result}".strip() if unit.verify_method \
        else unit.verify_result
    option_bytes = ""
    if unit.option_bytes is not None:
        fields = ", ".join(f"{k}={v}" for k, v in sorted(unit.option_bytes["fields"].items()))
        option_bytes = f"rdp={unit.option_bytes.get('rdp_level')}" + (f" {fields}" if fields
                                                                       else "")
    return ReportRow(
        time=unit.started or run.started, run_id=run.run_id, station=unit.station or run.station,
        operator=run.operator, manifest=run.manifest, device=unit.device, chip=unit.chip,
        uid=unit.uid, images=tuple((i["name"], i["sha256"]) for i in unit.images),
        verify=verify, rdp_level="" if unit.rdp_level is None else str(unit.rdp_level),
        option_bytes=option_bytes,
        unit_data="; ".join(f"{k}={v}" for k, v in unit.unit_data.items()),
        outcome=unit.outcome, error=unit.error or unit.reason, chain=chain, log=str(run.path))


def report_rows(logs: Iterable[Path]) -> list[ReportRow]:
    """A row per unit of every log (logs that hold no run are skipped)."""
    rows: list[ReportRow] = []
    for path in logs:
        run = read_run(path)
        if not run.run_id:
            continue
        chain = verify_log(path).status
        rows += [_unit_row(run, unit, chain) for unit in run.units]
    return rows


def filter_rows(rows: Iterable[ReportRow], *, image: str | None = None,
                uid: str | None = None, device: str | None = None,
                since: str | None = None, station: str | None = None) -> list[ReportRow]:
    """Rows matching every filter given (``image``: a name, or a sha256 or its prefix)."""
    def keep(row: ReportRow) -> bool:
        if image and not any(image in (name, digest) or (len(image) >= 8 and
                                                         digest.startswith(image.lower()))
                             for name, digest in row.images):
            return False
        if uid and row.uid.lower() != uid.lower():
            return False
        if device and row.device != device:
            return False
        if station and row.station != station:
            return False
        return not (since and row.time < since)
    return [row for row in rows if keep(row)]


def sort_rows(rows: Iterable[ReportRow], by: str) -> list[ReportRow]:
    """``unit``: by UID then time; ``device``: by device then time; ``image``: one row per
    image written, by image then UID."""
    if by == "image":
        exploded = [ReportRow(**{**asdict(row), "images": (image,)})
                    for row in rows for image in row.images]
        return sorted(exploded, key=lambda r: (r.images[0][1], r.images[0][0], r.uid, r.time,
                                               r.device))
    if by == "device":
        return sorted(rows, key=lambda r: (r.device, r.time, r.run_id))
    return sorted(rows, key=lambda r: (r.uid, r.time, r.run_id, r.device))


def _table(rows: Sequence[ReportRow], columns: Sequence[str]) -> str:
    grid = [list(columns)] + [[cell for cell, column in zip(row.cells(), COLUMNS, strict=True)
                               if column in columns] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    return "".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths,
                                                                      strict=True)).rstrip()
                   + "\n" for line in grid)


def _markdown(rows: Sequence[ReportRow]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(cell(c) for c in row.cells()) + " |" for row in rows]
    return "\n".join(out) + "\n"


#: What the table form shows (the full set is in csv, json and md).
_TABLE_COLUMNS = ("time", "station", "device", "chip", "uid", "images", "verify", "outcome",
                  "chain")


def render(rows: Sequence[ReportRow], fmt: str) -> str:
    """The rows as ``table``, ``csv``, ``json`` or ``md``."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(row.cells() for row in rows)
        return buffer.getvalue()
    if fmt == "json":
        data: list[dict[str, Any]] = []
        for row in rows:
            entry = asdict(row)
            entry["images"] = [{"name": n, "sha256": d} for n, d in row.images]
            data.append(entry)
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "md":
        return _markdown(rows)
    if not rows:
        return "no units\n"
    short = [ReportRow(**{**asdict(row), "images": tuple((n, d[:12]) for n, d in row.images)})
             for row in rows]
    return _table(short, _TABLE_COLUMNS)
