"""Which files a manifest may make flashrunner read: the include and data-file policy.

A manifest names other files: ``include:`` files, and the CSV files and state
files of unit-data sources. They must lie under the top manifest's folder or
under a folder the operator allowed (``--allow-path DIR``, or the inventory
root a caller passes), with symbolic links resolved *before* the check, so
neither ``../..``, an absolute path nor a link can make a manifest read (and
report on) ``/etc/shadow``. Images are not restricted: they are firmware
builds, often in a sibling build folder, read as bytes and never shown.
README "Includes and data files" documents this.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PathPolicy"]


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


@dataclass(frozen=True, slots=True)
class PathPolicy:
    """The folders (resolved) under which included and data files may lie."""

    roots: tuple[Path, ...]

    @classmethod
    def for_manifest(cls, manifest: Path, allowed: Iterable[str | os.PathLike[str]] = ()
                     ) -> PathPolicy:
        """The manifest's own folder and each allowed folder, links resolved."""
        folders = [manifest.parent, *(Path(folder) for folder in allowed)]
        return cls(tuple(dict.fromkeys(_real(folder) for folder in folders)))

    def allows(self, path: Path) -> bool:
        """Whether ``path``, its links resolved, lies under one of the roots."""
        real = _real(path)
        return any(real == root or real.is_relative_to(root) for root in self.roots)

    def refusal(self, what: str, shown: str) -> str:
        """The message for a file outside every root."""
        return (f"{what} {shown} lies outside the manifest's folder (links resolved); "
                f"included and data files must be under the manifest's folder or a folder "
                f"named with --allow-path")
