"""Modules imported on first use, for libraries only some links need.

python-can costs ~60 ms to import (it pulls in asyncio and its log formats);
a run or a ``validate`` that has no CAN link should not pay for it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["LazyModule"]


class LazyModule(ModuleType):
    """Stands for module ``name`` and imports it at the first attribute read."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if attribute == "_module":
            raise AttributeError(attribute)
        if self._module is None:
            self._module = importlib.import_module(self.__name__)
        return getattr(self._module, attribute)
