"""The human view of a run, on stderr: progress while it runs, a summary at the end.

:class:`ConsoleRenderer` is an :class:`~runner.events.EventSink`. On a
terminal it keeps a live block at the bottom: one bar per running device
(step, bytes, rate, ETA) and an overall line (devices done / running /
failed, elapsed, estimated remaining), fitted to the terminal's width
(:mod:`runner.progress`); noteworthy events print above it. Elsewhere (CI
logs, pipes) it prints one plain line per meaningful event. Both end with a
summary table and a line with the exit code. No tracebacks (they go to the
audit log).

Cost stays linear in the events: an event updates one device's state and,
at most, prints its own line; the block is redrawn by a ticker at most
``refresh_s`` apart (and only when something changed), never once per event.
``quiet`` keeps only the final line.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from runner import events as ev
from runner.progress import DeviceProgress, RunProgress, device_row, fit, overall_row
from runner.units import format_bytes, format_duration

__all__ = ["ConsoleRenderer", "console_for", "plural", "use_colour"]

_RESET = "\033[0m"
_COLOURS = {"ok": "\033[32m", "failed": "\033[31m", "interrupted": "\033[33m",
            "skipped": "\033[2m", "upstream-failed": "\033[2m", "retry": "\033[33m",
            "dim": "\033[2m"}


#: Run-level events shown once, for the host's run, not again for each station's.
_HOST_ONLY = frozenset({ev.RUN_STARTED, ev.PLAN_WARNING, ev.RUN_INTERRUPTED, ev.RUN_FINISHED})


def plural(count: int, noun: str) -> str:
    """``1 device``, ``2 devices``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def use_colour(stream: TextIO, choice: str = "auto") -> bool:
    """``--color``: ``always``, ``never``, or ``auto`` (a terminal, and no ``NO_COLOR``)."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    tty = bool(getattr(stream, "isatty", lambda: False)())
    return tty and not os.environ.get("NO_COLOR")


def _terminal_size(stream: TextIO) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(stream.fileno())
        return size.columns or 80, size.lines or 24
    except (OSError, ValueError, AttributeError):
        columns = int(os.environ.get("COLUMNS", "80") or 80)
        return columns, int(os.environ.get("LINES", "24") or 24)


class ConsoleRenderer:
    """Renders events for people. Thread-safe.

    Args:
        stream: where to write (stderr by default).
        live: keep the progress block (default: when ``stream`` is a terminal).
        colour: ANSI colour (default: :func:`use_colour` ``auto``).
        quiet: print only the final line (outcome counts, duration, exit code).
        width: columns to fit (default: the terminal's, asked at each redraw).
        ticker: redraw from a background thread (a live block's elapsed time and
            ETA move between events); tests drive :meth:`refresh` instead.
        write_behind: hand the text to a writer thread instead of writing it in
            the caller's (see :meth:`_write`); it is all out when ``run.finished``
            has been handled and after :meth:`close`.
    """

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None,
                 colour: bool | None = None, refresh_s: float = 0.1, quiet: bool = False,
                 width: int | None = None, ticker: bool = True,
                 write_behind: bool = False) -> None:
        self.stream = stream or sys.stderr
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.live = (tty if live is None else live) and not quiet
        self.colour = use_colour(self.stream) if colour is None else colour
        self.quiet = quiet
        self.refresh_s = refresh_s
        self.width = width
        self.lines: dict[str, DeviceProgress] = {}
        self.run = RunProgress()
        self.written: dict[str, int] = {}
        self.verified: dict[str, int] = {}
        encoding = (getattr(self.stream, "encoding", None) or "").lower()
        self.unicode = "utf" in encoding or encoding == ""
        self._drawn = 0
        self._dirty = False
        self._unverified: list[str] = []   # plan warnings about writes never verified
        self._last_draw = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._use_ticker = ticker
        self._write_behind = write_behind
        self._pending: list[str] = []
        self._pending_lock = threading.Lock()
        self._output_lock = threading.Lock()   # one writer to the stream at a time
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._writer: threading.Thread | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            ev.RUN_STARTED: self._on_run_started, ev.PLAN_WARNING: self._on_plan_warning,
            ev.DEVICE_STARTED: self._on_device_started,
            ev.DEVICE_IDENTIFIED: self._on_device_identified,
            ev.LINK_FALLBACK: self._on_link_fallback,
            ev.STEP_STARTED: self._on_step_started, ev.STEP_PROGRESS: self._on_step_progress,
            ev.STEP_RETRIED: self._on_step_retried, ev.STEP_RECOVERY: self._on_step_recovery,
            ev.STEP_FINISHED: self._on_step_finished,
            ev.DEVICE_FINISHED: self._on_device_finished,
            ev.DEVICE_SKIPPED: self._on_device_skipped,
            ev.RUN_INTERRUPTED: self._on_run_interrupted, ev.RUN_FINISHED: self._on_run_finished,
            "station.failed": self._on_station_trouble,
            "station.connection-lost": self._on_station_trouble,
            "station.reconnected": self._on_station_trouble,
            "station.lost": self._on_station_trouble,
        }

    # ------------------------------------------------------------------ output

    def _paint(self, text: str, style: str) -> str:
        if not self.colour or style not in _COLOURS:
            return text
        return f"{_COLOURS[style]}{text}{_RESET}"

    def _write(self, text: str) -> None:
        """Put ``text`` on the stream (in order), now or through the writer thread.

        Events reach the console from the thread that wrote them to the audit
        log, right after the write and in the log's order, while other devices'
        records wait behind it. With ``write_behind`` the text
        is queued here and written by a thread of its own: a slow terminal, a
        full pipe or an SSH session then never holds up the devices whose
        records wait behind it, and a line of many devices does not stall on a
        write per event.
        """
        with self._pending_lock:
            queued = self._write_behind and not self._closed.is_set()
            if queued:
                self._pending.append(text)
                if self._writer is None:
                    self._writer = threading.Thread(target=self._write_pending_until_closed,
                                                    name="console-writer", daemon=True)
                    self._writer.start()
        if queued:
            self._wake.set()
            return
        with self._output_lock:
            self._put(text)

    def _put(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):   # the reader went away: the log has it all
            pass

    def drain(self) -> None:
        """Write everything queued so far (the writer thread, ``run.finished``, close)."""
        with self._output_lock:
            with self._pending_lock:
                pending, self._pending = self._pending, []
            if pending:
                self._put("".join(pending))

    def _write_pending_until_closed(self) -> None:
        while not self._closed.is_set():
            self._wake.wait()
            self._wake.clear()
            self.drain()

    def _say(self, text: str, style: str = "") -> None:
        """A line above the live block (or just a line); never in quiet mode."""
        if self.quiet:
            return
        out = self._clear() + self._paint(text, style) + "\n"
        self._dirty = True
        if self.live and not self._stop.is_set() \
                and time.monotonic() - self._last_draw >= self.refresh_s:
            out += self._block()
        self._write(out)

    def _clear(self) -> str:
        if not self._drawn:
            return ""
        drawn, self._drawn = self._drawn, 0
        return f"\033[{drawn}F\033[J"

    def _size(self) -> tuple[int, int]:
        columns, rows = _terminal_size(self.stream)
        return (self.width or columns), rows

    def _block(self) -> str:
        """The live block as text, remembered as drawn (call with the lock held)."""
        now = time.monotonic()
        columns, rows = self._size()
        width = max(20, columns - 1)   # the last column would wrap on some terminals
        running = [line for line in self.lines.values() if line.state == "running"]
        room = max(1, rows - 2)
        shown = running[:room] if len(running) <= room else running[:room - 1]
        name_width = min(16, max((len(line.device) for line in running), default=6))
        out = [self._paint_row(device_row(line, width=width, now=now, name_width=name_width,
                                          unicode=self.unicode)) for line in shown]
        if len(shown) < len(running):
            out.append(fit(f"… and {len(running) - len(shown)} more running", width))
        out.append(self._paint(overall_row(self.run, running, width=width, now=now), "dim"))
        self._drawn = len(out)
        self._last_draw = now
        self._dirty = False
        return "".join(f"{row}\n" for row in out)

    def _paint_row(self, row: str) -> str:
        return self._paint(row, "retry") if "retry " in row[-12:] else row

    def note(self, text: str) -> None:
        """A line above the live block from outside the events (a protocol trace line)."""
        with self._lock:
            self._say(text, "dim")

    def refresh(self, *, force: bool = False) -> None:
        """Redraw the live block if something changed (or ``force``)."""
        with self._lock:
            # Once the summary is out (the run finished), the block never comes back.
            if self._stop.is_set():
                return
            if self.live and (self._dirty or force) and self.run.devices:
                self._write(self._clear() + self._block())

    def _tick(self) -> None:
        last_full = time.monotonic()
        while not self._stop.wait(self.refresh_s):
            now = time.monotonic()
            # Elapsed time and ETAs move without events: redraw once a second anyway.
            self.refresh(force=now - last_full >= 1.0)
            if now - last_full >= 1.0:
                last_full = now

    # ------------------------------------------------------------------ events

    def emit(self, event: str, **fields: Any) -> None:
        if "station" in fields and event in _HOST_ONLY:
            return   # a station's own start, warnings and end: the host reports its own
        handler = self._handlers.get(event)
        if handler is not None:
            with self._lock:
                handler(fields)

    def _line(self, fields: Mapping[str, Any]) -> DeviceProgress:
        name = str(fields.get("device", "?"))
        line = self.lines.get(name)
        if line is None:
            line = self.lines[name] = DeviceProgress(device=name)
        return line

    def _on_run_started(self, f: dict[str, Any]) -> None:
        devices = f.get("devices")
        count = len(devices) if isinstance(devices, (list, tuple)) else int(devices or 0)
        self.run = RunProgress(devices=count, estimate_s=float(f.get("estimate_s") or 0.0))
        mode = ", simulated" if f.get("simulate") else ""
        if f.get("workers"):
            mode += f" in {f['workers']} worker processes"
        self._say(f"flashrunner {f.get('tool_version', '')}: {f.get('manifest')} — "
                  f"{plural(count, 'device')}, max-parallel {f.get('max_parallel')}{mode}")
        if self.live and self._use_ticker and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="console-ticker",
                                            daemon=True)
            self._ticker.start()

    def _on_plan_warning(self, f: dict[str, Any]) -> None:
        message = str(f.get("message"))
        if "does not verify it" in message:
            self._unverified.append(message)   # repeated under the summary
        self._say(f"warning: {message}", "retry")

    def _on_link_fallback(self, f: dict[str, Any]) -> None:
        self._say(f"warning: {f.get('message')}", "retry")

    def _on_device_started(self, f: dict[str, Any]) -> None:
        line = self._line(f)
        line.chip = str(f.get("chip", ""))
        line.begin("connecting", estimate_s=0.0, total=0, now=time.monotonic())
        self._dirty = True

    def _on_device_identified(self, f: dict[str, Any]) -> None:
        uid = f" UID {str(f['uid']).lower()}" if f.get("uid") else ""
        size = f", {format_bytes(int(f['flash_size']))} flash" if f.get("flash_size") else ""
        rdp = f", RDP {f['rdp_level']}" if f.get("rdp_level") else ""
        self._say(f"{f.get('device')}: {f.get('chip')} (DEV_ID {f.get('dev_id')}){uid}"
                  f"{size}{rdp}")

    def _on_step_started(self, f: dict[str, Any]) -> None:
        self._line(f).begin(str(f.get("action")), estimate_s=float(f.get("estimate_s") or 0),
                            total=int(f.get("bytes") or 0), now=time.monotonic())
        self._dirty = True

    def _on_step_progress(self, f: dict[str, Any]) -> None:
        line = self._line(f)
        line.done, total = int(f.get("done", 0)), int(f.get("total", 0))
        # Progress counts bytes, or erase units for an erase: the bar follows either.
        line.total = total or line.total
        self._dirty = True

    def _on_step_retried(self, f: dict[str, Any]) -> None:
        self._line(f).retries += 1
        self._say(f"{f.get('device')}: {f.get('action')} failed ({f.get('error')}); "
                  f"retry {f.get('attempt')}/{f.get('max')} in "
                  f"{float(f.get('delay_s', 0)):.1f} s", "retry")

    def _on_step_recovery(self, f: dict[str, Any]) -> None:
        if f.get("outcome") != "ok":
            detail = f": {f['error']}" if f.get("error") else ""
            self._say(f"{f.get('device')}: recovery {f.get('recovery')} "
                      f"{f.get('outcome')}{detail}")

    def _on_step_finished(self, f: dict[str, Any]) -> None:
        device = str(f.get("device"))
        line = self._line(f)
        self.run.finished_s += line.estimate_s
        line.estimate_s = 0.0
        outcome = str(f.get("outcome"))
        action = str(f.get("action"))
        if outcome != "ok":
            self._say(f"{device}: {action} {outcome.upper()}: {f.get('error', '')}", outcome)
            return
        amount = int(f.get("bytes") or 0)
        if action in ("write", "unit-data"):
            written = int(f.get("bytes_written", amount))
            self.written[device] = self.written.get(device, 0) + written
        elif action == "verify":
            self.verified[device] = self.verified.get(device, 0) + amount
        took = format_duration(float(f.get("duration_ms", 0)))
        attempts = f" ({f['attempts']} attempts)" if int(f.get("attempts", 1)) > 1 else ""
        self._say(f"{device}: {_step_text(action, f, amount)} in {took}{attempts}")

    def _on_device_finished(self, f: dict[str, Any]) -> None:
        self._finish(f)

    def _on_device_skipped(self, f: dict[str, Any]) -> None:
        self._finish(f)
        self._say(f"{f.get('device')}: {f.get('outcome')} ({f.get('reason')})",
                  str(f.get("outcome")))

    def _finish(self, f: dict[str, Any]) -> None:
        line = self._line(f)
        line.state = str(f.get("outcome"))
        self.run.finished_s += line.estimate_s
        line.estimate_s = 0.0
        self.run.counts[line.state] = self.run.counts.get(line.state, 0) + 1
        self._dirty = True

    def _on_station_trouble(self, f: dict[str, Any]) -> None:
        if "after_seq" in f and "error" not in f:
            what = "lost" if "devices" in f else f"reconnected (attempt {f.get('attempt')})"
        else:
            what = f"connection lost: {f.get('error')}" if "attempt" in f \
                else f"FAILED: {f.get('error')}"
        self._say(self._paint(f"station {f.get('station')}: {what}", "retry"))

    def _on_run_interrupted(self, f: dict[str, Any]) -> None:
        self._say(f"interrupted ({f.get('reason')}): stopping "
                  f"{', '.join(f.get('running', ())) or 'nothing'}", "interrupted")

    def _on_run_finished(self, f: dict[str, Any]) -> None:
        self._stop.set()
        out = self._clear()
        devices = list(f.get("devices", ()))
        if not self.quiet:
            out += "".join(row + "\n" for row in self.summary_rows(devices))
        counts = ", ".join(f"{n} {k}" for k, n in dict(f.get("counts", {})).items())
        out += (f"{counts or 'nothing run'} in "
                f"{format_duration(float(f.get('duration_ms', 0)))}; "
                f"exit code {f.get('exit_code')}\n")
        out += "".join(line + "\n" for line in _failure_kinds(devices))
        out += "".join(f"warning: not verified: {message}\n" for message in self._unverified)
        self._write(out)
        self.drain()   # the summary is on the screen when the run's result is returned

    def close(self) -> None:
        """Stop the ticker (a run that ended without ``run.finished``) and the writer.

        Everything queued is written first; what comes later is written at once.
        """
        self._stop.set()
        with self._pending_lock:
            self._closed.set()
        self._wake.set()
        self.drain()

    def summary_rows(self, devices: Any) -> list[str]:
        header = ("device", "outcome", "duration", "written", "verified", "error")
        rows = [header] + [
            (str(d["device"]), str(d["outcome"]),
             format_duration(float(d.get("duration_ms") or 0)),
             format_bytes(self.written.get(str(d["device"]), 0)),
             format_bytes(self.verified.get(str(d["device"]), 0)),
             str(d.get("error") or d.get("reason") or "")) for d in devices]
        columns = len(header) - 1
        widths = [max(len(row[i]) for row in rows) for i in range(columns)]
        out = []
        for index, row in enumerate(rows):
            cells = [row[i].ljust(widths[i]) if i < 2 else row[i].rjust(widths[i])
                     for i in range(columns)]
            if index:
                cells[1] = self._paint(cells[1], row[1])
            out.append("  ".join([*cells, row[columns]]).rstrip())
        return out


def _step_text(action: str, f: Mapping[str, Any], amount: int) -> str:
    """``erase ok: 3 units 0x08000000..0x08000C00``, ``write ok 4.0 KiB``, …"""
    if action == "erase":
        if f.get("scope") == "mass":
            what = "the whole flash"
        else:
            blocks = int(f.get("blocks") or 0)
            what = f"{plural(blocks, 'unit')}{_spans(f.get('ranges') or ())}"
        kept = int(f.get("preserved_bytes") or 0)
        keeping = f"; kept {format_bytes(kept)} around the images" if kept else ""
        return f"erase ok: {what}{keeping}"
    if action == "write" and f.get("skip_unchanged"):
        return (f"write ok {format_bytes(int(f.get('bytes_written') or 0))} "
                f"({f.get('units_rewritten')} of {f.get('units')} units rewritten)")
    if action == "unit-data" and "unit_value" in f:
        return f"unit-data ok {f['unit_value']} from {f.get('unit_source')}"
    if action == "read" and f.get("file"):
        return f"read ok {format_bytes(amount)} to {f['file']}"
    if action == "verify" and f.get("method"):
        return f"verify ok {format_bytes(amount)} ({f['method']})"
    return f"{action} ok" + (f" {format_bytes(amount)}" if amount else "")


def _spans(ranges: Any) -> str:
    """`` 0x08000000..0x08004000, 0x08010000..0x08020000``: adjacent ranges joined."""
    joined: list[list[str]] = []
    for start, end in ranges:
        if joined and int(joined[-1][1], 16) == int(start, 16):
            joined[-1][1] = end
        else:
            joined.append([start, end])
    shown = ", ".join(f"{start}..{end}" for start, end in joined[:3])
    more = f" and {len(joined) - 3} more" if len(joined) > 3 else ""
    return f" {shown}{more}" if joined else ""


def _failure_kinds(devices: list[Mapping[str, Any]]) -> list[str]:
    """Which failures were the machine's (exit 3 alone) and which were flashing's."""
    environment = [str(d["device"]) for d in devices
                   if d.get("outcome") == "failed" and d.get("error_category") == "environment"]
    if not environment:
        return []
    others = [str(d["device"]) for d in devices
              if d.get("outcome") == "failed" and d.get("error_category") != "environment"]
    lines = [f"could not start (this machine lacks something: a library, a permission, a "
             f"package): {', '.join(environment)}"]
    if others:
        lines.append(f"failed while flashing: {', '.join(others)}")
    return lines


def console_for(stream: TextIO, *, quiet: bool = False, colour: str = "auto",
                json_stdout: bool = False) -> ConsoleRenderer:
    """The renderer the CLI uses: ``--quiet``, ``--color`` and ``--json`` applied.

    With ``--json`` on a terminal the JSON lines and the live block would share
    the screen and scramble each other: the block gives way to plain lines.
    """
    tty = bool(getattr(stream, "isatty", lambda: False)())
    shares_screen = json_stdout and sys.stdout.isatty()
    return ConsoleRenderer(stream, live=tty and not shares_screen and not quiet,
                           colour=use_colour(stream, colour), quiet=quiet, write_behind=True)
