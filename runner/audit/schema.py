"""``schemas/audit-log.schema.json``, generated from the event definitions.

The schema (JSON Schema draft 2020-12) describes every record of a log: the
envelope every record has and, per event, its required and optional fields
(:data:`runner.events.EVENT_TYPES`). Regenerate it after changing an event:

    python3 -m runner.audit.schema > schemas/audit-log.schema.json

A test keeps the committed file equal to what this module generates.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from runner.audit.chain import FORMAT
from runner.events import ENVELOPE, EVENT_TYPES, EventType

__all__ = ["audit_log_schema", "render_schema"]

_ALWAYS = ("ts", "seq", "run_id", "event", "prev")


def _event_schema(definition: EventType) -> dict[str, Any]:
    properties: dict[str, Any] = {name: {"$ref": f"#/$defs/envelope/properties/{name}"}
                                  for name in ENVELOPE}
    properties["event"] = {"const": definition.name}
    properties.update(definition.required)
    properties.update(definition.optional)
    return {"description": definition.doc, "type": "object",
            "required": [*_ALWAYS, *definition.required], "properties": properties,
            "additionalProperties": definition.open}


def audit_log_schema() -> dict[str, Any]:
    """The schema of one audit-log record, as a JSON-ready object."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://flashrunner.dev/schemas/audit-log.schema.json",
        "title": f"flashrunner audit log record ({FORMAT})",
        "description": "One line of a flashrunner JSONL audit log. Generated from "
                       "runner/events.py by `python3 -m runner.audit.schema`; do not edit.",
        "type": "object",
        "required": list(_ALWAYS),
        "properties": {"event": {"enum": list(EVENT_TYPES)}},
        "allOf": [{"if": {"required": ["event"], "properties": {"event": {"const": name}}},
                   "then": {"$ref": f"#/$defs/{name}"}} for name in EVENT_TYPES],
        "$defs": {"envelope": {"description": "The fields every record may carry.",
                               "type": "object", "properties": ENVELOPE},
                  **{name: _event_schema(definition)
                     for name, definition in EVENT_TYPES.items()}},
    }


def render_schema() -> str:
    """The schema file's text."""
    return json.dumps(audit_log_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_schema())
