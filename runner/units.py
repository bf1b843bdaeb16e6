"""Sizes and durations written the same way everywhere people read them."""

from __future__ import annotations

__all__ = ["format_bytes", "format_duration", "format_seconds"]


def format_bytes(size: int) -> str:
    """``512 B``, ``24.0 KiB``, ``1.50 MiB``."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.2f} MiB"


def format_seconds(seconds: float) -> str:
    """``0.05 s``, ``4.2 s``, ``2 min 05 s`` (estimates: no false precision)."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def format_duration(ms: float) -> str:
    """``850 ms``, ``4.21 s``, ``2 min 05.3 s`` (measured durations)."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"
