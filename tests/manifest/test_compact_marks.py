"""The compact marks locate every value and key exactly, on libyaml's and PyYAML's parser.

The reference is PyYAML's own node tree (``yaml.compose``): for every path of
a document, the node that path leads to gives the expected line and column of
the value and of its key. The event-driven loader must give the same for each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.errors import ManifestError
from runner.manifest import load_manifest
from runner.manifest.marks import Mark
from runner.manifest.yamlmarks import DEFAULT_LOADER, FastLoader, PureLoader, load_marked

LOADERS = pytest.mark.parametrize("loader", [FastLoader, PureLoader],
                                  ids=["libyaml", "pure-python"])


def expected_marks(text: str, loader: type[PureLoader] = PureLoader,
                   ) -> dict[tuple[Any, ...], tuple[Mark | None, Mark]]:
    """path → (key mark, value mark), from the node tree ``loader`` composes (no merge
    keys). The two parsers differ only in where an empty value starts."""
    found: dict[tuple[Any, ...], tuple[Mark | None, Mark]] = {}

    def mark(node: Node) -> Mark:
        return Mark("f.yaml", node.start_mark.line + 1, node.start_mark.column + 1)

    def walk(node: Node, path: tuple[Any, ...], key: Node | None) -> None:
        found[path] = (mark(key) if key is not None else None, mark(node))
        if isinstance(node, MappingNode):
            for key_node, value in node.value:
                assert isinstance(key_node, ScalarNode)
                walk(value, (*path, key_node.value), key_node)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index), None)

    root = yaml.compose(text, Loader=loader)
    assert root is not None
    walk(root, (), None)
    return found


DOCUMENTS = {
    "block": "manifest: 1\nname: line\ndevices:\n  dev-1:\n    chip: stm32f103c8\n"
             "    after: [dev-0]\n  dev-0:\n    chip: stm32g071rb\n",
    "flow": "devices: {dev-1: {chip: x, after: [a, b]}, dev-2: {chip: y}}\n"
            "list: [[1, 2], {k: v}, 3]\n",
    "multi-line scalars": "description: |\n  first line\n  second line\nnote: >\n  folded\n"
                          "  text\nafter: next\nquoted: \"a\n  b\"\nlast: 1\n",
    "compact lists": "steps:\n- erase: {scope: used}\n- write:\n  - boot\n  - app\n"
                     "- verify: {}\n",
    "aliases": "base: &b {rate: 1, bus: x}\nuse: *b\nlist: &l [1, 2]\nagain: *l\n",
    "empty values": "a:\nb: {c: }\nd: [~, null]\n",
    "long mapping": "devices:\n" + "".join(f"  d{i}: {{chip: c{i % 3}}}\n" for i in range(60)),
}


@LOADERS
@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_value_and_key_is_where_the_node_tree_puts_it(
        loader: type[PureLoader], name: str) -> None:
    text = DOCUMENTS[name]
    _, marks, issues = load_marked(text, "f.yaml", loader=loader)
    assert issues == []
    for path, (key, value) in expected_marks(text, loader).items():
        assert marks.value(path) == value, path
        assert marks.key(path) == (key or value), path


@LOADERS
def test_merged_entries_keep_the_marks_of_the_mapping_they_come_from(
        loader: type[PureLoader]) -> None:
    text = "base: &b {rate: 1,\n        bus: x}\nlink: {<<: *b, rate: 2}\n"
    data, marks, issues = load_marked(text, "f.yaml", loader=loader)
    assert issues == [] and data["link"] == {"bus": "x", "rate": 2}
    assert marks.key(("link", "bus")) == Mark("f.yaml", 2, 9)
    assert marks.value(("link", "bus")) == Mark("f.yaml", 2, 14)
    assert marks.key(("link", "rate")) == Mark("f.yaml", 3, 16)


@LOADERS
def test_issues_are_located_in_flow_style_and_after_multi_line_scalars(
        loader: type[PureLoader]) -> None:
    text = "description: |\n  one\n  two\nnote: 'x\n  y'\nd: {a: 1, b: .inf, a: 2}\n"
    _, _, issues = load_marked(text, "f.yaml", loader=loader)
    assert [(i.line, i.column, i.where) for i in issues] == [(6, 14, "d.b"), (6, 20, "d.a")]


def test_the_c_parser_is_used_where_pyyaml_has_it() -> None:
    assert (DEFAULT_LOADER is FastLoader) == bool(getattr(yaml, "__with_libyaml__", False))


_scalars = st.one_of(st.integers(-5, 2**40), st.booleans(), st.none(),
                     st.text(st.characters(codec="ascii", categories=["L", "N"]), max_size=5),
                     st.floats(allow_nan=False, allow_infinity=False, width=32))
_keys = st.text(st.characters(codec="ascii", categories=["L"]), min_size=1, max_size=4)
_documents = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)), max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(_documents, st.sampled_from([None, True, False]))
def test_libyaml_and_pure_python_give_the_same_data_and_marks(document: Any,
                                                               flow: bool | None) -> None:
    text = yaml.safe_dump({"top": document}, default_flow_style=flow, width=30)
    fast, fast_marks, fast_issues = load_marked(text, "f.yaml", loader=FastLoader)
    pure, pure_marks, pure_issues = load_marked(text, "f.yaml", loader=PureLoader)
    assert fast == pure and fast_issues == pure_issues
    for path in expected_marks(text):
        assert fast_marks.value(path) == pure_marks.value(path)
        assert fast_marks.key(path) == pure_marks.key(path)


# ---------------------------------------------------------------------- includes

TOP = """\
manifest: 1
name: line
simulate: true
include: [part.yaml]
images:
  app: {file: app.bin, address: 0x08000000}
transports:
  link: {kind: sim}
recipes:
  std: [{erase: {}}, {write: [app]}]
devices:
  top-1: {chip: stm32f103c8, transport: link, recipe: std}
"""

PART = """\
description: |
  devices of station 2,
  written out
devices:
  part-1: {chip: stm32f103c8, transport: link, recipe: std}
  part-2:
    chip: stm32f103c8
    transport: lnk
    recipe: std
  part-3: {chip: stm32f103c8, transport: link, recipe: nope}
"""


def test_issues_in_an_included_file_are_located_in_it(tmp_path: Path) -> None:
    (tmp_path / "app.bin").write_bytes(bytes(64))
    (tmp_path / "m.yaml").write_text(TOP)
    (tmp_path / "part.yaml").write_text(PART)
    with pytest.raises(ManifestError) as raised:
        load_manifest(tmp_path / "m.yaml")
    located = [(i.file.rsplit("/", 1)[-1], i.line, i.column, i.where)
               for i in raised.value.issues]
    assert located == [("part.yaml", 8, 16, "devices.part-2.transport"),
                       ("part.yaml", 10, 56, "devices.part-3.recipe")]


def test_merged_sections_keep_each_entry_in_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "app.bin").write_bytes(bytes(64))
    (tmp_path / "m.yaml").write_text(TOP)
    (tmp_path / "part.yaml").write_text(PART.replace("lnk", "link").replace("nope", "std"))
    manifest = load_manifest(tmp_path / "m.yaml")
    where = {name: (d.location.file.rsplit("/", 1)[-1], d.location.line, d.location.column)
             for name, d in manifest.devices.items()}
    assert where == {"top-1": ("m.yaml", 12, 3), "part-1": ("part.yaml", 5, 3),
                     "part-2": ("part.yaml", 6, 3), "part-3": ("part.yaml", 10, 3)}
