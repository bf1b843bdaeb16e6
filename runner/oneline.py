"""Everyday tasks without a manifest: ``flash``, ``read``, ``erase``, ``verify``, ``reset``.

Each command describes one device (``--chip``, ``--link``) and what to do to it;
:func:`synthesise` turns that into the data of a one-device manifest, which
then goes through the same loader, compiler, executor and audit log as any
manifest: the checks, the plan, the recovery and the log are the manifest
workflow's. ``--print-manifest`` shows that manifest as YAML, a start for a
real one.

The manifest a command ran is kept beside its audit log
(``<log>.manifest.yaml``), so the log's ``manifest_sha256`` names a file that
exists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.errors import EnvironmentProblem, ManifestError, PlanError
from runner.plan import Plan

__all__ = ["DEVICE", "ImageArg", "LinkArg", "OneLine", "manifest_yaml", "parse_image",
           "parse_link", "prepare", "synthesise"]

#: The one device's name in a synthesised manifest.
DEVICE = "target"

#: The option a bare value in ``--link KIND,VALUE`` sets.
_PRIMARY = {"uart": "port", "i2c": "bus", "can": "channel", "stlink": "serial",
            "dfu": "serial"}

#: Stand-ins for required options a rehearsal does not need (nothing is opened).
_SIMULATED_DEFAULTS: dict[str, dict[str, Any]] = {
    "uart": {"port": "/dev/ttyUSB0"}, "i2c": {"bus": 1},
    "can": {"interface": "virtual", "channel": "sim"},
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkArg:
    """``--link KIND[,key=value…]`` parsed: the kind and its options (typed by its schema)."""

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageArg:
    """``IMAGE[@ADDRESS]``: a file and, for raw binaries, where it goes."""

    path: Path
    address: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OneLine:
    """What one command asks of one device.

    ``steps`` are manifest recipe steps (``{"erase": {"scope": "used"}}``, …), where
    ``"*"`` stands for the list of every image (``{"write": "*"}``);
    ``images`` are named ``image-1``, ``image-2``, … in the order given, unless
    their file names are distinct, in which case the stems name them.
    """

    command: str
    part: str
    link: LinkArg
    steps: tuple[Mapping[str, Any], ...]
    images: tuple[ImageArg, ...] = ()
    simulate: bool = False


def _parse_int(text: str, what: str) -> int:
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise PlanError(f"{what} {text!r} is not a number",
                        hint="write it in decimal or with 0x for hexadecimal") from None


def parse_image(text: str) -> ImageArg:
    """``fw.bin@0x08000000`` → the file and the address; an ``@`` without a number is a name."""
    path, at, address = text.rpartition("@")
    if at and path and re.fullmatch(r"(0[xX][0-9a-fA-F_]+|\d[\d_]*)", address):
        return ImageArg(path=Path(path), address=_parse_int(address, "address"))
    return ImageArg(path=Path(text))


def _typed(kind: str, key: str, text: str, spec: Mapping[str, Any]) -> Any:
    types = spec.get("type")
    types = set(types) if isinstance(types, list) else {types} if types else set()
    if "boolean" in types:
        lowered = text.lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise PlanError(f"--link {kind}: {key}={text} is not true or false")
    if types == {"string"}:
        return text
    if types <= {"integer", "number"} and types:
        if "number" in types and not re.fullmatch(r"0[xX].*", text):
            try:
                return float(text) if "." in text else int(text)
            except ValueError:
                pass
        return _parse_int(text, f"--link {kind}: {key}")
    if "integer" in types and re.fullmatch(r"(0[xX][0-9a-fA-F]+|\d+)", text):
        return int(text, 0)
    # No single type (an enum, number-or-name): YAML reads it as a manifest would.
    value = yaml.safe_load(text) if text else text
    return value if isinstance(value, (int, float, str, bool)) else text


def parse_link(text: str) -> LinkArg:
    """``stlink,serial=066D…`` / ``uart,port=/dev/ttyUSB0,boot0=rts`` / ``uart,/dev/ttyUSB0``.

    Values are typed by the kind's option schema (``baud=115200`` is a number,
    ``serial=0123`` stays text); unknown keys are left for the manifest checks,
    which name the valid ones.

    Raises:
        PlanError: the text is malformed or the kind unknown.
    """
    from transports.registry import load_transport

    kind, _, rest = text.partition(",")
    kind = kind.strip()
    if not kind:
        raise PlanError(f"--link {text!r} names no link kind",
                        hint="start with the kind: stlink, uart, i2c, can, dfu or sim")
    schema = load_transport(kind).options_schema
    properties: Mapping[str, Any] = schema.get("properties", {})
    options: dict[str, Any] = {}
    for index, item in enumerate(part for part in rest.split(",") if part):
        key, equals, value = item.partition("=")
        if not equals:
            primary = _PRIMARY.get(kind)
            if index or primary is None:
                raise PlanError(f"--link {text!r}: {item!r} is not key=value",
                                hint=f"options of {kind}: {', '.join(properties) or 'none'}")
            key, value = primary, item
        key = key.strip()
        if key in options:
            raise PlanError(f"--link {text!r} sets {key} twice")
        options[key] = _typed(kind, key, value.strip(), properties.get(key, {}))
    return LinkArg(kind=kind, options=options)


def _image_names(images: Sequence[ImageArg]) -> list[str]:
    stems = [re.sub(r"[^A-Za-z0-9._-]", "-", image.path.stem).lstrip("._-") or "image"
             for image in images]
    if len(set(stems)) == len(stems):
        return stems
    return [f"image-{index}" for index in range(1, len(images) + 1)]


def synthesise(request: OneLine, *, log_file: Path | None = None,
               absolute: bool = True) -> dict[str, Any]:
    """The one-device manifest that does ``request``, as data.

    ``absolute`` writes image paths resolved against the working directory (a
    manifest that is run from the log folder); without it they stay as typed
    (a manifest printed to be saved and edited). ``log_file`` becomes
    ``log.file``, taken literally.
    """
    options = dict(request.link.options)
    if request.simulate:
        for key, value in _SIMULATED_DEFAULTS.get(request.link.kind, {}).items():
            options.setdefault(key, value)
    images: dict[str, Any] = {}
    for name, image in zip(_image_names(request.images), request.images, strict=True):
        path = image.path.expanduser()
        entry: dict[str, Any] = {"file": os.fspath(path.resolve() if absolute else path)}
        if image.address is not None:
            entry["address"] = Address(image.address)
        images[name] = entry
    def fill(settings: Any) -> Any:
        # "*" stands for every image of the command, in order.
        if settings == "*":
            return list(images)
        if isinstance(settings, dict):
            return {key: list(images) if value == "*" else value
                    for key, value in settings.items()}
        return settings

    steps = [{kind: fill(settings) for kind, settings in step.items()}
             for step in request.steps]
    data: dict[str, Any] = {"manifest": 1, "name": request.command,
                            "description": f"flashrunner {request.command}, one device"}
    if request.simulate:
        data["simulate"] = True
    if images:
        data["images"] = images
    data["transports"] = {request.link.kind: {"kind": request.link.kind, **options}}
    data["recipes"] = {request.command: steps}
    data["devices"] = {DEVICE: {"chip": request.part, "transport": request.link.kind,
                                "recipe": request.command}}
    if log_file is not None:
        data["log"] = {"file": os.fspath(log_file).replace("{", "{{").replace("}", "}}")}
    return data


class Address(int):
    """An integer written in hexadecimal (``0x08000000``) in a synthesised manifest."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    Address, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:int",
                                                           f"0x{int(value):08X}"))


