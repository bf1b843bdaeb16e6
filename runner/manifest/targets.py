"""Semantic checks against the world outside the manifest.

* chip names exist in the chip database;
* image files load (readable, well-formed, matching their sha256 pin);
* every image a device writes lies inside its chip's flash, and the images
  one device receives do not overlap;
* every unit-data field has a size fixed before its value exists, lies inside
  the device's flash and overlaps none of its images;
* a link through the ROM bootloader (uart, i2c, can, dfu) reaches a chip whose
  bootloader offers that interface, and an i2c link knows the bootloader's
  address (:func:`runner.romlinks.unreachable`, the check ``info`` makes);
* each link kind exists, its options (a device's own merged over the link's)
  satisfy the transport's ``options_schema``, and it can do every step of the
  recipes that run over it, with this device's chip and options
  (:func:`runner.capabilities.device_capabilities`): ``verify: {method:
  checksum}`` over a USART to a chip whose ROM lists no Get Checksum is an
  error at the step, saying what to use instead.

``reset: {mode: halt}`` needs ``RESET_SOFTWARE``: halting after reset is a
debug-port operation. ``reset: {}`` needs any of the reset capabilities.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.capabilities import device_capabilities, instead, missing
from runner.errors import EnvironmentProblem, ImageError, PlanError, UnitDataError
from runner.images import FORMATS, LoadedImage, load_image
from runner.manifest.checks import (
    LINK_KEYS,
    Checker,
    device_link,
    entries,
    steps,
    write_images,
)
from runner.manifest.paths import PathPolicy
from runner.manifest.simulated import check_simulated_devices
from runner.manifest.structure import phrase, remembered_errors
from runner.manifest.yamlmarks import Path as DataPath
from runner.model import ImageSpec
from runner.romlinks import unreachable
from runner.unitdata import (
    CounterSource,
    CsvSource,
    UnitSource,
    check_source,
    source_from_mapping,
    unit_size,
)
from transports.base import Capability, TransportClass, simulated_endpoints
from transports.chips import Chip, ChipDatabase
from transports.registry import load_transport

__all__ = ["check_targets", "image_spec", "step_needs"]

_RESETS = {"hardware": Capability.RESET_HARDWARE, "software": Capability.RESET_SOFTWARE,
           "go": Capability.GO, "halt": Capability.RESET_SOFTWARE}
_VERIFY = {"checksum": Capability.CHECKSUM, "readback": Capability.READ}


def image_spec(name: str, entry: Mapping[str, Any], folder: Path) -> ImageSpec | None:
    """The :class:`ImageSpec` of a well-formed ``images.<name>`` entry, else ``None``."""
    file = entry.get("file")
    address = entry.get("address")
    fmt = entry.get("format", "auto")
    sha = entry.get("sha256")
    if not isinstance(file, str) or not file or fmt not in (*FORMATS, "auto"):
        return None
    if address is not None and (isinstance(address, bool) or not isinstance(address, int)):
        return None
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
        return None
    return ImageSpec(name=name, path=Path(os.path.normpath(folder / file)), format=fmt,
                     address=address,
                     sha256=sha.lower() if sha else None,
                     preserve=entry.get("preserve") is True)


def step_needs(kind: str, value: Any) -> tuple[frozenset[Capability], str] | None:
    """(any of these capabilities, what the step does) for one step; None when free."""
    settings = value if isinstance(value, dict) else {}
    if kind == "erase":
        scope = settings.get("scope", "used")
        if scope == "mass":
            return frozenset({Capability.ERASE_MASS}), "erase the whole flash"
        if scope == "used":
            return frozenset({Capability.ERASE_PAGES}), "erase pages"
        return None
    if kind in ("write", "unit-data"):
        return frozenset({Capability.WRITE}), "write flash"
    if kind == "verify":
        method = settings.get("method", "auto")
        if isinstance(method, str) and method in _VERIFY:
            return frozenset({_VERIFY[method]}), f"verify by {method}"
        return frozenset({Capability.CHECKSUM, Capability.READ}), "verify"
    if kind == "option-bytes":
        return frozenset({Capability.OPTION_BYTES}), "change option bytes"
    if kind == "read":
        return frozenset({Capability.READ}), "read flash"
    if kind == "reset":
        mode = settings.get("mode")
        if isinstance(mode, str) and mode in _RESETS:
            return frozenset({_RESETS[mode]}), f"reset ({mode})"
        return frozenset({Capability.RESET_HARDWARE, Capability.RESET_SOFTWARE,
                          Capability.GO}), "reset"
    return None


def check_targets(checker: Checker, chips: ChipDatabase, folders: Mapping[str, Path],
                  policy: PathPolicy | None = None) -> None:
    links = _link_classes(checker)
    images = _load_images(checker, folders)
    recipes = checker.data.get("recipes")
    if not isinstance(recipes, dict):
        recipes = {}
    sizes = _unit_sizes(checker, recipes, folders, policy)
    used: set[str] = set()
    # Devices repeating a (chip, link, options, recipe) already found clean are clean too:
    # a line of thousands of boards is checked once per distinct combination.
    clean: set[tuple[object, ...]] = set()
    for name, device in entries(checker.data, "devices").items():
        chip = _chip(checker, chips, name, device)
        link, options, link_path = device_link(device)
        used.add(link or "")
        recipe_name = device.get("recipe")
        recipe = recipes.get(recipe_name) if isinstance(recipe_name, str) else None
        key = (chip.part if chip is not None else None, link, repr(options),
               recipe_name if isinstance(recipe_name, str) else None)
        if key in clean:
            continue
        issues = len(checker.issues)
        if link in links:
            merged = {**_link_options(checker, link), **options}
            why = unreachable(chip, links[link].kind, merged) if chip is not None else None
            if why is not None:
                checker.at(("devices", name, *link_path), f"device {name} on link {link}: {why}")
            _options(checker, name, link, options, links[link])
            _capabilities(checker, name, link, recipe_name, recipe, links[link],
                          device_capabilities(links[link], merged, chip), chip)
        if chip is not None and isinstance(recipe_name, str) and recipe is not None:
            _fit(checker, name, chip, recipe_name, recipe, images)
            _fit_unit_data(checker, name, chip, recipe_name, recipe, images, sizes)
            if link in links:
                _write_rules(checker, name, chip, link, links[link], recipe, images)
        if len(checker.issues) == issues:
            clean.add(key)
    for link in links.keys() - used:
        _options(checker, None, link, {}, links[link])
    check_simulated_devices(checker, links)


def _link_classes(checker: Checker) -> dict[str, TransportClass]:
    classes: dict[str, TransportClass] = {}
    for name, link in entries(checker.data, "transports").items():
        kind = link.get("kind")
        if not isinstance(kind, str):
            continue
        try:
            classes[name] = load_transport(kind)
        except (PlanError, EnvironmentProblem) as error:
            checker.at(("transports", name, "kind"), str(error))
            continue
        if checker.data.get("simulate") is True and not simulated_endpoints(classes[name]):
            checker.at(("transports", name, "kind"),
                       f"kind {kind} cannot be simulated, and the manifest says simulate: "
                       f"true; a rehearsal would reach real hardware through it (run it "
                       f"without simulate: true, or rehearse with a kind that supports "
                       f"simulation)")
    return classes


def _load_images(checker: Checker, folders: Mapping[str, Path]) -> dict[str, LoadedImage]:
    loaded: dict[str, LoadedImage] = {}
    for name, entry in entries(checker.data, "images").items():
        path: DataPath = ("images", name)
        folder = folders.get(checker.marks.key(path).file, Path("."))
        spec = image_spec(name, entry, folder)
        if spec is None:
            continue
        try:
            loaded[name] = load_image(spec)
        except ImageError as error:
            checker.at((*path, "file"), str(error), key=True)
    return loaded


def _chip(checker: Checker, chips: ChipDatabase, name: str,
          device: dict[str, Any]) -> Chip | None:
    part = device.get("chip")
    if not isinstance(part, str):
        return None
    if part in chips:
        return chips.part(part)
    close = difflib.get_close_matches(part.lower(), list(chips.chips), n=3, cutoff=0.75)
    advice = f"; did you mean {' or '.join(close)}?" if close else \
        "; `flashrunner chips` lists the known parts"
    checker.at(("devices", name, "chip"), f"unknown chip '{part}'{advice}")
    return None


def _data_files(source: UnitSource) -> list[tuple[str, Path]]:
    if isinstance(source, CounterSource):
        return [("counter state file", source.state)]
    if isinstance(source, CsvSource):
        return [("CSV file", source.file), ("CSV state file", source.state_path)]
    return []


def _unit_sizes(checker: Checker, recipes: Mapping[str, Any],
                folders: Mapping[str, Path],
                policy: PathPolicy | None) -> dict[tuple[str, int], int]:
    """The size of every well-formed unit-data field, by (recipe, step index).

    A field whose size depends on its value (text without ``width``) is an
    issue, and so is a CSV file that cannot be read or lacks the columns named,
    and a data file outside the folders the path policy allows.
    """
    sizes: dict[tuple[str, int], int] = {}
    for recipe_name, recipe in recipes.items():
        for index, kind, value, _ in steps(recipe):
            if kind != "unit-data" or not isinstance(value, dict) \
                    or not isinstance(value.get("source"), dict):
                continue
            at: DataPath = ("recipes", recipe_name, index, "unit-data", "source")
            folder = folders.get(checker.marks.key(at).file, Path("."))
            try:
                source = source_from_mapping(value["source"], folder)
                outside = [(what, path) for what, path in _data_files(source)
                           if policy is not None and not policy.allows(path)]
                if policy is not None and outside:
                    what, path = outside[0]
                    checker.at(at, policy.refusal(what, str(path)))
                    continue
                sizes[recipe_name, index] = unit_size(source)
                check_source(source)
            except UnitDataError as error:
                checker.at(at, str(error))
            except (KeyError, TypeError, AttributeError):
                continue   # malformed: the schema has said so already
    return sizes


def _fit_unit_data(checker: Checker, device: str, chip: Chip, recipe_name: str, recipe: Any,
                   images: Mapping[str, LoadedImage],
                   sizes: Mapping[tuple[str, int], int]) -> None:
    """Unit-data fields lie in flash and clear of every image the device receives."""
    flash = chip.flash
    written = [name for _, kind, value, _ in steps(recipe) if kind == "write"
               for _, name in write_images(value) if name in images]
    for index, kind, value, _ in steps(recipe):
        size = sizes.get((recipe_name, index))
        address = value.get("address") if isinstance(value, dict) else None
        if kind != "unit-data" or size is None or not isinstance(address, int):
            continue
        where = ("recipes", recipe_name, index, "unit-data", "address")
        if not flash.contains(address, size):
            checker.at(where, f"unit-data at 0x{address:08X} ({size} bytes) does not fit the "
                              f"flash of {chip.part} (0x{flash.base:08X}.."
                              f"0x{flash.end - 1:08X}) of device {device}; move the field")
            continue
        unit = flash.write_unit
        low, high = address // unit * unit, -(-(address + size) // unit) * unit
        for name in written:
            segments = images[name].memory.segments
            if any(s.address < address + size and address < s.end for s in segments):
                checker.at(where, f"unit-data at 0x{address:08X} ({size} bytes) overlaps "
                                  f"image '{name}' on device {device}; move the field")
            elif any(s.address // unit * unit < high and low < -(-s.end // unit) * unit
                     for s in segments):
                checker.at(where, f"unit-data at 0x{address:08X} shares a {unit}-byte write "
                                  f"unit of {chip.part} with image '{name}' on device "
                                  f"{device}; align the field to {unit} bytes")


def _write_rules(checker: Checker, device: str, chip: Chip, link: str,
                 transport: TransportClass, recipe: Any,
                 images: Mapping[str, LoadedImage]) -> None:
    """Every write the device's recipe makes starts where its link can write.

    The link class says its rules (``write_alignment``, in bytes; 1 when it has
    none); a write the link would refuse is an error now, not after the erase.
    """
    alignment = int(getattr(transport, "write_alignment", 1) or 1)
    if alignment <= 1:
        return
    unit = chip.flash.write_unit
    starts: list[tuple[str, int]] = []
    for index, kind, value, _ in steps(recipe):
        if kind == "write":
            starts.extend((f"image '{image}'", segment.address) for _, image
                          in write_images(value) if image in images
                          for segment in images[image].memory.segments)
        elif kind == "unit-data" and isinstance(value, dict) \
                and isinstance(value.get("address"), int):
            starts.append((f"the unit-data field of step {index + 1}", value["address"]))
    reported: set[str] = set()
    for what, address in starts:
        start = address // unit * unit     # the plan pads each write to the chip's write unit
        if start % alignment == 0 or what in reported:
            continue
        reported.add(what)
        checker.at(("devices", device, "transport"),
                   f"{what} starts at 0x{start:08X}, but a {transport.kind} link writes only "
                   f"at {alignment}-byte aligned addresses, so device {device} would be "
                   f"erased and then refused; move it to a {alignment}-byte boundary")


def _options(checker: Checker, device: str | None, link: str, own: dict[str, Any],
             transport: TransportClass) -> None:
    """Check a device's options merged over its link's; ``device`` None: an unused link.

    An unused link is checked on its own, except for keys its devices would add.
    """
    merged = {**_link_options(checker, link), **own}
    subject = f"the options of {transport.kind} link {link}"
    for error in remembered_errors("link-options", transport.options_schema, merged):
        if device is None and error.validator == "required" and not error.absolute_path:
            continue
        for path, at_key, message in phrase(error, subject):
            if device is not None and (not path or path[0] in own):
                full: DataPath = ("devices", device, "transport", *path)
            else:
                full = ("transports", link, *path)
            checker.at(full, message, key=at_key)


def _link_options(checker: Checker, link: str) -> dict[str, Any]:
    # Asked per device: one lookup, not a pass over the section (one link per board
    # is the usual line, so that pass made the check quadratic).
    table = checker.data.get("transports") if isinstance(checker.data, dict) else None
    entry = table.get(link) if isinstance(table, dict) else None
    if not isinstance(entry, dict):
        return {}
    return {k: v for k, v in entry.items() if k not in LINK_KEYS}


def _capabilities(checker: Checker, device: str, link: str, recipe_name: Any, recipe: Any,
                  transport: TransportClass, offered: frozenset[Capability],
                  chip: Chip | None) -> None:
    every = frozenset(transport.capabilities)
    for index, kind, value, _ in steps(recipe):
        needs = step_needs(kind, value)
        if needs is None or needs[0] & offered:
            continue
        who = missing(transport.kind, chip.part if chip else None, every, needs[0])
        advice = instead(kind, offered) if needs[0] & every \
            else "change the step or use another link"
        checker.at(("recipes", recipe_name, index, kind),
                   f"{who} cannot {needs[1]}, but device {device} runs this step over link "
                   f"{link}; {advice}", key=True)


def _fit(checker: Checker, device: str, chip: Chip, recipe_name: str, recipe: Any,
         images: Mapping[str, LoadedImage]) -> None:
    flash = chip.flash
    placed: list[tuple[str, int, int]] = []
    for index, kind, value, _ in steps(recipe):
        if kind == "write":
            for _, image in write_images(value):
                if image in images and all(image != p[0] for p in placed):
                    memory = images[image].memory
                    placed.extend((image, seg.address, seg.end) for seg in memory)
        elif kind == "option-bytes" and isinstance(value, dict) and value.get("rdp") == 2 \
                and not chip.option_bytes.has_level2:
            checker.at(("recipes", recipe_name, index, "option-bytes", "rdp"),
                       f"{chip.part} (device {device}) has no RDP level 2; use rdp: 1")
    reported: set[str] = set()
    for image, start, end in placed:
        if image not in reported and not flash.contains(start, end - start):
            reported.add(image)
            checker.at(("devices", device, "chip"),
                       f"image '{image}' (0x{start:08X}..0x{end - 1:08X}) does not fit the "
                       f"flash of {chip.part} (0x{flash.base:08X}..0x{flash.end - 1:08X}, "
                       f"{flash.size // 1024} KiB); move the image or choose a larger part")
    reach: tuple[str, int] | None = None   # the image reaching furthest so far, and where
    clashes: set[tuple[str, str]] = set()
    for image, start, end in sorted(placed, key=lambda p: p[1]):
        if reach is not None and reach[0] != image and start < reach[1] \
                and (reach[0], image) not in clashes:
            clashes.add((reach[0], image))
            checker.at(("devices", device, "recipe"),
                       f"images '{reach[0]}' and '{image}' overlap at 0x{start:08X} on "
                       f"device {device}; move one of them")
        if reach is None or end > reach[1]:
            reach = (image, end)
