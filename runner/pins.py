"""sha256 pins of firmware images: check them, and rewrite them in the manifest.

A pin (``images.<name>.sha256``) says which file the manifest was reviewed
with; :func:`runner.images.load_image` refuses a file whose digest differs,
before any device is touched. When a new release is deliberate,
``flashrunner pin MANIFEST`` calls :func:`update_pins`, which edits only the
pin values in the YAML text — comments, order, quoting and layout stay as the
author wrote them — in the file where each image is defined (the manifest or
a file it includes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from runner.errors import ImageError
from runner.inputs import IMAGE_LIMIT, MANIFEST_LIMIT, read_input
from runner.manifest.paths import PathPolicy
from runner.yamlsplice import Edit as _Edit
from runner.yamlsplice import apply_edits as _apply
from runner.yamlsplice import child as _child
from runner.yamlsplice import last_index as _last_index
from runner.yamlsplice import write_atomically as _write_atomically

__all__ = ["PinChange", "check_pin", "update_pins"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PinChange:
    """One pin written: ``old`` is ``None`` where the image had no pin."""

    file: Path
    image: str
    line: int
    old: str | None
    new: str

    def __str__(self) -> str:
        before = self.old if self.old is not None else "(no pin)"
        return f"{self.file}:{self.line}: image {self.image}: {before} -> {self.new}"


def _digest(path: Path) -> str:
    return hashlib.sha256(read_input(path, limit=IMAGE_LIMIT)).hexdigest()


def check_pin(path: Path, expected: str, *, image: str = "") -> str:
    """Return ``path``'s digest; raise :class:`ImageError` if it is not ``expected``."""
    actual = _digest(path)
    if actual != expected.lower():
        label = f"image {image}: " if image else ""
        raise ImageError(f"{label}{path} has sha256 {actual}, but the manifest pins "
                         f"{expected.lower()}", path=str(path),
                         hint="the file is not the released one; rebuild it or update the "
                              "pin with `flashrunner pin`")
    return actual


def _replacement(node: yaml.ScalarNode, digest: str) -> str:
    if node.style in ("'", '"'):
        return f"{node.style}{digest}{node.style}"
    return f'"{digest}"' if digest.isdigit() else digest


def _insertion(text: str, mapping: yaml.MappingNode, digest: str) -> _Edit:
    entry = f'sha256: "{digest}"'
    if mapping.flow_style:
        close = int(mapping.end_mark.index) - 1          # the '}'
        before = close
        while before > 0 and text[before - 1].isspace():
            before -= 1
        separator = " " if text[before - 1] in ",{" else ", "
        return _Edit(before, before, f"{separator}{entry}")
    column = mapping.value[0][0].start_mark.column
    eol = "\r\n" if "\r\n" in text else "\n"    # keep the file's line endings
    position = _last_index(mapping)
    if position == 0 or text[position - 1] != "\n":
        newline = text.find("\n", position)
        if newline < 0:
            return _Edit(len(text), len(text), f"{eol}{' ' * column}{entry}{eol}")
        position = newline + 1
    return _Edit(position, position, f"{' ' * column}{entry}{eol}")


def _plan_file(path: Path, text: str) -> tuple[list[_Edit], list[PinChange], list[Path]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError) as error:
        # Where, not what: the file may be anything (README "Includes and data files").
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ImageError(f"{path}{where}: not a valid manifest (YAML)", path=str(path),
                         hint="run `flashrunner validate` on the manifest first") from error
    edits: list[_Edit] = []
    changes: list[PinChange] = []
    includes: list[Path] = []
    if not isinstance(root, yaml.MappingNode):
        return edits, changes, includes
    included = _child(root, "include")
    if isinstance(included, yaml.SequenceNode):
        includes = [path.parent / item.value for item in included.value
                    if isinstance(item, yaml.ScalarNode)]
    images = _child(root, "images")
    if not isinstance(images, yaml.MappingNode):
        return edits, changes, includes
    for key_node, spec in images.value:
        file_node = _child(spec, "file") if isinstance(spec, yaml.MappingNode) else None
        if not isinstance(spec, yaml.MappingNode) or not isinstance(file_node, yaml.ScalarNode):
            continue
        image_path = path.parent / file_node.value
        try:
            digest = _digest(image_path)
        except OSError as error:
            raise ImageError(f"{path}:{key_node.start_mark.line + 1}: image {key_node.value}: "
                             f"cannot read {image_path}: {error.strerror}; no pin was changed",
                             path=str(image_path), hint="build the image first") from error
        pin = _child(spec, "sha256")
        if isinstance(pin, yaml.ScalarNode):
            old = str(pin.value)
            if old.lower() == digest:
                continue
            edits.append(_Edit(pin.start_mark.index, pin.end_mark.index,
                               _replacement(pin, digest)))
            line = pin.start_mark.line + 1
        else:
            old = None
            edits.append(_insertion(text, spec, digest))
            line = key_node.start_mark.line + 1
        changes.append(PinChange(file=path, image=str(key_node.value), line=line, old=old,
                                 new=digest))
    return edits, changes, includes


def update_pins(manifest_path: Path, *, dry_run: bool = False) -> list[PinChange]:
    """Pin every image of ``manifest_path`` (and its includes) to its file's digest.

    Every file is read and every image hashed before anything is written, so
    a missing image changes nothing. Returns the pins written (or that would
    be, with ``dry_run``), in file order.
    """
    pending: list[tuple[Path, str]] = []
    changes: list[PinChange] = []
    policy = PathPolicy.for_manifest(manifest_path)
    seen: set[Path] = set()
    queue = [manifest_path]
    while queue:
        path = queue.pop(0)
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        if not policy.allows(path):
            raise ImageError(policy.refusal("included file", str(path)), path=str(path),
                             hint="no pin was changed")
        try:
            text = read_input(path, limit=MANIFEST_LIMIT).decode("utf-8")
        except OSError as error:
            raise ImageError(f"cannot read manifest file {path}: {error.strerror or error}",
                             path=str(path), hint="check the path; no pin was changed") from error
        except UnicodeDecodeError as error:
            raise ImageError(f"cannot read manifest file {path}: not UTF-8 text (byte "
                             f"{error.start})", path=str(path),
                             hint="check the path; no pin was changed") from error
        edits, file_changes, includes = _plan_file(path, text)
        if edits:
            pending.append((path, _apply(text, edits)))
        changes.extend(file_changes)
        queue[0:0] = includes
    if not dry_run:
        for path, text in pending:
            _write_atomically(path, text)
    return changes
