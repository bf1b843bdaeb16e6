"""JSON Schemas shipped with flashrunner (draft 2020-12).

They are package data so that an installed wheel finds them exactly as a
checkout does; load them with :func:`load_schema`.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["load_schema", "schema_names"]


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed schema ``<name>.schema.json`` from this package."""
    text = resources.files(__name__).joinpath(f"{name}.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_names() -> list[str]:
    """Names of every schema shipped, e.g. ``["chips", "manifest"]``."""
    return sorted(
        entry.name.removesuffix(".schema.json")
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".schema.json")
    )
