"""The human view of a run, on stderr: progress while it runs, a summary at the end.

:class:`ConsoleRenderer` is an :class:`~runner.events.EventSink`. On a
terminal it keeps a live block with one line per running device (chip,
current step, percent and KiB, retries) and prints noteworthy events above
it; elsewhere (CI logs, pipes) it prints one plain line per meaningful event.
Both end with a summary table. No tracebacks (they go to the audit log);
colour only on a terminal and never when ``NO_COLOR`` is set.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from runner import events as ev
from runner.units import format_bytes, format_duration

__all__ = ["ConsoleRenderer"]

_RESET = "\033[0m"
_COLOURS = {"ok": "\033[32m", "failed": "\033[31m", "interrupted": "\033[33m",
            "skipped": "\033[2m", "upstream-failed": "\033[2m", "retry": "\033[33m"}


#: Run-level events shown once, for the host's run, not again for each station's.
_HOST_ONLY = frozenset({ev.RUN_STARTED, ev.PLAN_WARNING, ev.RUN_INTERRUPTED, ev.RUN_FINISHED})


@dataclass(slots=True)
class _DeviceLine:
    device: str
    chip: str = ""
    step: str = "waiting"
    percent: float | None = None
    done: int = 0
    total: int = 0
    retries: int = 0
    state: str = "running"


class ConsoleRenderer:
    """Renders events for people. Thread-safe.

    Args:
        stream: where to write (stderr by default).
        live: redraw a per-device block (default: when ``stream`` is a terminal).
        colour: ANSI colour (default: on a terminal without ``NO_COLOR``).
    """

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None,
                 colour: bool | None = None, refresh_s: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.live = tty if live is None else live
        self.colour = (tty and "NO_COLOR" not in os.environ) if colour is None else colour
        self.refresh_s = refresh_s
        self.lines: dict[str, _DeviceLine] = {}
        self._drawn = 0
        self._last_draw = 0.0
        self._lock = threading.Lock()
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            ev.RUN_STARTED: self._on_run_started, ev.PLAN_WARNING: self._on_plan_warning,
            ev.DEVICE_STARTED: self._on_device_started,
            ev.DEVICE_IDENTIFIED: self._on_device_identified,
            ev.STEP_STARTED: self._on_step_started, ev.STEP_PROGRESS: self._on_step_progress,
            ev.STEP_RETRIED: self._on_step_retried, ev.STEP_RECOVERY: self._on_step_recovery,
            ev.STEP_FINISHED: self._on_step_finished,
            ev.DEVICE_FINISHED: self._on_device_finished,
            ev.DEVICE_SKIPPED: self._on_device_skipped,
            ev.RUN_INTERRUPTED: self._on_run_interrupted, ev.RUN_FINISHED: self._on_run_finished,
            "station.failed": self._on_station_trouble,
            "station.connection-lost": self._on_station_trouble,
            "station.reconnected": self._on_station_trouble, "station.lost": self._on_station_trouble,
        }

    # ------------------------------------------------------------------ output

    def _paint(self, text: str, style: str) -> str:
        if not self.colour or style not in _COLOURS:
            return text
        return f"{_COLOURS[style]}{text}{_RESET}"

    def _say(self, text: str) -> None:
        """A line above the live block (or just a line)."""
        self._clear()
        self.stream.write(text + "\n")
        self._draw(force=True)

    def _clear(self) -> None:
        if self.live and self._drawn:
            self.stream.write(f"\033[{self._drawn}F\033[J")
            self._drawn = 0

    def _draw(self, *, force: bool = False) -> None:
        if not self.live:
            self.stream.flush()
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.refresh_s:
            return
        self._clear()
        rows = [line for line in self.lines.values() if line.state == "running"]
        for line in rows:
            self.stream.write(self._live_row(line) + "\n")
        self._drawn = len(rows)
        self._last_draw = now
        self.stream.flush()

    def _live_row(self, line: _DeviceLine) -> str:
        progress = ""
        if line.percent is not None:
            unit = (f"{line.done / 1024:.1f}/{line.total / 1024:.1f} KiB"
                    if line.total > 64 else f"{line.done}/{line.total}")
            progress = f" {line.percent:5.1f}% {unit}"
        retries = self._paint(f" retries {line.retries}", "retry") if line.retries else ""
        return f"  {line.device:<16} {line.chip:<14} {line.step:<14}{progress}{retries}"

    # ------------------------------------------------------------------ events

    def emit(self, event: str, **fields: Any) -> None:
        if "station" in fields and event in _HOST_ONLY:
            return   # a station's own start, warnings and end: the host reports its own
        handler = self._handlers.get(event)
        if handler is not None:
            with self._lock:
                handler(fields)

    def _line(self, fields: dict[str, Any]) -> _DeviceLine:
        name = str(fields.get("device", "?"))
        return self.lines.setdefault(name, _DeviceLine(device=name))

    def _on_run_started(self, f: dict[str, Any]) -> None:
        mode = ", simulated" if f.get("simulate") else ""
        self._say(f"flashrunner {f.get('tool_version', '')}: {f.get('manifest')} — "
                  f"{f.get('devices')} device(s), max-parallel {f.get('max_parallel')}{mode}")

    def _on_plan_warning(self, f: dict[str, Any]) -> None:
        self._say(self._paint(f"warning: {f.get('message')}", "retry"))

    def _on_device_started(self, f: dict[str, Any]) -> None:
        line = self._line(f)
        line.chip = str(f.get("chip", ""))
        line.step = "connecting"
        self._draw(force=True)

    def _on_device_identified(self, f: dict[str, Any]) -> None:
        uid = f" UID {f['uid']}" if f.get("uid") else ""
        size = f", {format_bytes(int(f['flash_size']))} flash" if f.get("flash_size") else ""
        rdp = f", RDP {f['rdp_level']}" if f.get("rdp_level") else ""
        self._say(f"{f.get('device')}: {f.get('chip')} (DEV_ID {f.get('dev_id')}){uid}"
                  f"{size}{rdp}")

    def _on_step_started(self, f: dict[str, Any]) -> None:
        line = self._line(f)
        line.step, line.percent, line.done, line.total = str(f.get("action")), None, 0, 0
        self._draw()

    def _on_step_progress(self, f: dict[str, Any]) -> None:
        line = self._line(f)
        line.percent = float(f.get("percent", 0.0))
        line.done, line.total = int(f.get("done", 0)), int(f.get("total", 0))
        self._draw()

    def _on_step_retried(self, f: dict[str, Any]) -> None:
        self._line(f).retries += 1
        self._say(self._paint(
            f"{f.get('device')}: {f.get('action')} failed ({f.get('error')}); "
            f"retry {f.get('attempt')}/{f.get('max')} in {float(f.get('delay_s', 0)):.1f} s",
            "retry"))

    def _on_step_recovery(self, f: dict[str, Any]) -> None:
        if f.get("outcome") != "ok":
            detail = f": {f['error']}" if f.get("error") else ""
            self._say(f"{f.get('device')}: recovery {f.get('recovery')} "
                      f"{f.get('outcome')}{detail}")

    def _on_step_finished(self, f: dict[str, Any]) -> None:
        outcome = str(f.get("outcome"))
        action = f.get("action")
        if outcome == "ok":
            amount = f" {format_bytes(int(f['bytes']))}" if f.get("bytes") else ""
            attempts = f" ({f['attempts']} attempts)" if int(f.get("attempts", 1)) > 1 else ""
            value = f" = {f['unit_value']} from {f.get('unit_source')}" \
                if "unit_value" in f else ""
            text = (f"{f.get('device')}: {action} ok{amount}{value} in "
                    f"{format_duration(float(f.get('duration_ms', 0)))}{attempts}")
        else:
            text = self._paint(f"{f.get('device')}: {action} {outcome.upper()}: "
                               f"{f.get('error', '')}", outcome)
        self._say(text)

    def _on_device_finished(self, f: dict[str, Any]) -> None:
        self._line(f).state = str(f.get("outcome"))
        self._draw(force=True)

    def _on_device_skipped(self, f: dict[str, Any]) -> None:
        self._line(f).state = str(f.get("outcome"))
        self._say(self._paint(f"{f.get('device')}: {f.get('outcome')} ({f.get('reason')})",
                              str(f.get("outcome"))))

    def _on_station_trouble(self, f: dict[str, Any]) -> None:
        if "after_seq" in f and "error" not in f:
            what = "lost" if "devices" in f else f"reconnected (attempt {f.get('attempt')})"
        else:
            what = f"connection lost: {f.get('error')}" if "attempt" in f \
                else f"FAILED: {f.get('error')}"
        self._say(self._paint(f"station {f.get('station')}: {what}", "retry"))

    def _on_run_interrupted(self, f: dict[str, Any]) -> None:
        self._say(self._paint(f"interrupted ({f.get('reason')}): stopping "
                              f"{', '.join(f.get('running', ())) or 'nothing'}", "interrupted"))

    def _on_run_finished(self, f: dict[str, Any]) -> None:
        self._clear()
        for row in self.summary_rows(f.get("devices", ())):
            self.stream.write(row + "\n")
        counts = ", ".join(f"{n} {k}" for k, n in dict(f.get("counts", {})).items())
        self.stream.write(f"{counts} in {format_duration(float(f.get('duration_ms', 0)))}; "
                          f"exit code {f.get('exit_code')}\n")
        self.stream.flush()

    def summary_rows(self, devices: Any) -> list[str]:
        header = ("device", "outcome", "duration", "bytes", "error")
        rows = [header] + [
            (str(d["device"]), str(d["outcome"]),
             format_duration(float(d.get("duration_ms") or 0)),
             format_bytes(int(d.get("bytes") or 0)),
             str(d.get("error") or d.get("reason") or "")) for d in devices]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        out = []
        for index, row in enumerate(rows):
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            if index:
                cells[1] = self._paint(cells[1], row[1])
            out.append("  ".join([*cells, row[4]]).rstrip())
        return out
