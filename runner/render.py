"""Renderings of a :class:`~runner.plan.Plan`: a table for people, JSON, Graphviz DOT.

All three are deterministic functions of the plan: no absolute paths, no
timestamps, so they diff cleanly and serve as golden files. The JSON carries
``"plan": 1``, its format version; addresses are ``"0x08000000"`` strings and
durations are rounded to the millisecond.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from typing import Any, TextIO

from runner.capabilities import planned_for, verify_via
from runner.layout import block_noun
from runner.memmap import MemoryMap
from runner.plan import (
    ConnectAction,
    DevicePlan,
    DeviceTasks,
    EraseAction,
    ImageUse,
    OptionBytesAction,
    Plan,
    ReadAction,
    ResetAction,
    Task,
    UnitDataAction,
    VerifyAction,
    WriteAction,
)
from runner.unitdata import describe_source
from runner.units import format_bytes, format_seconds
from transports.chips import FlashBlock

__all__ = ["JSON_VERSION", "render_dot", "render_json", "render_table", "write_json"]

JSON_VERSION = 1


def _hex(address: int) -> str:
    return f"0x{address:08X}"


# ----------------------------------------------------------------------------- table


def render_table(plan: Plan) -> str:
    """The plan as people read it: header, stages with one row per device, critical path."""
    written = sum(device.memory.size for device in plan.devices)
    lines = [
        f"plan {plan.name}  (manifest {plan.manifest_path.name}, "
        f"sha256 {plan.manifest_sha256[:12]})",
        f"simulate: {'on' if plan.simulate else 'off'}   devices: {len(plan.devices)}   "
        f"max-parallel: {plan.execution.max_parallel}   writes: {format_bytes(written)}   "
        f"estimated: {format_seconds(plan.estimate_s)}",
    ]
    if plan.not_selected:
        lines.append(f"not selected: {', '.join(plan.not_selected)}")
    header = ("DEVICE", "CHIP", "LINK", "RESOURCE", "WRITES", "ESTIMATE")
    rows = {d.device: (d.device, d.chip.part, f"{d.link} ({d.kind})", d.resource,
                       format_bytes(d.memory.size), format_seconds(d.estimate_s))
            for d in plan.devices}
    widths = [max([len(header[i]), *(len(row[i]) for row in rows.values())])
              for i in range(len(header))]

    def row_text(cells: Sequence[str]) -> str:
        left = [cell.ljust(width) for cell, width in zip(cells[:4], widths[:4], strict=True)]
        right = [cell.rjust(width) for cell, width in zip(cells[4:], widths[4:], strict=True)]
        return "    " + "  ".join(left + right).rstrip()

    for stage in plan.stages:
        lines += ["", f"stage {stage.index + 1}", row_text(header)]
        for name in stage.devices:
            device = plan.device(name)
            lines.append(row_text(rows[name]))
            if device.after:
                lines.append(f"      after {', '.join(device.after)}")
            steps = " → ".join(_step_summary(task, device) for task in device.tasks)
            lines.append(f"      {steps}")
    lines.append("")
    chain = list(dict.fromkeys(task_id.split("/")[0] for task_id in plan.critical_path))
    if chain:
        lines.append(f"critical path ({format_seconds(plan.estimate_s)}): "
                     + " → ".join(f"{name} ({format_seconds(plan.device(name).estimate_s)})"
                                  for name in chain))
    else:
        lines.append("critical path: none (no devices)")
    if plan.warnings:
        lines += ["", "warnings:"]
        lines += [f"  - {warning}" for warning in plan.warnings]
    return "\n".join(lines) + "\n"


def _step_summary(task: Task, device: DevicePlan) -> str:
    action = task.action
    if isinstance(action, ConnectAction):
        return "connect"
    if isinstance(action, EraseAction):
        if not action.blocks:
            return "mass erase"
        noun = block_noun(device.chip.flash)
        count = len(action.blocks)
        kept = sum(span.length for span in action.preserve)
        keeping = f", keeping {format_bytes(kept)}" if kept else ""
        return f"erase {count} {noun}{'s' if count != 1 else ''}{keeping}"
    if isinstance(action, WriteAction):
        names = ", ".join(use.name for use in action.images)
        back = " + kept bytes" if action.keep else ""
        skip = ", skipping unchanged units" if action.skip_unchanged else ""
        return f"write {format_bytes(action.memory.size)} ({names}){back}{skip}"
    if isinstance(action, UnitDataAction):
        return (f"unit-data {format_bytes(action.size)} at {_hex(action.address)} "
                f"({describe_source(action.source)})")
    if isinstance(action, VerifyAction):
        via = verify_via(action.method, planned_for(device))
        against = f" of {', '.join(use.name for use in action.images)}" if action.images else ""
        return f"verify{against} ({'read-back' if via == 'readback' else via})"
    if isinstance(action, OptionBytesAction):
        change = action.change
        parts = ([f"rdp {change.rdp_level}"] if change.rdp_level is not None else []) \
            + [f"{key} {value}" for key, value in change.fields.items()]
        return f"option-bytes ({', '.join(parts)})" if parts else "option-bytes"
    if isinstance(action, ReadAction):
        return (f"read {format_bytes(action.size)} at {_hex(action.address)} to "
                f"{action.path.name} ({action.format})")
    return f"reset ({action.mode.value})"


# ----------------------------------------------------------------------------- JSON


def write_json(plan: Plan, out: TextIO) -> None:
    """:func:`render_json`'s document written to ``out`` as each device is rendered.

    The top level is indented; each device is one compact line, encoded by the
    C JSON encoder (the indenting one is pure Python) and dropped once written,
    so a plan of 50,000 devices never exists as one JSON tree in memory.
    """
    marker = "\x00devices\x00"
    head = json.dumps(_document(plan, marker), indent=2, ensure_ascii=False)
    before, _, after = head.partition(json.dumps(marker))
    out.write(before + "[")
    lines = _DeviceLines()
    for index, device in enumerate(plan.devices):
        out.write(",\n    " if index else "\n    ")
        out.write(lines.line(device))
    out.write("\n  ]" if plan.devices else "]")
    out.write(after + "\n")


#: Stand-ins for what differs between devices alike, in a device line encoded once.
_NAME, _AFTER, _ID = "\x00name\x00", "\x00after\x00", "\x00id\x00"
_STAND_IN = re.compile('"\\\\u0000(name|after|id)\\\\u0000"')


class _DeviceLines:
    """Each device's JSON line, encoded once per group of devices alike.

    Devices sharing their task group, chip, link, resource, options and
    memory differ only in their name, ``after`` list and task ids: the line is
    encoded once with stand-ins for those and filled in per device. The text
    is the one ``json.dumps`` gives for the device (a name's escapes do not
    depend on what surrounds it).
    """

    def __init__(self) -> None:
        self._pieces: dict[tuple[object, ...], tuple[list[str], tuple[str, ...], object]] = {}

    def line(self, device: DevicePlan) -> str:
        tasks = device.tasks
        if not isinstance(tasks, DeviceTasks):
            return json.dumps(_device_json(device), ensure_ascii=False)
        key = (id(tasks.group), id(device.chip), device.link, device.kind, device.resource,
               id(device.options), id(device.memory), id(device.images))
        known = self._pieces.get(key)
        if known is None:
            known = self._pieces[key] = self._encode(device, tasks)
        pieces, suffixes, _ = known
        if not pieces:
            return json.dumps(_device_json(device), ensure_ascii=False)
        name = json.dumps(device.device, ensure_ascii=False)
        parts = [pieces[0], name, pieces[1], json.dumps(list(device.after), ensure_ascii=False),
                 pieces[2]]
        stem = name[:-1]
        for suffix, piece in zip(suffixes, pieces[3:], strict=True):
            parts.append(stem + suffix)
            parts.append(piece)
        return "".join(parts)

    @staticmethod
    def _encode(device: DevicePlan,
                tasks: DeviceTasks) -> tuple[list[str], tuple[str, ...], object]:
        document = _device_json(device)
        document["name"], document["after"] = _NAME, _AFTER
        for task in document["tasks"]:
            task["id"] = _ID
        split = _STAND_IN.split(json.dumps(document, ensure_ascii=False))
        pieces, found = split[::2], split[1::2]
        suffixes = tuple(f'/{t.index}-{t.kind.value}"' for t in tasks.group.templates)
        if found != ["name", "after", *["id"] * len(suffixes)]:
            pieces = []   # a stand-in's text is in the data itself: encode each device
        # The objects keyed by id stay alive as long as their entry.
        pinned = (tasks.group, device.chip, device.options, device.memory, device.images)
        return pieces, suffixes, pinned


def render_json(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-able data with a stable key order and content."""
    return _document(plan, [_device_json(device) for device in plan.devices])


