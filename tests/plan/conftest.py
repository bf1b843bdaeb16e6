"""Fixtures for the plan tests: images in a temporary folder, fake link kinds."""

from __future__ import annotations

from pathlib import Path

import pytest
from plan_builders import write_image

import transports.registry
from runner.model import ImageSpec


@pytest.fixture
def boot(tmp_path: Path) -> ImageSpec:
    """4 KiB at the start of flash."""
    return write_image(tmp_path, "boot", 4096, 0x0800_0000, seed=1)


@pytest.fixture
def app(tmp_path: Path) -> ImageSpec:
    """20 000 bytes (not a multiple of any write unit) at 16 KiB."""
    return write_image(tmp_path, "app", 20_000, 0x0800_4000, seed=2)


@pytest.fixture
def fake_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the restricted link kinds of plan_builders as built-ins."""
    for kind, name in (("bootish", "BootloaderLikeTransport"),
                       ("writeonly", "WriteOnlyTransport"),
                       ("softreset", "SoftResetTransport")):
        monkeypatch.setitem(transports.registry.BUILTIN, kind, f"plan_builders:{name}")
