"""Hostile manifests: each is refused with a located issue, in bounded time and memory.

The corpus is generated: every category of input that once hung, exhausted
memory, echoed a file or ended in an internal error (alias bombs, deep nesting,
FIFOs and devices, oversized files, numbers the schema used to let through,
format specs in templates, names too long for file names, includes and data
files outside the manifest's folder, files that are not manifests). Most cases
run in-process; the few whose danger is memory or blocking also run through
the CLI in a subprocess under an address-space limit and a timeout.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from runner.errors import ManifestError
from runner.inputs import MANIFEST_LIMIT
from runner.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[2]
SECRET = "root:$6$hash-that-must-never-be-shown$:19000:0:99999:7:::"

BASE = """\
manifest: 1
name: hostile
simulate: true
simulation: {{time-scale: {scale}, devices: {{dev: {{faults: [{fault}]}}}}}}
images:
  app: {{file: app.bin, address: 0x08000000}}
transports:
  link: {{kind: sim}}
recipes:
  std:
    - erase: {{}}
    - write: [app]
    - verify: {{}}
{unit}recovery:
  default: {{retries: {retries}, backoff: {backoff}}}
devices:
  {device}: {{chip: stm32f103c8, transport: link, recipe: std}}
log: {{file: "{log}"}}
{extra}"""

FIELDS = {"scale": "0", "fault": "{kind: timeout, op: write, times: 1}", "retries": "2",
          "backoff": "0.5", "device": "dev", "log": "logs/{name}-{run_id}.jsonl",
          "extra": "", "unit": ""}


def base(**changes: str) -> str:
    return BASE.format(**{**FIELDS, **changes})


def bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "description: x\nquirks:\n" + "\n".join("  " + line for line in lines) + "\n"


def merge_bomb(levels: int = 30) -> str:
    lines = ["  m0: &m0 {k: 1}"]
    for level in range(1, levels):
        refs = ", ".join([f"*m{level - 1}"] * 9)
        lines.append(f"  m{level}: &m{level} {{<<: [{refs}], k{level}: 1}}")
    return "x-anchors:\n" + "\n".join(lines) + "\n"


Setup = Callable[[Path], Path]


def text(content: str) -> Setup:
    def setup(folder: Path) -> Path:
        path = folder / "m.yaml"
        path.write_text(content, "utf-8")
        return path
    return setup


def with_file(content: str, make: Callable[[Path], None]) -> Setup:
    def setup(folder: Path) -> Path:
        make(folder)
        return text(content)(folder)
    return setup


def fifo(name: str) -> Callable[[Path], None]:
    return lambda folder: os.mkfifo(folder / name)


def symlink(name: str, target: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).symlink_to(target)


def secret_file(name: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        (folder / name).write_text(SECRET + "\n" + SECRET + "\n")
    return make


def outside_secret(name: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        (folder.parent / f"{folder.name}-{name}").write_text(SECRET + "\n")
    return make


def big_file(name: str, size: int) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        with (folder / name).open("wb") as handle:
            handle.truncate(size)   # sparse: costs no disk
    return make


UNIT = ("    - unit-data: {{address: 0x0800FC00, source: {source}}}\n")

#: (case, setup, text the first issue contains)
CORPUS: list[tuple[str, Setup, str]] = [
    # YAML that expands without bound
    ("alias-bomb", text(base(extra=bomb())), "alias bomb"),
    ("merge-key-bomb", text(base(extra=merge_bomb())), "unknown key 'x-anchors'"),
    ("deep-flow-nesting", text(base(extra="description: " + "[" * 60_000 + "]" * 60_000)),
     "nested more than"),
    ("deep-compact-nesting", text(base(extra="description:\n  " + "- " * 30_000 + "x")),
     "nested more than"),
    ("moderate-nesting", text(base(extra="description: " + "[" * 500 + "]" * 500)),
     "nested more than"),
    ("self-alias", text(base(extra="description: &d [*d]")), "refers to itself"),
    # files that are not regular, or too large
    ("include-fifo", with_file(base(extra="include: [pipe.yaml]"), fifo("pipe.yaml")),
     "FIFO"),
    ("include-directory", with_file(base(extra="include: [sub]"),
                                    lambda f: (f / "sub").mkdir()), "a directory"),
    ("include-device", with_file(base(extra="include: [zero.yaml]"),
                                 symlink("zero.yaml", "/dev/zero")), "outside"),
    ("image-fifo", with_file(base().replace("app.bin", "pipe.bin"), fifo("pipe.bin")),
     "FIFO"),
    ("image-device", text(base().replace("app.bin", "/dev/zero")), "character device"),
    ("image-too-large", with_file(base().replace("app.bin", "huge.bin"),
                                  big_file("huge.bin", 129 * 1024 * 1024)), "limit"),
    # numbers
    ("float-for-integer", text(base(retries="1000.0")), "without a decimal point"),
    ("nan", text(base(scale=".nan")), "not a finite number"),
    ("inf", text(base(backoff=".inf")), "not a finite number"),
    ("huge-float", text(base(backoff="1.0e+300")), "more than 64 bits"),
    ("ten-to-the-400", text(base(retries="1" + "0" * 400)), "expected an integer"),
    ("too-many-digits", text(base(retries="9" * 5000)), "too long"),
    ("two-to-the-64", text(base(fault="{kind: nack, op: write, times: 18446744073709551616}")),
     "expected an integer"),
    ("retries-unbounded", text(base(retries="1000000")), "at most 100"),
    ("backoff-unbounded", text(base(backoff="100000")), "at most 3600"),
    ("negative-time-scale", text(base(scale="-1")), "at least 0"),
    ("fault-counter", text(base(fault="{kind: nack, op: write, at-byte: 5000000000}")),
     "at most"),
    ("i2c-bus-number", text(base().replace("link: {kind: sim}",
                                           "link: {kind: i2c, bus: 18446744073709551616}")),
     "expected"),
    ("counter-float-start",
     text(base(unit=UNIT.format(source="{counter: {state: s.json, start: 1000.0}}"))),
     "without a decimal point"),
    ("counter-start-too-wide",
     text(base(unit=UNIT.format(source="{counter: {state: s.json, start: 5000000000, "
                                       "width: 4}}"))), "does not fit in 4 bytes"),
    ("counter-printf-width",
     text(base(unit=UNIT.format(source="{counter: {state: s.json, template: '%0999999999d', "
                                       "width: 8}}"))), "more than 4096"),
    ("uid-template-width",
     text(base(unit=UNIT.format(source="{uid: {template: '{uid:>999999999}', width: 8}}"))),
     "more than 4096"),
    ("uid-template-field",
     text(base(unit=UNIT.format(source="{uid: {template: '{uid.__class__}', width: 8}}"))),
     "names {uid.__class__}"),
    # templates and names
    ("log-format-spec", text(base(log="logs/{name:>999999999}.jsonl")), "no format"),
    ("log-conversion", text(base(log="logs/{name!r}.jsonl")), "no format"),
    ("log-positional", text(base(log="logs/{}.jsonl")), "unknown placeholder"),
    ("long-device-name", text(base(device="d" * 300)), "longer than 64"),
    ("long-product-name", text(base().replace("name: hostile", "name: " + "p" * 300)),
     "longer than 64"),
    # files outside the manifest's folder, and files that are not manifests
    ("include-absolute", text(base(extra="include: [/etc/passwd]")), "outside"),
    ("include-dotdot", with_file(base(extra="include: [../m-secret]"),
                                 outside_secret("secret")), "outside"),
    ("include-symlink-out", with_file(base(extra="include: [link.yaml]"),
                                      symlink("link.yaml", "/etc/passwd")), "outside"),
    ("include-not-a-manifest", with_file(base(extra="include: [secret.yaml]"),
                                         secret_file("secret.yaml")),
     "not a flashrunner manifest"),
    ("csv-outside",
     text(base(unit=UNIT.format(source="{csv: {file: /etc/passwd, column: x, width: 4}}"))),
     "outside"),
    ("csv-not-csv", with_file(
        base(unit=UNIT.format(source="{csv: {file: secret.csv, column: x, width: 4}}")),
        secret_file("secret.csv")), "no column 'x'"),
    ("counter-state-outside",
     text(base(unit=UNIT.format(source="{counter: {state: ../../s.json}}"))), "outside"),
]


def _too_large(folder: Path) -> Path:
    path = text(base())(folder)
    with path.open("r+b") as handle:
        handle.truncate(MANIFEST_LIMIT + 1)   # sparse: costs no disk
    return path


CORPUS += [("manifest-too-large", _too_large, "limit"),
           ("top-not-a-manifest", text(SECRET + "\n"), "not a flashrunner manifest")]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    work = tmp_path / "product"
    work.mkdir()
    (work / "app.bin").write_bytes(bytes(range(256)) * 4)
    return work


def test_the_base_manifest_is_valid(folder: Path) -> None:
    assert load_manifest(text(base())(folder)).devices["dev"]


def test_the_corpus_covers_every_category() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize(("case", "setup", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_a_hostile_manifest_is_refused_located_and_shows_no_file_content(
        folder: Path, case: str, setup: Setup, expected: str) -> None:
    path = setup(folder)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    issues = caught.value.issues
    shown = str(caught.value)
    assert any(expected in issue.message for issue in issues), shown
    assert all(issue.file and issue.line >= 1 and issue.column >= 1 for issue in issues)
    assert "hash-that-must-never-be-shown" not in shown
    assert "root:" not in shown
    assert len(shown) < 20_000


# --------------------------------------------------------------- under resource limits

_LIMIT = 1024 * 1024 * 1024   # 1 GiB of address space: a bomb would need far more


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_LIMIT, _LIMIT))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=60, preexec_fn=_limited, check=False)


@pytest.mark.parametrize("case", ["alias-bomb", "include-fifo", "image-device",
                                  "deep-flow-nesting", "top-not-a-manifest"])
def test_the_cli_refuses_with_exit_2_within_a_memory_limit(folder: Path, case: str) -> None:
    (_, setup, expected), = [c for c in CORPUS if c[0] == case]
    path = setup(folder)
    done = _cli("validate", "--json", str(path), cwd=folder)
    assert done.returncode == 2, done.stderr
    (report,) = json.loads(done.stdout)
    assert not report["valid"]
    assert any(expected in issue["message"] and issue["line"] >= 1
               for issue in report["issues"]), report
    assert "hash-that-must-never-be-shown" not in done.stdout + done.stderr
    assert "internal error" not in done.stderr


def test_an_include_outside_is_read_when_its_folder_is_allowed(folder: Path) -> None:
    shared = folder.parent / "shared"
    shared.mkdir()
    (shared / "links.yaml").write_text("transports:\n  other: {kind: sim}\n")
    path = text(base(extra="include: [../shared/links.yaml]"))(folder)
    with pytest.raises(ManifestError, match="outside the manifest's folder"):
        load_manifest(path)
    assert "other" in load_manifest(path, allow=[shared]).links