def _document(plan: Plan, devices: object) -> dict[str, Any]:
    return {
        "plan": JSON_VERSION,
        "name": plan.name,
        "manifest": {"file": plan.manifest_path.name, "sha256": plan.manifest_sha256},
        "simulate": plan.simulate,
        "execution": {"max-parallel": plan.execution.max_parallel,
                      "fail-fast": plan.execution.fail_fast},
        "bytes": sum(device.bytes for device in plan.devices),
        "written": sum(device.memory.size for device in plan.devices),
        "estimate_s": round(plan.estimate_s, 3),
        "images": {name: {"sha256": digest} for name, digest in plan.image_digests.items()},
        "stages": [list(stage.devices) for stage in plan.stages],
        "critical_path": list(plan.critical_path),
        "devices": devices,
        "not_selected": list(plan.not_selected),
        "warnings": list(plan.warnings),
    }


def _device_json(device: DevicePlan) -> dict[str, Any]:
    flash = device.chip.flash
    return {
        "name": device.device,
        "chip": {"part": device.chip.part, "dev_id": f"0x{device.chip.dev_id:03X}",
                 "flash": {"base": _hex(flash.base), "size": flash.size}},
        "link": device.link,
        "kind": device.kind,
        "resource": device.resource,
        "options": {key: _jsonable(value) for key, value in device.options.items()},
        "after": list(device.after),
        "bytes": device.bytes,
        "written": device.memory.size,
        "estimate_s": round(device.estimate_s, 3),
        "memory": _memory_json(device.memory),
        "images": [_image_json(use) for use in device.images],
        "tasks": [_task_json(task, device) for task in device.tasks],
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def _memory_json(memory: MemoryMap) -> dict[str, Any]:
    ranges, size, digest = _memory_facts(memory)
    return {"ranges": [list(pair) for pair in ranges], "size": size, "sha256": digest}


@lru_cache(maxsize=1024)
def _memory_facts(memory: MemoryMap) -> tuple[tuple[tuple[str, str], ...], int, str]:
    """What the JSON says of a map; devices of one line share a handful of maps."""
    return (tuple((_hex(start), _hex(end)) for start, end in memory.ranges), memory.size,
            memory.sha256())


def _image_json(use: ImageUse) -> dict[str, Any]:
    return {"name": use.name, "sha256": use.sha256,
            "ranges": [[_hex(start), _hex(end)] for start, end in use.ranges]}


def _block_runs(blocks: Sequence[FlashBlock]) -> list[dict[str, Any]]:
    """Consecutive erase units as runs: ``{"index", "count", "start", "end"}``."""
    return [dict(run) for run in _runs(tuple(blocks))]


@lru_cache(maxsize=1024)
def _runs(blocks: tuple[FlashBlock, ...]) -> tuple[dict[str, Any], ...]:
    runs: list[dict[str, Any]] = []
    for block in blocks:
        if runs and runs[-1]["index"] + runs[-1]["count"] == block.index:
            runs[-1]["count"] += 1
            runs[-1]["end"] = _hex(block.end)
        else:
            runs.append({"index": block.index, "count": 1, "start": _hex(block.address),
                         "end": _hex(block.end)})
    return tuple(runs)


def _task_json(task: Task, device: DevicePlan) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": task.id, "kind": task.kind.value, "bytes": task.bytes,
        "estimate_s": round(task.estimate_s, 3),
        "recovery": task.recovery.name if task.recovery else None,
    }
    action = task.action
    if isinstance(action, ConnectAction):
        data["expected_dev_id"] = f"0x{action.expected_dev_id:03X}"
    elif isinstance(action, EraseAction):
        data["scope"] = action.scope.value
        data["blocks"] = _block_runs(action.blocks)
        if action.preserve:
            data["preserve"] = [[_hex(span.address), _hex(span.end)]
                                for span in action.preserve]
    elif isinstance(action, WriteAction):
        data["images"] = [use.name for use in action.images]
        data["memory"] = _memory_json(action.memory)
        if action.keep:
            data["keep"] = [[_hex(span.address), _hex(span.end)] for span in action.keep]
        if action.skip_unchanged:
            data["skip_unchanged"] = True
            data["units"] = _block_runs(action.units)
    elif isinstance(action, UnitDataAction):
        data["address"] = _hex(action.address)
        data["size"] = action.size
        data["source"] = describe_source(action.source)
    elif isinstance(action, VerifyAction):
        data["method"] = action.method.value
        data["via"] = verify_via(action.method, planned_for(device))
        data["memory"] = _memory_json(action.memory)
        if action.images:
            data["images"] = [use.name for use in action.images]
    elif isinstance(action, OptionBytesAction):
        data["rdp"] = action.change.rdp_level
        data["fields"] = dict(action.change.fields)
        data["confirmed_irreversible"] = action.change.confirmed_irreversible
    elif isinstance(action, ResetAction):
        data["mode"] = action.mode.value
    elif isinstance(action, ReadAction):
        data["address"] = _hex(action.address)
        data["size"] = action.size
        data["file"] = str(action.path)
        data["format"] = action.format
    return data


