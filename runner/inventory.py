"""``discover --write FILE``: keep an inventory's ``transports:`` in step with the bench.

Newly found probes and DFU boards (devices no link of FILE selects) are
added as links, in a block marked with a comment after the last existing
link; links whose device is gone get a ``# gone`` comment on their line, or
are removed with ``prune``; a link whose device came back loses the comment.
Everything else in the file is left byte for byte: the edits are text
spliced at the YAML node marks (:mod:`runner.yamlsplice`), as
``flashrunner pin`` does. A second run finds every device bound and every
gone link marked, so it changes nothing.

New links are named ``stlink-<last 6 of the serial>`` and select by serial;
a probe whose serial is flagged (a clone pattern, or shared with another
probe) and every DFU board (ROM serials collide) are named after and select
by their port path instead: ``stlink-1-4-2``, ``dfu-1-2``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runner.adapterlinks import adapter_link, slug, to_fill_in
from runner.discover import Discovery, Found
from runner.errors import PlanError
from runner.inputs import MANIFEST_LIMIT, read_input
from runner.yamlsplice import Edit, apply_edits, child, last_index, write_atomically

__all__ = ["GONE", "InventoryChange", "Namer", "NewLink", "NewSupply", "Proposal", "commit",
           "new_links", "sync_inventory", "sync_stations"]

#: The comment that marks a link whose device was not attached.
GONE = "# gone: not attached at the last discover"
#: The comment that heads the block of links discover adds.
ADDED = "# found by flashrunner discover"


@dataclass(frozen=True, slots=True, kw_only=True)
class InventoryChange:
    """What ``--write`` did (or would do): the diff, and the links by name."""

    path: Path
    diff: str
    added: tuple[str, ...] = ()
    marked: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    written: bool = False
    #: The file's text before and after the change.
    before: str = ""
    after: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewLink:
    """A link ``--write`` adds for a device no link selects."""

    name: str
    found: Found
    #: The entry's options: ``kind`` and what selects the device (serial or port-path;
    #: an adapter's port, bus or channel).
    options: Mapping[str, Any]
    #: The station's cabling at the link (the manifest's wiring grammar), if any.
    wiring: Mapping[str, Any] | None = None

    @property
    def by_path(self) -> bool:
        return "port-path" in self.options

    def body(self) -> str:
        """The entry as a one-line flow mapping."""
        values: dict[str, Any] = dict(self.options)
        if self.wiring:
            values["wiring"] = self.wiring
        return _flow(values)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewSupply:
    """A ``power:`` entry for a hub the wiring of a new link names."""

    name: str
    hub: str
    ganged: bool = False

    def body(self) -> str:
        return _flow({"kind": "usb-hub", "hub": self.hub, **({"ganged": True}
                                                              if self.ganged else {})})


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """The links one ``--write`` would add, and what naming them needs to know."""

    links: tuple[NewLink, ...]
    #: Names already used under ``transports:`` / ``power:`` of the file.
    taken: frozenset[str]
    supply_names: frozenset[str]
    #: Hub port path → the name of the file's ``usb-hub`` supply for it.
    supplies: Mapping[str, str]
    #: The hubs found, by port path.
    hubs: Mapping[str, Found]
    station: str | None = None


#: Names the links (and any hubs their wiring needs) instead of the pattern.
Namer = Callable[[Proposal], tuple[list[NewLink], list[NewSupply]]]

_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_./-]*$")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
#: Always quoted: a serial of digits, or a port path, would otherwise not stay a string.
_QUOTED = frozenset({"serial", "port-path", "hub"})


def _flow(values: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{name}: {_flow_value(name, value)}"
                           for name, value in values.items()) + "}"


def _flow_value(name: str, value: Any) -> str:
    if isinstance(value, Mapping):
        return _flow(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    plain = name not in _QUOTED and _PLAIN.match(str(value)) is not None \
        and str(value).lower() not in _YAML_WORDS
    return str(value) if isinstance(value, int) or plain else json.dumps(str(value))


def new_links(result: Discovery, taken: set[str], *, prefix: str = "") -> list[NewLink]:
    """A link for each probe, DFU board or adapter no link selects, named by the pattern."""
    flagged = {path for flag in result.flags for path in flag.port_paths}
    entries: list[NewLink] = []
    names = set(taken)
    for found in result.devices:
        if found.link is not None:
            continue
        if found.kind in ("stlink", "dfu"):
            name, options = _entry(found, by_path=found.kind == "dfu"
                                   or found.port_path in flagged or not found.serial)
        else:
            proposed = adapter_link(found)
            if proposed is None:
                continue
            name, options = proposed
        name = prefix + name
        base, number = name, 2
        while name in names:
            name, number = f"{base}-{number}", number + 1
        names.add(name)
        entries.append(NewLink(name=name, found=found, options=options))
    return entries


def _entry(found: Found, *, by_path: bool) -> tuple[str, dict[str, Any]]:
    if by_path:
        return f"{found.kind}-{slug(found.port_path)}", \
            {"kind": found.kind, "port-path": found.port_path}
    return f"{found.kind}-{found.serial[-6:].lower()}", \
        {"kind": found.kind, "serial": found.serial}


def _line_end(text: str, position: int) -> int:
    end = text.find("\n", position)
    end = len(text) if end < 0 else end
    return end - 1 if end > 0 and text[end - 1] == "\r" else end


def sync_inventory(path: Path, result: Discovery, *, prune: bool = False,
                   dry_run: bool = False, namer: Namer | None = None) -> InventoryChange:
    """Bring ``path``'s ``transports:`` in line with ``result`` (bound against ``path``).

    Raises:
        PlanError: the file is not YAML, or its ``transports`` is not a block mapping.
    """
    return _sync(path, [(None, result)], prune=prune, dry_run=dry_run, namer=namer)


def sync_stations(path: Path, results: Mapping[str, Discovery], *, prune: bool = False,
                  dry_run: bool = False, namer: Namer | None = None) -> InventoryChange:
    """Bring each station's section of the inventory ``path`` in line with its ``result``.

    A station's section is its ``links:`` list and those links' entries under
    ``transports:``: only they are marked gone (or pruned, from both places);
    new links are added to both, named ``<station>-<pattern>`` (one
    ``transports:`` holds every station's links).

    Raises:
        PlanError: ``path`` does not list the station, or one of its links is
            defined in another file (which would leave the edit ambiguous).
    """
    return _sync(path, list(results.items()), prune=prune, dry_run=dry_run, namer=namer)


def _sync(path: Path, parts: list[tuple[str | None, Discovery]], *, prune: bool,
          dry_run: bool, namer: Namer | None) -> InventoryChange:
    text = read_input(path, limit=MANIFEST_LIMIT).decode("utf-8")
    new_text = text
    added: list[str] = []
    marked: list[str] = []
    removed: list[str] = []
    for station, result in parts:
        new_text, change = _edit(path, new_text, result, prune=prune, station=station,
                                 namer=namer)
        added += change.added
        marked += change.marked
        removed += change.removed
    diff = "".join(difflib.unified_diff(text.splitlines(keepends=True),
                                        new_text.splitlines(keepends=True),
                                        fromfile=f"{path}", tofile=f"{path}"))
    if diff and not diff.endswith("\n"):
        diff += "\n"
    written = bool(diff) and not dry_run
    if written:
        write_atomically(path, new_text)
    return InventoryChange(path=path, diff=diff, added=tuple(added), marked=tuple(marked),
                           removed=tuple(removed), written=written, before=text,
                           after=new_text)


def commit(change: InventoryChange) -> None:
    """Write ``change`` (made with ``dry_run``) after all, if the file is still as it was.

    Raises:
        PlanError: the file changed since the change was made.
    """
    now = read_input(change.path, limit=MANIFEST_LIMIT).decode("utf-8")
    if now != change.before:
        raise PlanError(f"{change.path} changed while the questions were asked; nothing "
                        f"was written", hint="run discover --write again")
    write_atomically(change.path, change.after)


def _compose(path: Path, text: str) -> yaml.MappingNode | None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise PlanError(f"{path}{where}: not valid YAML; nothing was written") from error
    if root is not None and not isinstance(root, yaml.MappingNode):
        raise PlanError(f"{path}: the top level is not a mapping; nothing was written")
    return root


def _edit(path: Path, text: str, result: Discovery, *, prune: bool,
          station: str | None, namer: Namer | None) -> tuple[str, InventoryChange]:
    root = _compose(path, text)
    section = _section(path, root, "transports")
    links = _station_links(path, root, section, station) if station is not None else None
    eol = "\r\n" if "\r\n" in text else "\n"
    edits: list[Edit] = []
    marked: list[str] = []
    removed: list[str] = []
    # A device's own selectors finding nothing leave the link itself (its other devices').
    gone = {link.name for link in result.missing if link.device is None}
    taken: set[str] = set()
    for key_node, value_node in section.value if section is not None else ():
        name = str(key_node.value)
        taken.add(name)
        if links is not None and name not in links.names:
            continue   # another station's link
        block = isinstance(value_node, yaml.MappingNode) and not value_node.flow_style
        # The mark goes on the key's line for a block entry, else after the value.
        end = _line_end(text, key_node.end_mark.index if block else last_index(value_node))
        line = text[key_node.start_mark.index:end]
        if name in gone and prune:
            start = text.rfind("\n", 0, key_node.start_mark.index) + 1
            stop = text.find("\n", last_index(value_node))
            edits.append(Edit(start, len(text) if stop < 0 else stop + 1, ""))
            removed.append(name)
        elif name in gone and GONE not in line:
            edits.append(Edit(end, end, f"  {GONE}"))
            marked.append(name)
        elif name not in gone and GONE in line:
            at = key_node.start_mark.index + line.index(GONE)
            while at > 0 and text[at - 1] == " ":
                at -= 1
            edits.append(Edit(at, end, ""))
    proposed = new_links(result, taken, prefix="" if station is None else f"{station}-")
    supplies: list[NewSupply] = []
    if namer is not None and proposed:
        power = child(root, "power") if root is not None else None
        proposed, supplies = namer(Proposal(
            links=tuple(proposed), taken=frozenset(taken), station=station,
            supply_names=frozenset(_names(power)), supplies=_hub_supplies(text),
            hubs={f.port_path: f for f in result.devices if f.kind == "hub"}))
        if supplies:
            edits.append(_additions(text, root, "power", _section(path, root, "power"),
                                    [(s.name, s.body()) for s in supplies], eol, ADDED))
    additions = [(link.name, link.body()) for link in proposed]
    if additions:
        heading = "\n".join([ADDED if station is None else f"{ADDED} on station {station}",
                             *to_fill_in(str(link.options["kind"]) for link in proposed)])
        edits.append(_additions(text, root, "transports", section, additions, eol, heading))
    if links is not None:
        edits.extend(links.edits(text, add=[name for name, _ in additions], remove=removed,
                                 eol=eol))
    change = InventoryChange(path=path, diff="", added=tuple(name for name, _ in additions),
                             marked=tuple(marked), removed=tuple(removed))
    return apply_edits(text, edits), change


@dataclass(frozen=True, slots=True, kw_only=True)
class _LinkList:
    """A station's ``links:`` sequence in the file, and how to add to it or take from it."""

    node: yaml.SequenceNode

    @property
    def names(self) -> list[str]:
        return [str(item.value) for item in self.node.value]

    def edits(self, text: str, *, add: list[str], remove: list[str], eol: str) -> list[Edit]:
        if not add and not remove:
            return []
        node = self.node
        if node.flow_style or not node.value:
            if not remove:
                at = int(node.end_mark.index) - 1   # the closing bracket
                lead = ", " if node.value else ""
                return [Edit(at, at, lead + ", ".join(add))]
            kept = [n for n in self.names if n not in remove]
            return [Edit(node.start_mark.index, node.end_mark.index,
                         "[" + ", ".join(kept + add) + "]")]
        edits = []
        for item in node.value:
            if str(item.value) in remove:
                start = text.rfind("\n", 0, item.start_mark.index) + 1
                stop = text.find("\n", item.end_mark.index)
                edits.append(Edit(start, len(text) if stop < 0 else stop + 1, ""))
        last = node.value[-1]
        dash = text.rfind("-", 0, last.start_mark.index)
        indent = " " * (dash - text.rfind("\n", 0, dash) - 1)
        stop = text.find("\n", last.end_mark.index)
        lines = "".join(f"{indent}- {name}{eol}" for name in add)
        if stop < 0:
            edits.append(Edit(len(text), len(text), eol + lines))
        elif lines:
            edits.append(Edit(stop + 1, stop + 1, lines))
        return edits


def _station_links(path: Path, root: yaml.MappingNode | None,
                   section: yaml.MappingNode | None, station: str) -> _LinkList:
    stations = child(root, "stations") if root is not None else None
    entry = child(stations, station) if isinstance(stations, yaml.MappingNode) else None
    if not isinstance(entry, yaml.MappingNode):
        raise PlanError(f"{path}: station {station} is not listed here (no stations.{station}); "
                        f"--write with --station edits the file that holds the station's "
                        f"links: and their transports:; nothing was written")
    links = child(entry, "links")
    if not isinstance(links, yaml.SequenceNode) or not all(
            isinstance(item, yaml.ScalarNode) for item in links.value):
        line = (links or entry).start_mark.line + 1
        raise PlanError(f"{path}:{line}: stations.{station}.links is not a list of link names; "
                        f"nothing was written")
    listed = _LinkList(node=links)
    defined = {str(k.value) for k, _ in section.value} if section is not None else set()
    elsewhere = [name for name in listed.names if name not in defined]
    if elsewhere:
        raise PlanError(f"{path}:{links.start_mark.line + 1}: station {station}'s links "
                        f"{', '.join(elsewhere)} are not defined in this file's transports:; "
                        f"which file to edit is ambiguous, so nothing was written",
                        hint="keep a station's links: and their transports: entries in one "
                             "inventory file")
    return listed


def _names(section: yaml.Node | None) -> list[str]:
    if not isinstance(section, yaml.MappingNode):
        return []
    return [str(key.value) for key, _ in section.value]


def _hub_supplies(text: str) -> dict[str, str]:
    """Hub port path → name of each ``usb-hub`` entry under the file's ``power:``."""
    data = yaml.safe_load(text) or {}
    power = data.get("power") if isinstance(data, Mapping) else None
    if not isinstance(power, Mapping):
        return {}
    return {str(spec["hub"]): str(name) for name, spec in power.items()
            if isinstance(spec, Mapping) and spec.get("kind") == "usb-hub" and "hub" in spec}


def _section(path: Path, root: yaml.MappingNode | None, key: str) -> yaml.MappingNode | None:
    """The top-level mapping ``key`` as --write can edit it (empty for ``key:``).

    Raises:
        PlanError: it is not a mapping, or a non-empty flow mapping.
    """
    section = child(root, key) if root is not None else None
    if isinstance(section, yaml.ScalarNode) and section.tag.endswith(":null"):
        section = yaml.MappingNode("tag:yaml.org,2002:map", [], section.start_mark,
                                   section.end_mark, flow_style=True)
    if section is not None and not isinstance(section, yaml.MappingNode):
        raise PlanError(f"{path}:{section.start_mark.line + 1}: {key} is not a mapping; "
                        f"nothing was written")
    if section is not None and section.flow_style and section.value:
        raise PlanError(f"{path}:{section.start_mark.line + 1}: {key} is written in flow "
                        f"style ({{…}}); write it as a block mapping for --write to edit it")
    return section


def _additions(text: str, root: yaml.Node | None, key: str, section: yaml.MappingNode | None,
               additions: list[tuple[str, str]], eol: str, heading: str) -> Edit:
    """Entries added at the end of the top-level mapping ``key`` (made if missing).

    ``heading`` is the comment over them, one line per ``\\n``.
    """
    if section is None or not section.value:
        block = "".join(f"  {name}: {body}{eol}" for name, body in additions)
        comment = _comment(heading, "  ", eol)
        if section is not None and root is not None:
            # ``key: {}`` or an empty value: replace it by the block.
            assert isinstance(root, yaml.MappingNode)
            node = next(k for k, v in root.value if v.start_mark.index == section.start_mark.index
                        and k.value == key)
            return Edit(node.end_mark.index, _line_end(text, section.end_mark.index),
                        f":{eol}{comment}{block.rstrip()}")
        lead = "" if not text or text.endswith("\n") else eol
        return Edit(len(text), len(text), f"{lead}{key}:{eol}{comment}{block}")
    column = section.value[0][0].start_mark.column
    indent = " " * column
    position = last_index(section)
    newline = text.find("\n", position)
    lines = _comment(heading, indent, eol) + "".join(f"{indent}{name}: {body}{eol}"
                                                     for name, body in additions)
    if newline < 0:
        return Edit(len(text), len(text), f"{eol}{lines}")
    return Edit(newline + 1, newline + 1, lines)


def _comment(heading: str, indent: str, eol: str) -> str:
    """``heading``'s lines as comments at ``indent`` (the first already starts with ``#``)."""
    first, *more = heading.split("\n")
    return f"{indent}{first}{eol}" + "".join(f"{indent}# {line}{eol}" for line in more)
