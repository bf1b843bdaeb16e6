"""flashrunner: flash STM32 microcontrollers from a declarative, validated manifest.

The public entry points are imported on first use (PEP 562): ``transports``
imports ``runner.errors``, and an eager import here would close a cycle
through ``runner.manifest`` → ``transports.chips``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.manifest import load_manifest as load_manifest

#: Public name → the module that defines it.
_EXPORTS = {
    "load_manifest": "runner.manifest",
}

__all__ = ["load_manifest"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
