"""Make the .dfu test files with flashrunner's DfuSe writer (called by build.sh).

flat.dfu: one target, one element, from flat.bin placed at 0x08000000.
sparse.dfu: one target, one element per segment of sparse.hex (two elements).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from runner.dfufile import dfuse_from_memory  # noqa: E402
from runner.images import parse_image  # noqa: E402

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
flat = parse_image((out / "flat.bin").read_bytes(), "bin", "flat.bin", 0x08000000)
sparse = parse_image((out / "sparse.hex").read_bytes(), "ihex", "sparse.hex")
for name, memory in (("flat", flat), ("sparse", sparse)):
    (out / f"{name}.dfu").write_bytes(
        dfuse_from_memory(memory, vendor=0x0483, product=0xDF11, device=0x2200))
