"""``audit report --format html``: one self-contained page for people.

The page holds the per-unit table of :mod:`runner.audit.report` and, for each
run, a timeline drawn as inline SVG from the log alone: a lane per device,
grouped by station, with a bar per step (connect, erase, write, verify, …)
from its ``step.started`` to its ``step.finished``, failed steps in red, a
triangle at each retry and a diamond at each recovery action, and a label for
devices that never started. No script, no style sheet, no font or image is
fetched: everything is in the file. Each bar and mark carries ``data-device``,
``data-step`` and ``data-outcome`` so the page can be checked by a program.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path

from runner.audit.records import RunRecord, UnitRecord, read_run
from runner.audit.report import COLUMNS, ReportRow
from runner.audit.verify import verify_log

__all__ = ["render_html"]

_COLOURS = {"connect": "#8da0cb", "erase": "#fc8d62", "write": "#66c2a5",
            "unit-data": "#a6d854", "verify": "#e5c494", "option-bytes": "#e78ac3",
            "reset": "#b3b3b3", "read": "#80b1d3"}
_FAILED = "#d62728"
_LABEL_W, _PLOT_W, _LANE_H, _TOP = 230, 900, 24, 30

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 17px; margin-top: 32px; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.ok { color: #1a7f37; } td.failed, td.tampered { color: #d62728; font-weight: bold; }
td.interrupted, td.truncated, td.unknown { color: #b35900; }
td.skipped, td.upstream-failed { color: #777; }
.mono { font-family: ui-monospace, monospace; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
            vertical-align: -2px; }
"""


def _moment(ts: str) -> float | None:
    try:
        return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
    except ValueError:
        return None


