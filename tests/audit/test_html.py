"""``audit report --format html``: a self-contained page with every device and step."""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from audit_runs import cli, records

from runner.audit.html import render_html
from runner.audit.report import collect_logs, report_rows, sort_rows
from runner.plan import RunResult


class Page(HTMLParser):
    """The elements of the page that carry data-* attributes, and every reference out."""

    def __init__(self) -> None:
        super().__init__()
        self.marked: list[tuple[str, dict[str, str]]] = []
        self.references: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        if "data-device" in values:
            self.marked.append((tag, values))
        self.references += [v for k, v in values.items() if k in ("src", "href")]


def page_of(*logs: Path) -> Page:
    paths = collect_logs(list(logs))
    page = Page()
    page.feed(render_html(paths, sort_rows(report_rows(paths), "unit")))
    return page


def test_the_page_shows_every_device_and_step_of_the_demo(demo_run: RunResult) -> None:
    assert demo_run.log_file is not None
    page = page_of(demo_run.log_file)
    logged = {(r["device"], r["step"]) for r in records(demo_run.log_file)
              if r["event"] == "step.started"}
    bars = {(a["data-device"], a["data-step"]) for tag, a in page.marked
            if tag == "rect"}
    assert bars == logged
    rows = {a["data-device"] for tag, a in page.marked if tag == "tr"}
    assert rows == {d.device for d in demo_run.devices}
    marks = {(a["data-device"], a.get("data-mark")) for tag, a in page.marked if tag == "path"}
    assert ("sensor-3", "retry") in marks and ("sensor-3", "recovery") in marks
    assert {"svg", "table", "style"} <= page.tags and "script" not in page.tags
    assert page.references == []  # nothing fetched: no network, no external assets


def test_failed_steps_are_red_and_devices_that_never_ran_are_labelled(
        failed_run: RunResult) -> None:
    assert failed_run.log_file is not None
    page = page_of(failed_run.log_file)
    failed = [a for tag, a in page.marked if tag == "rect" and a["data-outcome"] == "failed"]
    assert failed and all(a["fill"] == "#d62728" for a in failed)
    assert {a["data-device"] for a in failed} == {"sensor-2"}
    labels = {a["data-device"]: a["data-outcome"] for tag, a in page.marked if tag == "text"}
    assert labels == {"gateway": "upstream-failed"}


def test_report_format_html_writes_the_page(demo_run: RunResult, tmp_path: Path) -> None:
    assert demo_run.log_file is not None
    done = cli("report", str(demo_run.log_file), "--format", "html", "-o",
               str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.slow
def test_a_screenshot_of_the_page_through_headless_chromium(
        demo_run: RunResult, failed_run: RunResult, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed")
    assert demo_run.log_file is not None and failed_run.log_file is not None
    page = tmp_path / "report.html"
    assert cli("report", str(demo_run.log_file), str(failed_run.log_file), "--format", "html",
               "-o", str(page)).returncode == 0
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1200,1600", f"--screenshot={shot}",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("FLASHRUNNER_SCREENSHOT")  # where to keep it, for a look
    if keep:
        shutil.copy(shot, keep)
