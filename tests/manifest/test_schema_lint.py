"""The schema file alone lints a manifest's structure, as a CI job would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from schemas import load_schema, schema_names

HERE = Path(__file__).parent
GOOD = HERE / "good" / "widget.yaml"
SCHEMA = Path(__file__).parents[2] / "schemas" / "manifest.schema.json"

LINT = """
import json, sys, jsonschema, yaml
schema = json.load(open(sys.argv[1]))
document = yaml.safe_load(open(sys.argv[2]))
errors = list(jsonschema.Draft202012Validator(schema).iter_errors(document))
for error in errors:
    print(error.json_path, error.message)
sys.exit(1 if errors else 0)
"""


def lint(manifest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LINT, str(SCHEMA), str(manifest)],
                          capture_output=True, text=True, check=False)


def test_schema_is_valid_draft_2020_12_with_an_id() -> None:
    schema = json.loads(SCHEMA.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith("manifest.schema.json")
    assert "manifest" in schema_names() and load_schema("manifest") == schema


def test_schema_alone_accepts_the_good_manifest() -> None:
    result = lint(GOOD)
    assert result.returncode == 0, result.stdout


def test_schema_alone_rejects_an_unknown_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.read_text().replace("recipe: standard}", "recipie: standard}", 1))
    result = lint(bad)
    assert result.returncode == 1
    assert "$.devices['sensor-1']" in result.stdout and "'recipie' was unexpected" in result.stdout


def test_schema_alone_accepts_the_included_station_file() -> None:
    schema = load_schema("manifest")
    fragment = {"$defs": schema["$defs"], "$ref": "#/$defs/included-file"}
    station = yaml.safe_load((HERE / "good" / "station.yaml").read_text())
    assert list(jsonschema.Draft202012Validator(fragment).iter_errors(station)) == []
