#!/usr/bin/env python3
"""Rebuild the images of the ``stlink-*`` example manifests (checked in beside this script).

Each is firmware-shaped: a vector table (stack pointer at the top of RAM, a
Thumb reset handler) followed by deterministic filler, as raw binaries.
Run from anywhere: ``python manifests/images/make_stlink_images.py``.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name: (size, top of RAM)
IMAGES = {
    "stlink-f103.bin": (12 * 1024, 0x20005000),
    "stlink-f411.bin": (40 * 1024, 0x20020000),
    "stlink-g071.bin": (10 * 1024, 0x20009000),
    "stlink-l476.bin": (16 * 1024, 0x20018000),
    "stlink-h743.bin": (64 * 1024, 0x24080000),
}


def firmware(name: str, size: int, stack_top: int) -> bytes:
    body = bytearray()
    counter = 0
    while len(body) < size:
        body += hashlib.sha256(f"{name}:{counter}".encode()).digest()
        counter += 1
    body[:8] = struct.pack("<II", stack_top, 0x08000101)
    return bytes(body[:size])


def main() -> None:
    for name, (size, stack_top) in IMAGES.items():
        (HERE / name).write_bytes(firmware(name, size, stack_top))


if __name__ == "__main__":
    main()
