"""flashrunner's engine: manifest → plan → run.

The public API is imported on first use, so that ``flashrunner --help``, or a
library that only needs :mod:`runner.errors`, does not pay for loading the
compiler, the executor and every transport. Add an entry to ``_PUBLIC`` (and
the ``TYPE_CHECKING`` block, for type checkers) to export a name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.compiler import compile_plan as compile_plan
    from runner.launch import execute as execute
    from runner.launch import run_manifest as run_manifest
    from runner.manifest import load_manifest as load_manifest

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    "compile_plan": "runner.compiler",
    "execute": "runner.launch",
    "load_manifest": "runner.manifest",
    "run_manifest": "runner.launch",
}

__all__ = ["__version__", "compile_plan", "execute", "load_manifest", "run_manifest"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
