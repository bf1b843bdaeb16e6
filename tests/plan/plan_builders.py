"""Builders for hand-made manifests and fake link kinds used by the plan tests.

Manifests are built from :mod:`runner.model` values directly (not loaded from
YAML) so these tests depend only on the model and the compiler.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from runner.model import (
    Device,
    DeviceLink,
    EraseStep,
    Execution,
    ImageSpec,
    LinkSpec,
    Manifest,
    Recipe,
    RecoveryPolicy,
    ResetStep,
    Step,
    VerifyStep,
    WriteStep,
    frozen_map,
)
from transports.base import Capability, SpeedModel
from transports.chips import Chip
from transports.memory import MemoryTransport

GOLDEN = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("FLASHRUNNER_REGEN_GOLDEN") == "1"


def assert_matches_golden(name: str, text: str) -> None:
    """``text`` equals ``golden/<name>`` (rewritten first with FLASHRUNNER_REGEN_GOLDEN=1)."""
    path = GOLDEN / name
    if REGENERATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} differs; regenerate with FLASHRUNNER_REGEN_GOLDEN=1"


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-erased-looking bytes (stable digests for golden files)."""
    return bytes((seed * 31 + i * 7 + (i >> 8)) % 251 for i in range(size))


def write_image(folder: Path, name: str, size: int, address: int, seed: int = 0) -> ImageSpec:
    path = folder / f"{name}.bin"
    path.write_bytes(pattern(size, seed))
    return ImageSpec(name=name, path=path, format="bin", address=address)


def standard_recipe(images: Iterable[str] = ("boot", "app"), name: str = "std") -> Recipe:
    return Recipe(name=name, steps=(EraseStep(), WriteStep(images=tuple(images)),
                                    VerifyStep(), ResetStep()))


def device(name: str, *, chip: str = "stm32g071rb", link: str = "bus", recipe: str = "std",
           after: Iterable[str] = (), options: Mapping[str, Any] | None = None,
           recovery: str | None = None) -> Device:
    return Device(name=name, chip=chip, link=DeviceLink(link=link, options=frozen_map(options)),
                  recipe=recipe, after=tuple(after), recovery=recovery)


def manifest(devices: Iterable[Device], *, images: Iterable[ImageSpec] = (),
             recipes: Iterable[Recipe] | None = None, links: Iterable[LinkSpec] | None = None,
             recovery: Iterable[RecoveryPolicy] = (), simulate: bool = True,
             max_parallel: int = 8, name: str = "widget",
             folder: Path = Path("/nonexistent")) -> Manifest:
    device_list = list(devices)
    if links is None:
        names = dict.fromkeys(d.link.link for d in device_list)
        links = [LinkSpec(name=n, kind="sim") for n in names]
    if recipes is None:
        recipes = [standard_recipe()]
    return Manifest(
        version=1, name=name, path=folder / f"{name}.yaml", sha256="5e" * 32,
        files=(folder / f"{name}.yaml",), simulate=simulate,
        images=frozen_map({i.name: i for i in images}),
        links=frozen_map({link.name: link for link in links}),
        recipes=frozen_map({r.name: r for r in recipes}),
        recovery=frozen_map({r.name: r for r in recovery}),
        devices=frozen_map({d.name: d for d in device_list}),
        execution=Execution(max_parallel=max_parallel))


def recipe(*steps: Step, name: str = "std") -> Recipe:
    return Recipe(name=name, steps=steps)


# ----------------------------------------------------------------------------- fake kinds
# Registered by the `fake_kinds` fixture (conftest.py) as built-in kinds.


class BootloaderLikeTransport(MemoryTransport):
    """A link like a ROM bootloader: no checksum, no hardware reset, only Go."""

    kind: ClassVar[str] = "bootish"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.ERASE_PAGES, Capability.ERASE_MASS, Capability.WRITE, Capability.READ,
        Capability.GO, Capability.OPTION_BYTES})

    @classmethod
    def speed_model(cls, options: Mapping[str, Any], chip: Chip) -> SpeedModel:
        return SpeedModel(connect_s=0.25, write_bytes_per_s=10_000, read_bytes_per_s=20_000,
                          erase_overhead_s=0.01)


class WriteOnlyTransport(MemoryTransport):
    """A link that can only write (no erase, no read, no reset)."""

    kind: ClassVar[str] = "writeonly"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.WRITE})


class SoftResetTransport(MemoryTransport):
    """A debug-probe-like link without a reset pin."""

    kind: ClassVar[str] = "softreset"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability) - {
        Capability.RESET_HARDWARE, Capability.GO}
