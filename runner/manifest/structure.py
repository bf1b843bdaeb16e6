"""Schema validation of one manifest file, phrased for humans.

jsonschema finds the problems; this module says them the way a colleague
would: ``unknown key 'recipie' in devices.sensor-1; did you mean 'recipe'?``,
located at the offending key (unknown keys), the parent mapping (missing
keys) or the offending value (everything else).

A file found free of schema problems is remembered (:mod:`runner.manifest.remembered`),
so the next run of the same manifest neither imports jsonschema nor checks it again.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from runner.errors import ManifestIssue
from runner.manifest.fastpath import plain_devices
from runner.manifest.remembered import check_digest, passed, remember
from runner.manifest.yamlmarks import Mark, Marks, Path, format_path
from schemas import load_schema

if TYPE_CHECKING:
    import jsonschema
    from jsonschema.exceptions import ValidationError

__all__ = ["did_you_mean", "phrase", "phrase_errors", "remembered_errors", "strict_validator",
           "validate_file"]

#: Every number in a manifest fits in 64 bits (and each field has its own range).
NUMBER_LIMIT = 2**64


def _is_integer(checker: Any, value: Any) -> bool:
    # JSON Schema's integer accepts 1000.0; a count or an address is written as one.
    return isinstance(value, int) and not isinstance(value, bool) \
        and -NUMBER_LIMIT < value < NUMBER_LIMIT


def _is_number(checker: Any, value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and abs(value) < NUMBER_LIMIT
    return _is_integer(checker, value)


@cache
def _strict() -> Any:
    import jsonschema

    types = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _is_integer, "number": _is_number})
    return jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, type_checker=types)


def strict_validator(schema: Mapping[str, Any]) -> jsonschema.Draft202012Validator:
    """A draft 2020-12 validator whose integers are ints and whose numbers are finite.

    Every schema a manifest is checked against (the manifest's own, each
    transport's ``options_schema``) goes through this one.
    """
    validator: jsonschema.Draft202012Validator = _strict()(dict(schema))
    return validator


def remembered_errors(kind: str, schema: Mapping[str, Any],
                      data: Any) -> Iterator[ValidationError]:
    """``strict_validator(schema)``'s errors for ``data``; none, unchecked, when that
    same check passed before (:mod:`runner.manifest.remembered`)."""
    digest = check_digest(kind, schema, data)
    if passed(digest):
        return
    clean = True
    for error in strict_validator(schema).iter_errors(data):
        clean = False
        yield error
    if clean:
        remember(digest)

_TYPE_NAMES = {
    "object": "a mapping", "array": "a list", "string": "text", "integer": "an integer",
    "number": "a number", "boolean": "true or false", "null": "nothing",
}


@cache
def _file_schema(top: bool) -> dict[str, Any]:
    schema = load_schema("manifest")
    if not top:
        schema = {"$defs": schema["$defs"], "$ref": "#/$defs/included-file"}
    return schema


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'recipe'?"`` when ``word`` is close to one of ``choices``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def validate_file(data: Any, marks: Marks, *, top: bool) -> list[ManifestIssue]:
    """Check one file's structure: the manifest schema, or the included-file part of it.

    Plain device entries of a long list are accepted by a quick check
    (:mod:`runner.manifest.fastpath`); the validator sees the others.
    """
    digest = check_digest("manifest-file", _file_schema(top), data)
    if passed(digest):
        return []
    plain = plain_devices()
    devices = data.get("devices") if isinstance(data, dict) else None
    if plain is not None and isinstance(devices, dict):
        rest = {name: entry for name, entry in devices.items()
                if not plain.plainly_valid(name, entry)}
        if len(rest) < len(devices):
            data = {**data, "devices": rest}
    issues = phrase_errors(_validator(top).iter_errors(data), marks, ())
    if not issues:
        remember(digest)
    return issues


@cache
def _validator(top: bool) -> jsonschema.Draft202012Validator:
    return strict_validator(_file_schema(top))


def phrase_errors(errors: Iterable[ValidationError], marks: Marks, prefix: Path,
                  *, subject: str = "") -> list[ManifestIssue]:
    """Turn jsonschema errors about data found at ``prefix`` into located issues."""
    issues: list[ManifestIssue] = []
    for error in errors:
        for path, at_key, message in phrase(error, subject):
            full = (*prefix, *path)
            mark = marks.key(full) if at_key else marks.value(full)
            issues.append(_issue(mark, full, message))
    return issues


def _issue(mark: Mark, path: Path, message: str) -> ManifestIssue:
    return ManifestIssue(file=mark.file, line=mark.line, column=mark.column,
                         where=format_path(path), message=message)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, int) and abs(value) >= NUMBER_LIMIT and len(str(value)) > 80:
        return f"a number of {len(str(abs(value)))} digits"
    if isinstance(value, float) and abs(value) >= NUMBER_LIMIT:
        return f"{value!r} (more than 64 bits)"
    return repr(value)


def _expected(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    names = [_TYPE_NAMES.get(str(k), str(k)) for k in kinds]
    if "enum" in schema:
        names.append("one of " + ", ".join(str(v) for v in schema["enum"]))
    if "const" in schema:
        names.append(repr(schema["const"]))
    return " or ".join(names) if names else "something else"


def phrase(error: ValidationError, subject: str = "") -> list[tuple[Path, bool, str]]:
    """(path relative to the validated instance, point at key?, message) for one error."""
    path: Path = tuple(error.absolute_path)
    where = format_path(path) or subject or "the top level"
    # The issue is prefixed with its path; name the subject only where there is none.
    of = f" of {subject}" if subject and not path else ""
    kind = error.validator
    value = error.instance
    rule: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if kind == "additionalProperties" and isinstance(value, Mapping):
        known = list(schema.get("properties", {}))
        extras = [k for k in value if k not in known]
        return [((*path, key), True,
                 f"unknown key '{key}' in {where}{did_you_mean(key, known)}"
                 + ("" if did_you_mean(key, known) else
                    f"; allowed keys: {', '.join(known)}" if known else ""))
                for key in extras]
    if kind == "required" and isinstance(value, Mapping):
        known = list(schema.get("properties", {}))
        closed = schema.get("additionalProperties") is False
        typos = [k for k in value if k not in known] if closed else []
        # A typo'd key is reported as unknown, with the missing key as suggestion.
        missing = [k for k in rule if k not in value
                   and not any(did_you_mean(t, [k]) for t in typos)]
        return [(path, False, f"the required key '{key}'{of} is missing; add it")
                for key in missing]
    if "propertyNames" in error.schema_path:
        key = str(value)
        if kind == "maxLength":
            return [((*path, key), True, f"name {key[:20]!r}… is longer than {rule} "
                                         f"characters (names become parts of file names); "
                                         f"shorten it")]
        return [((*path, key), True, f"name {key!r} is not allowed: use letters, digits, '.', "
                             f"'_' and '-', starting with a letter or digit")]
    if kind == "type":
        hint = ""
        if "integer" in str(error.validator_value) and isinstance(value, str):
            hint = "; write numbers without quotes (e.g. 0x08004000)"
        elif isinstance(value, str) and error.validator_value == "boolean":
            hint = "; write true or false without quotes"
        elif error.validator_value == "string" and isinstance(value, (int, float)):
            hint = "; put it in quotes so it stays text"
        elif isinstance(value, float) and "integer" in str(error.validator_value) \
                and value.is_integer() and abs(value) < NUMBER_LIMIT:
            hint = "; write it without a decimal point"
        return [(path, False,
                 f"expected {_expected(schema)}, got {_describe(value)}{hint}")]
    if kind == "enum":
        choices = [str(c) for c in rule]
        suggestion = did_you_mean(str(value), choices) if isinstance(value, str) else ""
        return [(path, False, f"{_describe(value)} is not allowed here; use one of "
                              f"{', '.join(choices)}{suggestion}")]
    if kind == "const":
        return [(path, False, f"must be {error.validator_value!r}, got {_describe(value)}")]
    if kind == "pattern":
        if len(path) >= 2 and path[-2] == "actions" and isinstance(value, str):
            return [(path, False, _recovery_action_problem(value))]
        return [(path, False, f"{_describe(value)} is not a valid "
                              f"{_pattern_name(path)}")]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": "at least", "maximum": "at most",
                 "exclusiveMinimum": "more than", "exclusiveMaximum": "less than"}
        limit = error.validator_value
        shown = f"0x{limit:X}" if isinstance(limit, int) and limit > 0xFFFF else str(limit)
        return [(path, False, f"{_describe(value)} is out of range: must be {words[kind]} "
                              f"{shown}")]
    if kind == "maxLength":
        return [(path, False, f"is longer than {rule} characters; shorten it")]
    if kind == "maxItems":
        return [(path, False, f"has more than {rule} entries")]
    if kind in ("minItems", "minLength"):
        return [(path, False, f"is empty; give at least one entry{of}")]
    if kind == "uniqueItems":
        return [(path, False, "names something twice; list each once")]
    if kind in ("oneOf", "anyOf"):
        return _phrase_alternatives(error, path, subject)
    return [(path, False, error.message)]


_RECOVERY_ACTIONS = ("reconnect", "reset", "nrst-pulse", "boot-entry", "power-cycle",
                     "probe-power-cycle")


def _recovery_action_problem(value: str) -> str:
    """A recovery action (or ``a|b`` choice) that is not one: which part, and what to use."""
    for part in value.split("|"):
        if part not in _RECOVERY_ACTIONS:
            return (f"{_describe(part)} is not allowed here; use one of "
                    f"{', '.join(_RECOVERY_ACTIONS)} (or a|b for the first one the device is "
                    f"wired for){did_you_mean(part, list(_RECOVERY_ACTIONS))}")
    return f"{_describe(value)} is not a recovery action"


def _pattern_name(path: Path) -> str:
    last = path[-1] if path else ""
    if last == "sha256":
        return "sha256 pin: write the 64 hex digits of `sha256sum FILE`"
    if last == "name":
        return "product name: use lower-case letters, digits, '.', '_' and '-'"
    return "value"


def _phrase_alternatives(error: ValidationError, path: Path,
                         subject: str) -> list[tuple[Path, bool, str]]:
    rule: Any = error.validator_value
    branches: Sequence[Mapping[str, Any]] = rule
    value = error.instance
    if all(set(b) == {"required"} for b in branches) and isinstance(value, Mapping):
        names = [b["required"][0] for b in branches]
        present = [n for n in names if n in value]
        if error.validator == "oneOf" and len(present) > 1:
            return [(path, False, f"has {' and '.join(present)}, but takes only one of "
                                  f"them; split it in two")]
        amount = "exactly" if error.validator == "oneOf" else "at least"
        return [(path, False, f"needs {amount} one of the keys {', '.join(names)}")]
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        by_branch.setdefault(int(sub.schema_path[0]), []).append(sub)
    fitting = [index for index, branch in enumerate(branches)
               if _type_fits(branch, value)]
    if len(fitting) == 1 and by_branch.get(fitting[0]):
        result: list[tuple[Path, bool, str]] = []
        for sub in by_branch[fitting[0]]:
            for sub_path, at_key, message in phrase(sub, subject):
                result.append((sub_path, at_key, message))
        if result:
            return result
    wanted = " or ".join(_expected(b) for b in branches)
    return [(path, False, f"expected {wanted}, got {_describe(value)}")]


def _type_fits(schema: Mapping[str, Any], value: Any) -> bool:
    kind = schema.get("type")
    if kind is None:
        return True
    import jsonschema

    checker = jsonschema.Draft202012Validator.TYPE_CHECKER
    kinds = kind if isinstance(kind, list) else [kind]
    return any(checker.is_type(value, k) for k in kinds)
