"""``include:``: station inventories and product parts merged into one manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from runner.errors import ManifestError
from runner.manifest import load_manifest

TOP = """\
manifest: 1
name: t
include: [{includes}]
recipes:
  std:
    - erase: {{}}
    - write: [app]
devices:
  dev: {{chip: stm32f103c8, transport: link, recipe: std}}
"""

STATION = """\
transports:
  link: {kind: sim}
"""

PRODUCT = """\
images:
  app: {file: firmware/app.bin, address: 0x08000000}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """top.yaml including stations/bench.yaml (links) and parts/images.yaml (images)."""
    write(tmp_path, "stations/bench.yaml", STATION)
    write(tmp_path, "parts/images.yaml", PRODUCT)
    (tmp_path / "parts/firmware").mkdir()
    (tmp_path / "parts/firmware/app.bin").write_bytes(b"\x01\x02\x03\x04")
    return write(tmp_path, "top.yaml",
                 TOP.format(includes="stations/bench.yaml, parts/images.yaml"))


def issues_of(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return [str(issue) for issue in caught.value.issues]


def test_inventory_and_product_parts_merge_into_one_manifest(layout: Path) -> None:
    manifest = load_manifest(layout)
    assert list(manifest.links) == ["link"]
    assert list(manifest.images) == ["app"]
    assert manifest.devices["dev"].link.link == "link"


def test_image_paths_resolve_against_the_file_that_names_them(layout: Path) -> None:
    manifest = load_manifest(layout)
    assert manifest.images["app"].path == layout.parent / "parts/firmware/app.bin"


def test_included_files_are_listed_and_hashed_in_include_order(layout: Path) -> None:
    manifest = load_manifest(layout)
    files = (layout, layout.parent / "stations/bench.yaml", layout.parent / "parts/images.yaml")
    assert manifest.files == files
    assert manifest.sha256 == hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def test_elements_of_included_files_are_located_in_them(layout: Path) -> None:
    location = load_manifest(layout).links["link"].location
    assert (location.file, location.line, location.column) == \
        (str(layout.parent / "stations/bench.yaml"), 2, 3)


def test_a_name_defined_in_two_files_names_both_places(layout: Path) -> None:
    write(layout.parent, "parts/images.yaml", PRODUCT + "transports:\n  link: {kind: sim}\n")
    (issue,) = issues_of(layout)
    bench = layout.parent / "stations/bench.yaml"
    assert issue.startswith(f"{layout.parent / 'parts/images.yaml'}:4:3: transports.link: ")
    assert f"already defined at {bench}:2:3" in issue


def test_an_include_cycle_is_named(tmp_path: Path) -> None:
    top = write(tmp_path, "top.yaml", TOP.format(includes="a.yaml"))
    write(tmp_path, "a.yaml", "include: [b.yaml]\n" + STATION)
    write(tmp_path, "b.yaml", "include: [a.yaml]\n")
    issues = [i for i in issues_of(top) if "include cycle:" in i]
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert issues == [f"{b}:1:11: include[0]: include cycle: {a} → {b} → {a}; "
                      f"remove one of these includes"]


def test_a_file_including_itself_is_a_cycle(tmp_path: Path) -> None:
    top = write(tmp_path, "top.yaml", TOP.format(includes="top.yaml"))
    assert any("include cycle" in issue for issue in issues_of(top))


def test_included_files_may_not_set_run_wide_settings(layout: Path) -> None:
    write(layout.parent, "stations/bench.yaml", "name: other\n" + STATION)
    (issue,) = issues_of(layout)
    assert issue.startswith(f"{layout.parent / 'stations/bench.yaml'}:1:1: name: ")
    assert "unknown key 'name'" in issue


def test_problems_in_included_files_come_after_the_top_files(layout: Path) -> None:
    write(layout.parent, "stations/bench.yaml", "transports:\n  link: {kind: sim, rat: 1}\n")
    text = layout.read_text().replace("name: t", "name: T")
    layout.write_text(text)
    issues = issues_of(layout)
    assert len(issues) == 2
    assert issues[0].startswith(f"{layout}:2:7:")
    assert issues[1].startswith(f"{layout.parent / 'stations/bench.yaml'}:2:21:")


def test_simulation_devices_merge_across_files(layout: Path) -> None:
    write(layout.parent, "stations/bench.yaml",
          STATION + "simulation:\n  time-scale: 0\n  devices:\n    dev: {rdp: 1}\n")
    manifest = load_manifest(layout)
    assert manifest.simulation.devices["dev"].rdp == 1
    assert manifest.simulation.time_scale == 0


def test_an_empty_section_in_the_top_file_is_reported_once(layout: Path) -> None:
    layout.write_text(layout.read_text() + "transports:\n")
    (issue,) = issues_of(layout)
    assert issue.endswith("transports: expected a mapping, got nothing")


def test_an_unreadable_include_does_not_make_references_look_dangling(layout: Path) -> None:
    write(layout.parent, "stations/bench.yaml", "transports:\n  link: {kind: sim\n")
    (issue,) = issues_of(layout)
    assert issue.startswith(str(layout.parent / "stations/bench.yaml"))
    assert "YAML syntax error" in issue


def test_an_include_may_reach_into_an_allowed_sibling_folder(tmp_path: Path) -> None:
    write(tmp_path, "shared/links.yaml", STATION)
    write(tmp_path, "product/images.yaml", PRODUCT)
    (tmp_path / "product/firmware").mkdir()
    (tmp_path / "product/firmware/app.bin").write_bytes(b"\x01\x02")
    top = write(tmp_path, "product/top.yaml",
                TOP.format(includes="../shared/links.yaml, images.yaml"))
    manifest = load_manifest(top, allow=[tmp_path / "shared"])
    assert manifest.files[1] == tmp_path / "shared/links.yaml"
    assert manifest.links["link"].location.file == str(tmp_path / "shared/links.yaml")
    assert manifest.images["app"].path == tmp_path / "product/firmware/app.bin"
