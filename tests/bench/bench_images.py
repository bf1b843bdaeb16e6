"""How fast images load and serial numbers are allocated, beside a peer and a limit.

* Loading a 1 MiB firmware as Intel HEX, S-record, ELF and DfuSe with
  :func:`runner.images.load_image`, beside ``arm-none-eabi-objcopy`` converting
  the same file to a raw binary (the peer: a C program doing the same parse).
* Allocating serial numbers (:class:`runner.serials.SerialCounter`), beside
  the machine's bare fsync rate (the physical limit: each allocation fsyncs
  the journal, the state file and its folder).

Run: python tests/bench/bench_images.py
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bincopy  # noqa: E402

from runner.dfufile import dfuse_from_memory  # noqa: E402
from runner.images import load_image  # noqa: E402
from runner.memmap import MemoryMap, Segment  # noqa: E402
from runner.model import ImageSpec  # noqa: E402
from runner.serials import SerialCounter  # noqa: E402

SIZE = 1 << 20
FLASH = 0x08000000
OBJCOPY = shutil.which("arm-none-eabi-objcopy")
LINKER = shutil.which("arm-none-eabi-ld")


def _best(run: object, repeat: int = 3) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        timings.append(time.perf_counter() - started)
    return min(timings)


def _files(folder: Path) -> dict[str, Path]:
    data = random.Random(7).randbytes(SIZE)
    binfile = bincopy.BinFile()
    binfile.add_binary(data, address=FLASH)
    files = {"ihex": folder / "fw.hex", "srec": folder / "fw.srec", "dfu": folder / "fw.dfu"}
    files["ihex"].write_text(binfile.as_ihex())
    files["srec"].write_text(binfile.as_srec())
    files["dfu"].write_bytes(dfuse_from_memory(MemoryMap((Segment(FLASH, data),))))
    if OBJCOPY and LINKER:
        (folder / "fw.bin").write_bytes(data)
        files["elf"] = folder / "fw.elf"
        subprocess.run([OBJCOPY, "-I", "binary", "-O", "elf32-littlearm",
                        str(folder / "fw.bin"), str(folder / "fw.o")], check=True)
        subprocess.run([LINKER, "--section-start", f".data=0x{FLASH:08X}", "-e", "0",
                        "-o", str(files["elf"]), str(folder / "fw.o")], check=True)
    return files


def bench_loading(folder: Path) -> None:
    print(f"loading {SIZE // 1024} KiB of firmware (best of 3)")
    print(f"{'format':<6} {'flashrunner':>12} {'objcopy → bin':>14}")
    for fmt, path in _files(folder).items():
        ours = _best(lambda p=path, f=fmt: load_image(ImageSpec(name="fw", path=p, format=f)))
        peer = "n/a"
        if OBJCOPY and fmt in ("ihex", "srec", "elf"):
            source = {"ihex": "ihex", "srec": "srec", "elf": "elf32-littlearm"}[fmt]
            peer_s = _best(lambda p=path, s=source: subprocess.run(
                [OBJCOPY, "-I", s, "-O", "binary", str(p), str(folder / "out.bin")],
                check=True))
            peer = f"{peer_s * 1000:.1f} ms"
        print(f"{fmt:<6} {ours * 1000:>9.1f} ms {peer:>14}")


def bench_serials(folder: Path, count: int = 200) -> None:
    counter = SerialCounter(state=folder / "serials.json")
    started = time.perf_counter()
    for index in range(count):
        counter.allocate(device=f"unit-{index}", run_id="bench")
    ours = (time.perf_counter() - started) / count
    probe = folder / "probe"
    with probe.open("wb") as handle:
        started = time.perf_counter()
        for _ in range(count):
            handle.write(b"x")
            handle.flush()
            os.fsync(handle.fileno())
        fsync = (time.perf_counter() - started) / count
    print(f"\nserial allocation: {ours * 1000:.2f} ms each ({1 / ours:.0f}/s); "
          f"one bare fsync: {fsync * 1000:.2f} ms (allocation does three)")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as temporary:
        bench_loading(Path(temporary))
        bench_serials(Path(temporary))