def manifest_yaml(data: Mapping[str, Any]) -> str:
    """``data`` as a manifest file: top-level sections in block style, steps inline."""
    sections = []
    for key, value in data.items():
        if isinstance(value, dict) and key in ("images", "transports", "devices"):
            lines = [f"{key}:"] + [
                f"  {yaml.dump({name: entry}, Dumper=_Dumper, default_flow_style=True, width=1000, sort_keys=False).strip()[1:-1]}"  # noqa: E501
                for name, entry in value.items()]
            sections.append("\n".join(lines))
        elif key == "recipes":
            lines = ["recipes:"]
            for name, steps in value.items():
                lines.append(f"  {name}:")
                lines += [f"    - {yaml.dump(step, Dumper=_Dumper, default_flow_style=True, width=1000, sort_keys=False).strip()[1:-1]}"  # noqa: E501
                          for step in steps]
            sections.append("\n".join(lines))
        else:
            sections.append(yaml.dump({key: value}, Dumper=_Dumper, default_flow_style=False,
                                      width=1000, sort_keys=False).rstrip())
    return "\n".join(sections) + "\n"


def prepare(request: OneLine, *, log_file: Path) -> Plan:
    """Write the request's manifest beside ``log_file`` and compile it.

    Raises:
        EnvironmentProblem: the log or the manifest beside it cannot be created.
        ManifestError, PlanError, ImageError: the request is invalid.
    """
    from runner.compiler import compile_plan
    from runner.logtarget import check_log_target
    from runner.manifest import load_manifest

    check_log_target(log_file)
    manifest_file = log_file.with_name(log_file.name + ".manifest.yaml")
    try:
        manifest_file.parent.mkdir(parents=True, exist_ok=True)
        with manifest_file.open("x", encoding="utf-8") as handle:
            handle.write(manifest_yaml(synthesise(request, log_file=log_file)))
    except FileExistsError:
        raise EnvironmentProblem(f"{manifest_file} already exists; it is never overwritten",
                                 hint="put {run_id} or {time} in --log-file") from None
    except OSError as error:
        raise EnvironmentProblem(f"cannot write {manifest_file}: {error.strerror}",
                                 hint="check the folder is writable") from error
    try:
        return compile_plan(load_manifest(manifest_file), simulate=request.simulate or None)
    except ManifestError as error:
        # The manifest is the command line's: say what is wrong in its terms, and keep
        # no manifest for a run that never happened.
        manifest_file.unlink(missing_ok=True)
        raise PlanError("; ".join(dict.fromkeys(issue.message for issue in error.issues)),
                        hint="--print-manifest shows the manifest this command line "
                             "makes") from None
    except BaseException:
        manifest_file.unlink(missing_ok=True)
        raise
