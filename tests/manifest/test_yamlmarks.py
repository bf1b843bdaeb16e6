"""The marked YAML reader: plain data, positions on the side, strict keys."""

from __future__ import annotations

from runner.manifest.yamlmarks import Mark, format_path, load_marked


def test_data_is_plain_dicts_and_lists() -> None:
    data, _, issues = load_marked("a: {b: [1, 2]}\n", "f.yaml")
    assert data == {"a": {"b": [1, 2]}} and type(data["a"]) is dict and issues == []


def test_every_value_and_key_has_its_position() -> None:
    _, marks, _ = load_marked("devices:\n  s1: {chip: x}\n", "f.yaml")
    assert marks.key(("devices", "s1", "chip")) == Mark("f.yaml", 2, 8)
    assert marks.value(("devices", "s1", "chip")) == Mark("f.yaml", 2, 14)
    assert marks.value(("devices", "s1")) == Mark("f.yaml", 2, 7)


def test_an_unmarked_path_falls_back_to_its_nearest_ancestor() -> None:
    _, marks, _ = load_marked("devices:\n  s1: {chip: x}\n", "f.yaml")
    assert marks.value(("devices", "s1", "recipe")) == Mark("f.yaml", 2, 7)


def test_hex_numbers_are_integers() -> None:
    data, _, _ = load_marked("address: 0x08004000\n", "f.yaml")
    assert data == {"address": 0x08004000}


def test_only_true_and_false_are_booleans() -> None:
    data, _, _ = load_marked("a: true\nb: False\non: [x]\nc: yes\nd: off\n", "f.yaml")
    assert data == {"a": True, "b": False, "on": ["x"], "c": "yes", "d": "off"}


def test_duplicate_keys_are_reported_with_both_positions() -> None:
    data, _, issues = load_marked("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert data == {"a": 1, "b": 2}
    (issue,) = issues
    assert (issue.line, issue.column, issue.where) == (3, 1, "a")
    assert "first written at line 1, column 1" in issue.message


def test_merge_keys_may_be_overridden_without_a_duplicate() -> None:
    text = "base: &b {rate: 1, bus: x}\nlink: {<<: *b, rate: 2}\n"
    data, _, issues = load_marked(text, "f.yaml")
    assert issues == [] and data["link"] == {"rate": 2, "bus": "x"}


def test_a_self_referencing_alias_is_reported() -> None:
    data, _, issues = load_marked("a: &x [1, *x]\n", "f.yaml")
    assert data == {"a": [1, None]}
    assert "refers to itself" in issues[0].message


def test_syntax_errors_are_located() -> None:
    data, _, issues = load_marked("a: [1, 2\nb: 3\n", "f.yaml")
    assert data is None
    (issue,) = issues
    assert issue.file == "f.yaml" and issue.line == 2 and "YAML syntax error" in issue.message


def test_an_empty_document_is_none() -> None:
    assert load_marked("# only a comment\n", "f.yaml")[0] is None


def test_paths_read_as_dotted_names_with_indices() -> None:
    assert format_path(("recipes", "std", 2, "verify")) == "recipes.std[2].verify"
    assert format_path(()) == ""
