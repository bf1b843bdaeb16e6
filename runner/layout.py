"""Where one recipe's images land in one chip's flash.

:func:`layout_images` is the compiler's memory work for a device: the images
of each write step merged (an overlap names both images), checked inside the
chip's flash, padded to the write unit with the erased value, and the erase
units the whole device map touches. The result depends only on the images and
the part, so the compiler computes it once per (write steps, part) and shares
it between every device that repeats them.

Per-unit data fields (``unit-data`` steps) take part too: each must lie in
flash, own its write units alone (no image byte, no image padding) and have
its erase units erased. Sectors that ``preserve: true`` images fill only in
part get a :class:`~runner.preserve.PreserveRange` for each stretch the
erase would lose; the other partly filled sectors are warned about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runner.errors import PlanError
from runner.images import LoadedImage
from runner.memmap import MemoryMap, OverlapError, Segment
from runner.plan import ImageUse
from runner.preserve import PreserveRange, preserve_plan
from transports.chips import Chip, FlashBlock, FlashGeometry

__all__ = ["SECTOR_MIN_SIZE", "Layout", "block_noun", "format_kib", "layout_images",
           "sector_warnings", "verify_layout"]

#: Erase units this large are sectors: erasing one for a few bytes loses a lot.
SECTOR_MIN_SIZE = 16 * 1024


def block_noun(geometry: FlashGeometry) -> str:
    """``"sector"`` for sector-map flash (F2/F4/F7/H7), ``"page"`` otherwise."""
    largest = max((block.size for block in geometry.blocks), default=0)
    return "sector" if not geometry.uniform or largest >= SECTOR_MIN_SIZE else "page"


def format_kib(size: int) -> str:
    """``4 KiB``, ``0.5 KiB``, ``3.53 KiB``: sizes as people write them."""
    return f"{size / 1024:.2f}".rstrip("0").rstrip(".") + " KiB"


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """The memory side of a device's recipe on one part.

    Attributes:
        steps: per write step, the padded map it programs.
        step_uses: per write step, the images it writes.
        memory: everything the device's write steps program (padded).
        images: the images' own bytes, unpadded (what they actually fill).
        uses: every image written, in recipe order.
        blocks: the erase units ``memory`` touches (``erase: {scope: used}``).
        erase_seconds: the chip's time to erase ``blocks``.
        prefixes: ``prefixes[k]`` is what the first ``k`` write steps program.
        fields: the unit-data fields, each ``(start, end)`` widened to whole write units.
        preserve: stretches of partly filled erase units, touched by a
            ``preserve: true`` image, to read before erasing and write back.
        preserved: image names with ``preserve: true`` (for warnings).
    """

    chip: Chip
    steps: tuple[MemoryMap, ...]
    step_uses: tuple[tuple[ImageUse, ...], ...]
    memory: MemoryMap
    images: MemoryMap
    uses: tuple[ImageUse, ...]
    blocks: tuple[FlashBlock, ...]
    erase_seconds: float
    prefixes: tuple[MemoryMap, ...]
    fields: tuple[tuple[int, int], ...] = ()
    preserve: tuple[PreserveRange, ...] = ()
    owners: tuple[tuple[str, MemoryMap], ...] = ()

    def prefix(self, writes: int) -> MemoryMap:
        return self.prefixes[writes]


def layout_images(steps: Sequence[Sequence[LoadedImage]], chip: Chip, *,
                  device: str, fields: Sequence[tuple[int, int, bool]] = ()) -> Layout:
    """Lay out the images of each write step and the unit-data ``fields``.

    ``fields`` holds (address, size, preserve) of each unit-data step in recipe
    order. Raises :class:`PlanError` if anything cannot fit.
    """
    flash = chip.flash
    seen: dict[str, LoadedImage] = {}
    for image in (image for step in steps for image in step):
        if image.name in seen:
            raise PlanError(f"device {device}: image {image.name} is written twice",
                            hint="write each image in one write step only")
        seen[image.name] = image
        _check_inside(image, chip, device)
    images = _merge([(name, image.memory) for name, image in seen.items()], device)
    padded = tuple(
        _merge([(image.name, image.memory) for image in step], device)
        .padded(flash.write_unit, flash.erased)
        for step in steps)
    try:
        memory = MemoryMap.merge((f"write step {i + 1}", m) for i, m in enumerate(padded))
    except OverlapError as error:
        raise PlanError(
            f"device {device}: {error.first} and {error.second} program the same "
            f"{flash.write_unit}-byte write unit at 0x{error.address:08X}",
            hint="write these images in one step or move one of them") from error
    prefixes = [MemoryMap()]
    for step_map in padded:
        prefixes.append(MemoryMap.from_segments((*prefixes[-1].segments, *step_map.segments)))
    widened = _fields(fields, seen, memory, chip, device)
    field_map = MemoryMap.from_segments(Segment(a, bytes(b - a)) for a, b in widened)
    blocks = MemoryMap.from_segments((*memory.segments, *field_map.segments)).blocks(flash)
    owned = MemoryMap.from_segments((*images.segments, *field_map.segments))
    kept = [segment for image in seen.values() if image.preserve for segment in image.memory]
    kept.extend(Segment(a, bytes(b - a)) for (a, b), (_, _, keep) in zip(widened, fields,
                                                                          strict=True) if keep)
    preserve = preserve_plan(owned, flash, blocks=MemoryMap.from_segments(kept).blocks(flash)) \
        if kept else []
    uses = {name: ImageUse(name=name, sha256=image.sha256, ranges=image.memory.ranges)
            for name, image in seen.items()}
    return Layout(
        chip=chip, steps=padded,
        step_uses=tuple(tuple(uses[image.name] for image in step) for step in steps),
        memory=memory, images=images, uses=tuple(uses.values()), blocks=blocks,
        erase_seconds=sum(chip.timing.erase_seconds(block.size) for block in blocks),
        prefixes=tuple(prefixes), fields=widened, preserve=tuple(preserve),
        owners=tuple((name, image.memory) for name, image in seen.items()))


def verify_layout(images: Sequence[LoadedImage], chip: Chip, *,
                  device: str) -> tuple[MemoryMap, tuple[ImageUse, ...]]:
    """What a verify of ``images`` alone compares (padded as a write programs them)."""
    for image in images:
        _check_inside(image, chip, device)
    memory = _merge([(image.name, image.memory) for image in images], device)
    uses = tuple(ImageUse(name=image.name, sha256=image.sha256, ranges=image.memory.ranges)
                 for image in images)
    return memory.padded(chip.flash.write_unit, chip.flash.erased), uses


def _fields(fields: Sequence[tuple[int, int, bool]], images: dict[str, LoadedImage],
            memory: MemoryMap, chip: Chip, device: str) -> tuple[tuple[int, int], ...]:
    """Each unit-data field widened to write units, checked against flash and images."""
    flash = chip.flash
    unit = flash.write_unit
    widened: list[tuple[str, MemoryMap]] = []
    for address, size, _ in fields:
        label = f"unit-data at 0x{address:08X}"
        if not flash.contains(address, size):
            raise PlanError(f"device {device}: {label} ({size} bytes) lies outside the flash "
                            f"of {chip.part} (0x{flash.base:08X}..0x{flash.end:08X})",
                            hint="move the field into flash")
        for name, image in images.items():
            if any(s.address < address + size and address < s.end for s in image.memory):
                raise PlanError(f"device {device}: {label} ({size} bytes) overlaps image "
                                f"{name}", hint="move the field out of the image")
        start = address - address % unit
        end = -(-(address + size) // unit) * unit
        widened.append((label, MemoryMap((Segment(start, bytes([flash.erased]) * (end - start)),
                                          ))))
    try:
        MemoryMap.merge([("the images", memory), *widened])
        MemoryMap.merge(widened)
    except OverlapError as error:
        raise PlanError(f"device {device}: {error.first} and {error.second} share the "
                        f"{unit}-byte write unit at 0x{error.address:08X}",
                        hint=f"align the field to {unit} bytes, away from other data") \
            from error
    return tuple(field.ranges[0] for _, field in widened)


def sector_warnings(layout: Layout) -> tuple[str, ...]:
    """Sectors that ``erase: {scope: used}`` wipes whole though the images fill only part.

    Sectors whose bytes are preserved (``preserve: true``) are not warned about.
    """
    chip = layout.chip
    notes: list[str] = []
    noun = block_noun(chip.flash)
    preserved = {span.block.index for span in layout.preserve}
    owned = [*layout.images.segments, *(Segment(a, bytes(b - a)) for a, b in layout.fields)]
    for block in layout.blocks:
        if block.size < SECTOR_MIN_SIZE or block.index in preserved:
            continue
        filled = sum(max(0, min(block.end, s.end) - max(block.address, s.address))
                     for s in owned)
        if filled < block.size:
            names = [name for name, memory in layout.owners
                     if any(s.address < block.end and block.address < s.end for s in memory)]
            which = f" on image {', '.join(names)}" if names else " on the unit-data step"
            amount = format_kib(filled) if filled >= 1024 or not filled else f"{filled} bytes"
            notes.append(
                f"{noun} 0x{block.address:08X} ({format_kib(block.size)}) of {chip.part} "
                f"will be erased whole but the images only fill {amount} of it; "
                f"the other {block.size - filled} bytes are lost (set `preserve: true`"
                f"{which} to keep them)")
    return tuple(notes)


def _check_inside(image: LoadedImage, chip: Chip, device: str) -> None:
    outside = image.memory.outside(chip.flash)
    if outside is not None:
        flash = chip.flash
        raise PlanError(
            f"device {device}: image {image.name} covers 0x{outside.address:08X}.."
            f"0x{outside.end:08X}, outside the flash of {chip.part} "
            f"(0x{flash.base:08X}..0x{flash.end:08X})",
            hint="check the image's address, or the device's chip")


def _merge(named: Sequence[tuple[str, MemoryMap]], device: str) -> MemoryMap:
    try:
        return MemoryMap.merge(named)
    except OverlapError as error:
        raise PlanError(f"device {device}: images {error.first} and {error.second} "
                        f"overlap at 0x{error.address:08X}",
                        hint="fix the images' addresses; each byte of flash has one owner")\
            from error
