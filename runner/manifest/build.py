"""The validated document → the frozen :class:`runner.model.Manifest`.

Only called once the schema and the semantic checks found nothing, so every
value here has its documented shape.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.manifest.checks import (
    LINK_KEYS,
    device_link,
    device_wiring,
    entries,
    steps,
    write_images,
)
from runner.manifest.sources import Sources
from runner.manifest.targets import image_spec
from runner.manifest.yamlmarks import Marks
from runner.manifest.yamlmarks import Path as DataPath
from runner.model import (
    NOWHERE,
    DeviceLink,
    EraseScope,
    EraseStep,
    Execution,
    GpioLine,
    ImageSpec,
    LinkSpec,
    Location,
    LogSpec,
    Manifest,
    OptionBytesStep,
    PowerRef,
    PowerSupply,
    ReadStep,
    Recipe,
    RecoveryPolicy,
    ResetStep,
    SimulatedDevice,
    SimulationSpec,
    StationSpec,
    Step,
    UnitDataStep,
    VerifyMethod,
    VerifyStep,
    Wiring,
    WriteStep,
    frozen_map,
)
from runner.model import Device as DeviceSpec
from runner.unitdata import source_from_mapping, unit_size
from transports.faults import Fault

__all__ = ["build_manifest"]

_NO_OPTIONS = frozen_map()
#: The wiring of a device without ``wiring:`` (nothing wired; written nowhere).
_NO_WIRING = Wiring(location=NOWHERE)


def _frozen(value: Any) -> Any:
    """Deep read-only copy: mappings become proxies, lists tuples."""
    if isinstance(value, dict):
        return frozen_map({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def build_manifest(sources: Sources, folders: Mapping[str, Path], *,
                   warnings: tuple[str, ...] = ()) -> Manifest:
    data, marks = sources.data, sources.marks

    def at(path: DataPath) -> Location:
        mark = marks.key(path)
        return Location(file=mark.file, line=mark.line, column=mark.column)

    digest = sources.digest

    images: dict[str, ImageSpec] = {}
    for name, entry in entries(data, "images").items():
        folder = folders[marks.key(("images", name)).file]
        spec = image_spec(name, entry, folder)
        assert spec is not None
        images[name] = _with_location(spec, at(("images", name)))

    links = {
        name: LinkSpec(name=name, kind=link["kind"],
                       options=_frozen({k: v for k, v in link.items() if k not in LINK_KEYS}),
                       location=at(("transports", name)))
        for name, link in entries(data, "transports").items()
    }
    recipes = {
        name: Recipe(name=name, steps=_steps(name, recipe, marks, at, folders),
                     location=at(("recipes", name)))
        for name, recipe in (data.get("recipes") or {}).items()
    }
    recovery = {
        name: RecoveryPolicy(
            name=name, retries=policy.get("retries", 0),
            backoff=float(policy.get("backoff", 0.0)),
            backoff_factor=float(policy.get("backoff-factor", 2.0)),
            max_backoff=float(policy.get("max-backoff", 30.0)),
            on=frozenset(policy.get("on", ())), actions=tuple(policy.get("actions", ())),
            location=at(("recovery", name)))
        for name, policy in entries(data, "recovery").items()
    }
    devices = {}
    # A line has thousands of devices alike: what they share is built once, and each
    # entry of the document is let go once its device is built (the document is not
    # used after this), so a long line is never held twice.
    shared_links: dict[str, DeviceLink] = {}
    shared_wiring: dict[DataPath, Wiring] = {}
    transports = entries(data, "transports")
    document = data.get("devices") or {}
    for name, mark in marks.child_keys(("devices",)):
        device = document[name]
        link, options, _ = device_link(device)
        assert link is not None
        if options:
            device_link_spec = DeviceLink(link=link, options=_frozen(options))
        else:
            device_link_spec = shared_links.get(link) or \
                shared_links.setdefault(link, DeviceLink(link=link, options=_NO_OPTIONS))
        after = device.get("after")
        devices[name] = DeviceSpec(
            name=name, chip=sys.intern(device["chip"].lower()), link=device_link_spec,
            recipe=device["recipe"], recovery=device.get("recovery"),
            after=tuple(after) if after else (), station=device.get("station"),
            wiring=_device_wiring(name, device, transports, at, shared_wiring),
            location=Location(file=mark.file, line=mark.line, column=mark.column))
        document[name] = None
    execution = data.get("execution", {})
    top = sources.files[0]
    return Manifest(
        version=data["manifest"], name=data["name"], path=top.path,
        sha256=digest.hexdigest(), files=tuple(source.path for source in sources.files),
        description=data.get("description", ""), simulate=data.get("simulate", False),
        simulation=_simulation(data.get("simulation", {})),
        images=frozen_map(images), links=frozen_map(links),
        stations=frozen_map(_stations(data, marks, at, folders)), recipes=frozen_map(recipes),
        recovery=frozen_map(recovery), devices=frozen_map(devices),
        execution=Execution(max_parallel=execution.get("max-parallel", 8),
                            fail_fast=execution.get("fail-fast", False),
                            quarantine_after=execution.get("quarantine-after")),
        power=frozen_map({name: _power_supply(name, entry, at(("power", name)))
                          for name, entry in entries(data, "power").items()}),
        log=_log(data.get("log", {}), top.path), warnings=warnings,
    )


def _log(data: Any, manifest: Path) -> LogSpec:
    key = data.get("sign-key")
    sign_key = None
    if key:
        sign_key = Path(key).expanduser()
        if not sign_key.is_absolute():
            sign_key = manifest.resolve().parent / sign_key
    return LogSpec(file=data.get("file"), sign_key=sign_key)


def _power_supply(name: str, entry: Mapping[str, Any], location: Location) -> PowerSupply:
    return PowerSupply(name=name, kind=entry["kind"], hub=entry.get("hub"),
                       ganged=bool(entry.get("ganged", False)), off=tuple(entry.get("off", ())),
                       on=tuple(entry.get("on", ())), state=tuple(entry.get("state", ())),
                       timeout_s=float(entry.get("timeout", 10.0)), location=location)


def _power_ref(value: Any) -> PowerRef | None:
    if value is None:
        return None
    if value == "auto":
        return PowerRef()
    return PowerRef(supply=value["use"], port=value["port"])


def _gpio_line(value: Any, *, active_low: bool) -> GpioLine | None:
    if value is None:
        return None
    return GpioLine(chip=value["chip"], line=value["line"],
                    active_low=bool(value.get("active-low", active_low)))


def _device_wiring(name: str, device: dict[str, Any], transports: dict[str, dict[str, Any]],
                   at: Any, shared: dict[DataPath, Wiring]) -> Wiring:
    """The device's own wiring, else its link's (the station's cabling at that link).

    A link's wiring is built once and shared by the devices on it.
    """
    value, path = device_wiring(name, device, transports)
    if value is None:
        return _NO_WIRING
    if path[0] != "transports":
        return _wiring(value, at(path))
    known = shared.get(path)
    if known is None:
        known = shared[path] = _wiring(value, at(path))
    return known


def _wiring(value: Mapping[str, Any] | None, location: Location) -> Wiring:
    value = value or {}
    return Wiring(power=_power_ref(value.get("power")),
                  probe_power=_power_ref(value.get("probe-power")),
                  nrst=_gpio_line(value.get("nrst"), active_low=True),  # NRST is active-low
                  boot0=_gpio_line(value.get("boot0"), active_low=False),
                  off_time_s=float(value.get("off-time", 1.0)), location=location)


def _stations(data: Any, marks: Marks, at: Any,
              folders: Mapping[str, Path]) -> dict[str, StationSpec]:
    stations = {}
    for name, entry in entries(data, "stations").items():
        # Key and known_hosts paths are relative to the file the station is in.
        folder = folders[marks.key(("stations", name)).file]
        hosts = entry["host"]
        stations[name] = StationSpec(
            name=name, hosts=(hosts,) if isinstance(hosts, str) else tuple(hosts),
            user=entry["user"], identity_file=_local_path(folder, entry["identity-file"]),
            known_hosts=_local_path(folder, entry["known-hosts"]),
            links=tuple(entry["links"]), port=entry.get("port", 22),
            flashrunner=entry.get("flashrunner", "flashrunner"),
            max_parallel=entry.get("max-parallel", 4),
            connect_timeout=float(entry.get("connect-timeout", 10.0)),
            inactivity_timeout=float(entry.get("inactivity-timeout", 30.0)),
            reconnect=entry.get("reconnect", 3), work_dir=entry.get("work-dir", ".flashrunner"),
            link_lock=entry.get("link-lock", "wait"), location=at(("stations", name)))
    return stations


def _local_path(folder: Path, text: str) -> Path:
    return folder / Path(text).expanduser()


def _with_location(spec: ImageSpec, location: Location) -> ImageSpec:
    return ImageSpec(name=spec.name, path=spec.path, format=spec.format, address=spec.address,
                     sha256=spec.sha256, preserve=spec.preserve, location=location)


def _steps(recipe_name: str, recipe: Any, marks: Marks, at: Any,
           folders: Mapping[str, Path]) -> tuple[Step, ...]:
    built: list[Step] = []
    for index, kind, value, step in steps(recipe):
        settings = value if isinstance(value, dict) else {}
        common: dict[str, Any] = {"location": at(("recipes", recipe_name, index, kind)),
                                  "recovery": step.get("recovery")}
        if kind == "erase":
            built.append(EraseStep(scope=EraseScope(settings.get("scope", "used")), **common))
        elif kind == "write":
            built.append(WriteStep(images=tuple(n for _, n in write_images(value)),
                                   skip_unchanged=settings.get("skip-unchanged", False),
                                   **common))
        elif kind == "verify":
            built.append(VerifyStep(method=VerifyMethod(settings.get("method", "auto")),
                                    images=tuple(n for _, n in write_images(settings)),
                                    **common))
        elif kind == "option-bytes":
            built.append(OptionBytesStep(rdp=settings.get("rdp"),
                                         fields=frozen_map(settings.get("fields", {})),
                                         confirm=settings.get("confirm"), **common))
        elif kind == "unit-data":
            # Files of a unit-data source are relative to the file the recipe is in.
            folder = folders[marks.key(("recipes", recipe_name, index)).file]
            source = source_from_mapping(settings["source"], folder)
            built.append(UnitDataStep(address=settings["address"], size=unit_size(source),
                                      source=source, preserve=settings.get("preserve", False),
                                      **common))
        elif kind == "read":
            folder = folders[marks.key(("recipes", recipe_name, index)).file]
            built.append(ReadStep(path=folder / settings["file"], address=settings.get("address"),
                                  size=settings.get("size"),
                                  format=settings.get("format", "auto"),
                                  overwrite=settings.get("overwrite", False), **common))
        else:
            built.append(ResetStep(mode=settings.get("mode"), **common))
    return tuple(built)


def _simulation(spec: Mapping[str, Any]) -> SimulationSpec:
    devices = {
        name: SimulatedDevice(rdp=device.get("rdp", 0),
                              faults=tuple(Fault.from_mapping(f) for f in device.get("faults", ())),
                              fill=device.get("fill"), quirks=_frozen(device.get("quirks", {})))
        for name, device in (spec.get("devices") or {}).items()
    }
    return SimulationSpec(time_scale=float(spec.get("time-scale", 1.0)), seed=spec.get("seed"),
                          processes=spec.get("processes"), devices=frozen_map(devices),
                          hubs=frozen_map({path: _frozen(hub) for path, hub
                                           in (spec.get("hubs") or {}).items()}),
                          adapters=frozen_map({kind: _frozen(spec[kind]) for kind
                                               in ("serial", "i2c", "can") if spec.get(kind)}))
