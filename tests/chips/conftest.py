"""Fixtures for the chip database tests: the raw data documents as shipped."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from transports.chips import shipped_documents

_DOCUMENTS: dict[str, Any] = shipped_documents()


@pytest.fixture
def documents() -> dict[str, dict[str, Any]]:
    """A private deep copy of every data file, free to damage."""
    return copy.deepcopy(_DOCUMENTS)


@pytest.fixture(scope="session")
def lines() -> list[tuple[str, Mapping[str, Any]]]:
    """Every line of the database as ``(file name, line mapping)``."""
    return [(name, line) for name, document in sorted(_DOCUMENTS.items())
            for line in document["lines"]]