def _table(rows: Sequence[ReportRow]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = []
    for row in rows:
        cells = []
        for column, cell in zip(COLUMNS, row.cells(), strict=True):
            css = f' class="{escape(cell)}"' if column in ("outcome", "chain") else \
                ' class="mono"' if column in ("uid", "images", "run_id") else ""
            if column == "images":  # the full digests are in the tooltip (and the CSV)
                shown = "<br>".join(f"{escape(name)}@{escape(digest[:12])}…"
                                    for name, digest in row.images)
                cells.append(f'<td{css} title="{escape(cell)}">{shown}</td>')
                continue
            cells.append(f"<td{css}>{escape(cell)}</td>")
        body.append(f"<tr data-device=\"{escape(row.device)}\">{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Timeline:
    """The SVG of one run."""

    def __init__(self, run: RunRecord) -> None:
        self.run = run
        times = [t for unit in run.units for step in unit.steps
                 for t in (_moment(step.started), _moment(step.finished)) if t is not None]
        times += [t for t in (_moment(run.started), _moment(run.finished)) if t is not None]
        self.start = min(times) if times else 0.0
        self.span = max(max(times) - self.start, 0.001) if times else 1.0
        self.parts: list[str] = []

    def x(self, ts: str, default: float | None = None) -> float:
        moment = _moment(ts)
        if moment is None:
            moment = self.start + self.span if default is None else default
        return _LABEL_W + (moment - self.start) / self.span * _PLOT_W

    def lane(self, unit: UnitRecord, y: float) -> None:
        device = escape(unit.device)
        label = f"{unit.device} ({unit.chip})" if unit.chip else unit.device
        self.parts.append(f'<text x="4" y="{y + 16:.1f}" font-size="12">{escape(label)}</text>')
        if not unit.steps:
            self.parts.append(
                f'<text x="{_LABEL_W + 4}" y="{y + 16:.1f}" font-size="12" fill="#777" '
                f'data-device="{device}" data-outcome="{escape(unit.outcome)}">'
                f'{escape(unit.outcome)}{": " + escape(unit.reason) if unit.reason else ""}'
                f'</text>')
            return
        for step in unit.steps:
            left = self.x(step.started)
            right = self.x(step.finished) if step.finished else self.x("", None)
            failed = step.outcome not in ("ok", "")
            colour = _FAILED if failed else _COLOURS.get(step.action, "#999")
            outcome = step.outcome or "unfinished"
            tip = f"{step.step}: {outcome}, {step.attempts} attempt(s)" + \
                (f" — {step.error}" if step.error else "")
            stroke = ' stroke="#7f0000" stroke-width="1.5"' if failed else ""
            self.parts.append(
                f'<rect x="{left:.1f}" y="{y + 3:.1f}" width="{max(right - left, 1.5):.1f}" '
                f'height="{_LANE_H - 6}" fill="{colour}"{stroke} '
                f'data-device="{device}" data-step="{escape(step.step)}" '
                f'data-action="{escape(step.action)}" data-outcome="{escape(outcome)}">'
                f'<title>{escape(tip)}</title></rect>')
            for ts, attempt, error in step.retries:
                cx = self.x(ts)
                self.parts.append(
                    f'<path d="M{cx:.1f},{y + 1:.1f} l5,8 l-10,0 z" fill="#ff7f0e" '
                    f'stroke="#222" stroke-width="0.5" data-device="{device}" '
                    f'data-step="{escape(step.step)}" data-mark="retry">'
                    f'<title>{escape(f"retry {attempt} after: {error}")}</title></path>')
            for ts, recovery, result in step.recoveries:
                cx = self.x(ts)
                fill = "#1f77b4" if result == "ok" else _FAILED
                self.parts.append(
                    f'<path d="M{cx:.1f},{y + _LANE_H - 10:.1f} l4,4 l-4,4 l-4,-4 z" '
                    f'fill="{fill}" stroke="#222" stroke-width="0.5" data-device="{device}" '
                    f'data-step="{escape(step.step)}" data-mark="recovery">'
                    f'<title>{escape(f"recovery {recovery}: {result}")}</title></path>')

    def svg(self) -> str:
        stations: dict[str, list[UnitRecord]] = {}
        for unit in self.run.units:
            stations.setdefault(unit.station or self.run.station, []).append(unit)
        y = float(_TOP)
        for station, units in stations.items():
            self.parts.append(f'<text x="4" y="{y + 14:.1f}" font-size="13" '
                              f'font-weight="bold">station {escape(station)}</text>')
            y += _LANE_H
            for unit in units:
                self.lane(unit, y)
                y += _LANE_H
        for tick in range(11):
            tx = _LABEL_W + tick * _PLOT_W / 10
            seconds = self.span * tick / 10
            self.parts.insert(0, f'<line x1="{tx:.1f}" y1="{_TOP - 8}" x2="{tx:.1f}" '
                                 f'y2="{y:.1f}" stroke="#e6e6e6"/><text x="{tx:.1f}" '
                                 f'y="{_TOP - 12}" font-size="10" text-anchor="middle" '
                                 f'fill="#555">{seconds:.2f} s</text>')
        width, height = _LABEL_W + _PLOT_W + 20, y + 10
        return (f'<svg width="{width}" height="{height:.0f}" viewBox="0 0 {width} '
                f'{height:.0f}" role="img" aria-label="timeline of run '
                f'{escape(self.run.run_id)}">{"".join(self.parts)}</svg>')


def _legend() -> str:
    items = [f'<span><i style="background:{colour}"></i>{escape(action)}</span>'
             for action, colour in _COLOURS.items()]
    items += [f'<span><i style="background:{_FAILED}"></i>failed step</span>',
              '<span>▲ retry</span>', '<span>◆ recovery action</span>']
    return f'<p class="legend">{"".join(items)}</p>'


def _run_section(run: RunRecord) -> str:
    counts: dict[str, int] = {}
    for unit in run.units:
        counts[unit.outcome] = counts.get(unit.outcome, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    chain = verify_log(run.path).status
    facts = (f"manifest <b>{escape(run.manifest)}</b> "
             f"(<span class=\"mono\">{escape(run.manifest_sha256[:16])}…</span>), "
             f"station {escape(run.station)}, operator {escape(run.operator)}, "
             f"flashrunner {escape(run.tool_version)}, started {escape(run.started)}; "
             f"{escape(summary)}; log chain <b>{escape(chain)}</b>")
    return (f'<section data-run="{escape(run.run_id)}"><h2>Run '
            f'{escape(run.run_id)}</h2><p>{facts}</p>{_Timeline(run).svg()}</section>')


def render_html(logs: Sequence[Path], rows: Sequence[ReportRow]) -> str:
    """The page: every run's timeline, then the per-unit table."""
    runs = [run for run in (read_run(path) for path in logs) if run.run_id]
    sections = "".join(_run_section(run) for run in runs)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>flashrunner audit report</title>"
            f"<style>{_STYLE}</style></head><body>"
            f"<h1>flashrunner audit report: {len(runs)} run(s), {len(rows)} unit(s)</h1>"
            f"{_legend()}{sections}<h2>Units</h2>{_table(rows)}</body></html>\n")
