#!/usr/bin/env python3
"""Rebuild the demo line's firmware images (checked in beside this script).

Each image is firmware-shaped: a Cortex-M vector table (initial stack pointer at
the top of the part's RAM, a Thumb reset handler), a version string, and
deterministic filler standing in for code, so the demo and the tests always
flash the same bytes. Run from anywhere: ``python manifests/demo/make_images.py``.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import bincopy

HERE = Path(__file__).resolve().parent / "images"

# name: (load address, size, top of RAM, format)
IMAGES = {
    "sensor-f103.hex": (0x08000000, 12 * 1024, 0x20005000, "ihex"),
    "sensor-g071.bin": (0x08000000, 10 * 1024, 0x20009000, "bin"),
    "motor-l476.hex": (0x08000000, 16 * 1024, 0x20018000, "ihex"),
    "gateway-boot-f411.hex": (0x08000000, 16 * 1024, 0x20020000, "ihex"),
    "gateway-app-f411.bin": (0x08010000, 24 * 1024, 0x20020000, "bin"),
}


def firmware(name: str, address: int, size: int, stack_top: int) -> bytes:
    vectors = struct.pack("<II", stack_top, address + 0x1C1) + bytes(4 * 46)
    banner = f"flashrunner demo {name} v1.4.2\0".encode()
    filler = bytearray()
    block = hashlib.sha256(name.encode()).digest()
    while len(filler) < size:
        block = hashlib.sha256(block).digest()
        filler += block
    body = vectors + banner
    return body + bytes(filler[:size - len(body)])


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for name, (address, size, stack_top, fmt) in IMAGES.items():
        data = firmware(name, address, size, stack_top)
        target = HERE / name
        if fmt == "bin":
            target.write_bytes(data)
        else:
            binfile = bincopy.BinFile()
            binfile.add_binary(data, address=address)
            target.write_text(binfile.as_ihex())
        print(f"{target.relative_to(HERE.parent.parent.parent)}: {size} bytes at 0x{address:08X}")


if __name__ == "__main__":
    main()
