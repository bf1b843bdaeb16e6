"""Fixtures of the station tests (the helpers are in station_farm.py)."""

from __future__ import annotations

from station_farm import farm

__all__ = ["farm"]
