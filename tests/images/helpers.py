"""Helpers for the image tests: the checked-in images and a spec builder."""

from __future__ import annotations

from pathlib import Path

from runner.images import LoadedImage, load_image
from runner.model import ImageSpec

DATA = Path(__file__).parent / "data"
FLASH = 0x08000000


def spec(path: Path, **fields: object) -> ImageSpec:
    return ImageSpec(name=fields.pop("name", "app"), path=path, **fields)


def load(path: Path, **fields: object) -> LoadedImage:
    return load_image(spec(path, **fields))