# ----------------------------------------------------------------------------- DOT


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def render_dot(plan: Plan) -> str:
    """Graphviz: each device a cluster of its task chain, ``after`` edges, resources.

    Critical-path tasks and edges are drawn bold. Render with ``dot -Tsvg``.
    """
    critical = set(plan.critical_path)
    out = [
        f"digraph {_quote('plan ' + plan.name)} {{",
        "  graph [rankdir=LR, compound=true, fontname=Helvetica, "
        f"label={_quote(f'{plan.name}: estimated {format_seconds(plan.estimate_s)}')}];",
        "  node [shape=box, style=rounded, fontname=Helvetica, fontsize=10];",
        "  edge [fontname=Helvetica, fontsize=9];",
    ]
    for number, device in enumerate(plan.devices):
        out.append(f"  subgraph cluster_{number} {{")
        title = f"{device.device}\n{device.chip.part} via {device.link} ({device.kind})"
        out.append(f"    label={_quote(title)};")
        for task in device.tasks:
            label = f"{_step_summary(task, device)}\n{format_seconds(task.estimate_s)}"
            bold = ", penwidth=2" if task.id in critical else ""
            out.append(f"    {_quote(task.id)} [label={_quote(label)}{bold}];")
        for left, right in pairwise(device.tasks):
            bold = " [penwidth=2]" if left.id in critical and right.id in critical else ""
            out.append(f"    {_quote(left.id)} -> {_quote(right.id)}{bold};")
        out.append("  }")
    numbers = {device.device: number for number, device in enumerate(plan.devices)}
    for device in plan.devices:
        if not device.tasks:
            continue
        for name in device.after:
            before = plan.device(name)
            if not before.tasks:
                continue
            bold = ", penwidth=2" if before.tasks[-1].id in critical \
                and device.tasks[0].id in critical else ""
            out.append(f"  {_quote(before.tasks[-1].id)} -> {_quote(device.tasks[0].id)} "
                       f"[ltail=cluster_{numbers[name]}, "
                       f"lhead=cluster_{numbers[device.device]}, label=after{bold}];")
    for resource in dict.fromkeys(device.resource for device in plan.devices):
        node = _quote(f"resource {resource}")
        out.append(f"  {node} [shape=ellipse, style=dashed, label={_quote(resource)}];")
        for device in plan.devices:
            if device.resource == resource and device.tasks:
                out.append(f"  {node} -> {_quote(device.tasks[0].id)} [style=dotted, "
                           f"arrowhead=none, lhead=cluster_{numbers[device.device]}];")
    out.append("}")
    return "\n".join(out) + "\n"
