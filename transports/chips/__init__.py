"""The chip database: STM32 facts as validated data, keyed by DEV_ID/PID and part name.

The data lives in ``transports/chips/data/*.yaml`` (one file per family) and is
checked against ``schemas/chips.schema.json`` when loaded. A *line* is one die
(one DEV_ID); its *parts* differ only in how much flash and RAM they expose, so
a part's flash geometry is the line's geometry truncated to the part's size.

Everything else in flashrunner asks this module, never hard-codes addresses.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, partial
from importlib import resources
from typing import Any

import yaml

from schemas import load_schema
from transports.chips.rom import INTERFACES, RomBootloader, rom_bootloader, rom_version
from transports.errors import PlanError

__all__ = [
    "INTERFACES",
    "BootloaderInfo",
    "Chip",
    "ChipDatabase",
    "FlashBlock",
    "FlashGeometry",
    "FlashTiming",
    "OptionBytesInfo",
    "RomBootloader",
    "chip_database",
    "family_file",
    "rom_bootloader",
    "rom_version",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashBlock:
    """One erase unit: a page (uniform parts) or a sector (F2/F4/F7/H7).

    ``index`` counts from the start of flash across banks (the page number the
    system bootloader's Erase takes); ``bank`` and ``index_in_bank`` are what
    dual-bank controllers take.
    """

    index: int
    address: int
    size: int
    bank: int = 1
    index_in_bank: int = 0

    @property
    def end(self) -> int:
        return self.address + self.size


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashGeometry:
    """Main flash of one part: where it is, its erase units, how it programs."""

    base: int
    blocks: tuple[FlashBlock, ...]
    write_unit: int
    erased: int = 0xFF
    banks: int = 1
    bank2_base: int | None = None
    # Derived once: simulators ask for these per programmed half-word.
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _size: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(block.address for block in self.blocks))
        object.__setattr__(self, "_size", sum(block.size for block in self.blocks))

    @property
    def size(self) -> int:
        return self._size

    @property
    def end(self) -> int:
        return self.base + self.size

    @property
    def uniform(self) -> bool:
        """True when every erase unit has the same size (pages, not a sector map)."""
        return len({block.size for block in self.blocks}) == 1

    def contains(self, address: int, length: int = 1) -> bool:
        return self.base <= address and address + length <= self.base + self._size

    def block_at(self, address: int) -> FlashBlock:
        """The erase unit holding ``address``; ``ValueError`` outside flash."""
        if not self.contains(address):
            raise ValueError(f"0x{address:08X} is outside flash "
                             f"0x{self.base:08X}..0x{self.end:08X}")
        return self.blocks[bisect.bisect_right(self._starts, address) - 1]

    def blocks_covering(self, address: int, length: int) -> tuple[FlashBlock, ...]:
        """Every erase unit that ``[address, address+length)`` touches, in order."""
        if length <= 0:
            return ()
        first = self.block_at(address).index
        last = self.block_at(address + length - 1).index
        return self.blocks[first:last + 1]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashTiming:
    """Typical datasheet figures: used for plan estimates and simulated durations."""

    page_erase_ms: float
    erase_ms_per_kib: float
    mass_erase_ms: float
    program_us: float

    def erase_seconds(self, block_size: int) -> float:
        return (self.page_erase_ms + self.erase_ms_per_kib * block_size / 1024) / 1000

    def program_seconds(self, nbytes: int, write_unit: int) -> float:
        units = -(-nbytes // write_unit)
        return units * self.program_us / 1e6


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionBytesInfo:
    """Where the option bytes live and how RDP levels are encoded.

    ``rdp_offset`` is where the RDP byte sits inside the option-byte area: 0 on
    F0/F1/F3, L0/L1 and the OPTR families, 1 where the option word keeps USER/BOR
    in its low byte (F2/F4/F7 OPTCR[15:8], H7 OPTSR[15:8], H5 PRODUCT_STATE).
    """

    address: int
    size: int
    rdp_level0: int = 0xAA
    rdp_level2: int = 0xCC
    has_level2: bool = True
    rdp_offset: int = 0

    def rdp_level(self, rdp_byte: int) -> int:
        """Decode an RDP byte into level 0, 1 or 2."""
        if rdp_byte == self.rdp_level0:
            return 0
        if self.has_level2 and rdp_byte == self.rdp_level2:
            return 2
        return 1

    def rdp_byte(self, image: bytes) -> int:
        """The RDP byte of an option-byte image read from :attr:`address`."""
        return image[self.rdp_offset]

    def level_of(self, image: bytes) -> int:
        """The RDP level an option-byte image read from :attr:`address` encodes."""
        return self.rdp_level(self.rdp_byte(image))


@dataclass(frozen=True, slots=True, kw_only=True)
class BootloaderInfo:
    """System-memory bootloader parameters (AN2606 device-dependent table)."""

    ram: tuple[int, int] | None = None
    system_memory: tuple[int, int] | None = None
    option_bytes: tuple[int, int] | None = None
    pages_per_sector: int = 1
    flags: frozenset[str] = frozenset()
    bl_id: tuple[int, ...] = ()
    bl_id_address: int | None = None
    i2c_address: int | None = None
    interfaces: frozenset[str] = frozenset()
    #: The protocol version byte the ROM answers per serial interface (``usart``,
    #: ``i2c``, ``can``): the family's ``rom`` entry, a line's ``usart-version`` winning.
    rom_versions: Mapping[str, int] = field(default_factory=dict)
    #: The USART ROM lists Get Checksum whatever its version (H7).
    usart_checksum: bool = False
    #: The USART ROM answers the 0x7F with two ACKs (AN2606: L412/L422).
    usart_double_ack: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Chip:
    """Everything flashrunner knows about one STM32 part."""

    part: str
    line: str
    family: str
    dev_id: int
    core: str
    controller: str
    flash: FlashGeometry
    ram: tuple[int, int]
    idcode_address: int
    flash_size_address: int
    uid_address: int
    uid_offsets: tuple[int, int, int]
    flash_controller_address: int | None
    option_bytes: OptionBytesInfo
    timing: FlashTiming
    bootloader: BootloaderInfo
    reference: str
    notes: str = ""

    @property
    def flash_kib(self) -> int:
        return self.flash.size // 1024


def _geometry(line: Mapping[str, Any], flash_kib: int, part_banks: int | None = None
              ) -> FlashGeometry:
    """The line's erase units truncated to ``flash_kib``, each tagged with its bank.

    Bank 2 starts at ``bank2-base`` (F1-XL: always 0x08080000) unless the part ends
    before it or the line says ``bank2-at-half`` (L0 category 5): then it starts at
    half of the part's flash. ``part_banks`` = 1 makes a part single bank (F42x 1 MiB).
    """
    spec = line["flash"]
    base = spec["base"]
    bank2_base = spec.get("bank2-base")
    banks = spec.get("banks", 1) if part_banks is None else part_banks
    wanted = flash_kib * 1024
    sizes: list[int] = []
    for region in spec["regions"]:
        sizes.extend([region["size"]] * region["count"])
    addresses: list[int] = []
    address = base
    for size in sizes:
        if address - base >= wanted:
            break
        addresses.append(address)
        address += size
    if address - base != wanted:
        raise PlanError(f"chip database: {line['name']}: flash regions do not add up to "
                        f"{flash_kib} KiB")
    if banks < 2:
        bank2_base = None
    elif bank2_base is None or bank2_base >= base + wanted or spec.get("bank2-at-half", False):
        # A smaller part of a dual-bank line: its flash is split in halves.
        # RM0351 §3.2: on 512 KiB L47x parts bank 2 starts at half the flash.
        bank2_base = base + wanted // 2
    blocks: list[FlashBlock] = []
    in_bank = {1: 0, 2: 0}
    for start, size in zip(addresses, sizes[:len(addresses)], strict=True):
        bank = 2 if bank2_base is not None and start >= bank2_base else 1
        blocks.append(FlashBlock(index=len(blocks), address=start, size=size, bank=bank,
                                 index_in_bank=in_bank[bank]))
        in_bank[bank] += 1
    return FlashGeometry(base=base, blocks=tuple(blocks), write_unit=spec["write-unit"],
                         erased=spec.get("erased", 0xFF), banks=2 if bank2_base else 1,
                         bank2_base=bank2_base)


def _chip(part: str, size: Mapping[str, Any], line: Mapping[str, Any], family: str,
          reference: str, rom: Mapping[str, Any]) -> Chip:
    registers = line["registers"]
    ob = line["option-bytes"]
    timing = line["timing"]
    boot = line.get("bootloader", {})
    ram_start, ram_end = line["ram"]
    if ob.get("rdp-offset", 0) >= ob["size"]:
        raise PlanError(f"chip database: {line['name']}: rdp-offset {ob['rdp-offset']} is "
                        f"outside the {ob['size']}-byte option-byte area")
    if "ram-kib" in size:
        ram_end = ram_start + size["ram-kib"] * 1024
    return Chip(
        part=part,
        line=line["name"],
        family=family,
        dev_id=line["dev_id"],
        core=line["core"],
        controller=line["controller"],
        flash=_geometry(line, size["flash-kib"], size.get("banks")),
        ram=(ram_start, ram_end),
        idcode_address=registers["idcode"],
        flash_size_address=registers["flash-size"],
        uid_address=registers["uid"],
        uid_offsets=tuple(registers.get("uid-offsets", (0, 4, 8))),
        flash_controller_address=registers.get("flash-controller"),
        option_bytes=OptionBytesInfo(
            address=ob["address"], size=ob["size"], rdp_level0=ob.get("rdp-level0", 0xAA),
            rdp_level2=ob.get("rdp-level2", 0xCC), has_level2=ob.get("has-level2", True),
            rdp_offset=ob.get("rdp-offset", 0)),
        timing=FlashTiming(page_erase_ms=timing["page-erase-ms"],
                           erase_ms_per_kib=timing.get("erase-ms-per-kib", 0.0),
                           mass_erase_ms=timing["mass-erase-ms"],
                           program_us=timing["program-us"]),
        bootloader=BootloaderInfo(
            ram=tuple(boot["ram"]) if "ram" in boot else None,
            system_memory=(tuple(boot["system-memory"])
                           if "system-memory" in boot else None),
            option_bytes=(tuple(boot["option-bytes"])
                          if "option-bytes" in boot else None),
            pages_per_sector=boot.get("pages-per-sector", 1),
            flags=frozenset(boot.get("flags", ())),
            bl_id=tuple(boot.get("bl-id", ())),
            bl_id_address=boot.get("bl-id-address"),
            i2c_address=boot.get("i2c-address"),
            interfaces=frozenset(boot.get("interfaces", ())),
            rom_versions={"usart": boot.get("usart-version", rom["usart"]),
                          "i2c": rom["i2c"], "can": rom["can"]},
            usart_checksum=rom.get("usart-checksum", False),
            usart_double_ack=boot.get("usart-double-ack", False),
        ),
        reference=reference,
        notes=line.get("notes", ""),
    )


def _built_chip(source: str, where: str, part: str, size: Mapping[str, Any],
                line: Mapping[str, Any], document: Mapping[str, Any]) -> Chip:
    try:
        return _chip(part, size, line, document["family"], document["reference"],
                     document["rom"])
    except PlanError as exc:
        raise PlanError(f"chip database {source}: {where}: {exc.message}",
                        hint="the shipped chip data is damaged; reinstall flashrunner") from exc


class _Catalogue:
    """Parts found in data files so far: how to build each, and the parts of each DEV_ID."""

    def __init__(self) -> None:
        self.recipes: dict[str, Callable[[], Chip]] = {}
        self.by_dev_id: dict[int, list[str]] = {}
        self._lines: dict[str, str] = {}

    def add(self, source: str, document: Mapping[str, Any]) -> None:
        for number, line in enumerate(document["lines"]):
            for part, size in line["parts"].items():
                where = f"lines/{number}/parts/{part}"
                if part in self.recipes:
                    raise PlanError(f"chip database {source}: {where}: part {part} is "
                                    f"already defined by line {self._lines[part]}",
                                    hint="the shipped chip data is damaged; reinstall "
                                         "flashrunner")
                self.recipes[part] = partial(_built_chip, source, where, part, size, line,
                                             document)
                self._lines[part] = line["name"]
                self.by_dev_id.setdefault(line["dev_id"], []).append(part)


class _Parts(Mapping[str, Chip]):
    """Parts by name, each built from its data line when first asked for.

    A run touches a handful of the ~240 parts; building every part's erase
    units (~48,000 blocks) at start-up cost more than parsing the data files.
    """

    def __init__(self, recipes: Mapping[str, Callable[[], Chip]]) -> None:
        self._recipes = recipes
        self._built: dict[str, Chip] = {}

    def __getitem__(self, part: str) -> Chip:
        chip = self._built.get(part)
        if chip is None:
            chip = self._built[part] = self._recipes[part]()
        return chip

    def __iter__(self) -> Iterator[str]:
        return iter(self._recipes)

    def __len__(self) -> int:
        return len(self._recipes)

    def __contains__(self, part: object) -> bool:
        return part in self._recipes


@dataclass(frozen=True, slots=True)
class ChipDatabase:
    """All known parts, by part name and by DEV_ID."""

    chips: Mapping[str, Chip]
    _by_dev_id: Mapping[int, tuple[str, ...]] = field(repr=False)

    @classmethod
    def from_documents(cls, documents: Mapping[str, Mapping[str, Any]], *,
                       validate: bool = True) -> ChipDatabase:
        """Build from parsed data files (``{source name: document}``).

        ``validate`` checks each against ``schemas/chips.schema.json`` first; only
        the shipped data, which the test suite validates, is built without it.
        """
        validator = None
        if validate:
            import jsonschema

            validator = jsonschema.Draft202012Validator(load_schema("chips"))
        catalogue = _Catalogue()
        for source, document in sorted(documents.items()):
            errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path)) \
                if validator is not None else []
            if errors:
                where = "/".join(str(p) for p in errors[0].absolute_path)
                raise PlanError(f"chip database {source}: {where}: {errors[0].message}",
                                hint="the shipped chip data is damaged; reinstall flashrunner")
            catalogue.add(source, document)
        recipes, by_dev_id = catalogue.recipes, catalogue.by_dev_id
        parts = _Parts(recipes)
        if validate:   # data from outside the package: every part is checked now
            for part in parts:
                parts[part]
        return cls(parts, {k: tuple(v) for k, v in by_dev_id.items()})

    def __iter__(self) -> Iterator[Chip]:
        return iter(sorted(self.chips.values(), key=lambda c: c.part))

    def __len__(self) -> int:
        return len(self.chips)

    def __contains__(self, part: object) -> bool:
        return isinstance(part, str) and part.lower() in self.chips

    def part(self, name: str) -> Chip:
        """The chip called ``name`` (case-insensitive); ``KeyError`` names near misses."""
        key = name.lower()
        try:
            return self.chips[key]
        except KeyError:
            close = [p for p in self.chips if p.startswith(key[:9])][:5]
            raise KeyError(name if not close else f"{name} (did you mean {', '.join(close)}?)")\
                from None

    def by_dev_id(self, dev_id: int) -> tuple[Chip, ...]:
        """Every part sharing DEV_ID/PID ``dev_id`` (empty when unknown)."""
        return tuple(self.chips[part] for part in self._by_dev_id.get(dev_id, ()))

    @property
    def dev_ids(self) -> frozenset[int]:
        return frozenset(self._by_dev_id)


#: libyaml's loader where PyYAML was built with it: parsing the data files with the
#: pure-Python loader costs a quarter of a second of every start.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _data_folder() -> Any:
    return resources.files(__name__).joinpath("data")


def _parse(entry: Any) -> Mapping[str, Any]:
    document: Mapping[str, Any] = yaml.load(entry.read_text("utf-8"), Loader=_YAML_LOADER)
    return document


def shipped_documents() -> dict[str, Mapping[str, Any]]:
    """The chip data files shipped with flashrunner, parsed (``{file name: document}``)."""
    return {entry.name: _parse(entry) for entry in _data_folder().iterdir()
            if entry.name.endswith(".yaml")}


def family_file(part: str) -> str:
    """The shipped data file that holds ``part``: ``stm32f103cb`` is in ``stm32f1.yaml``."""
    return f"{part[:7].lower()}.yaml"


class _ShippedCatalogue:
    """The shipped data files, each parsed when a part of its family is first asked for.

    A run names a chip or two: parsing and indexing all eighteen files cost it
    ~20 ms before its first byte. Looking a part up parses its family's file
    (:func:`family_file`; the test suite holds every part to it); anything that
    needs every part (listing, a DEV_ID lookup, an unknown name) parses them all.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catalogue = _Catalogue()
        self._pending = {entry.name: entry for entry in _data_folder().iterdir()
                         if entry.name.endswith(".yaml")}

    def _load(self, names: Iterable[str]) -> _Catalogue:
        with self._lock:
            for name in sorted(names):
                entry = self._pending.pop(name, None)
                if entry is not None:
                    self._catalogue.add(name, _parse(entry))
        return self._catalogue

    def everything(self) -> _Catalogue:
        return self._load(list(self._pending))

    def recipe(self, part: str) -> Callable[[], Chip] | None:
        recipes = self._catalogue.recipes
        if part not in recipes:
            self._load([family_file(part)])
        if part not in recipes:
            self.everything()
        return recipes.get(part)


class _ShippedRecipes(Mapping[str, Callable[[], Chip]]):
    def __init__(self, shipped: _ShippedCatalogue) -> None:
        self._shipped = shipped

    def __getitem__(self, part: str) -> Callable[[], Chip]:
        recipe = self._shipped.recipe(part)
        if recipe is None:
            raise KeyError(part)
        return recipe

    def __contains__(self, part: object) -> bool:
        return isinstance(part, str) and self._shipped.recipe(part) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._shipped.everything().recipes)

    def __len__(self) -> int:
        return len(self._shipped.everything().recipes)


class _ShippedDevIds(Mapping[int, tuple[str, ...]]):
    def __init__(self, shipped: _ShippedCatalogue) -> None:
        self._shipped = shipped

    def _all(self) -> dict[int, list[str]]:
        return self._shipped.everything().by_dev_id

    def __getitem__(self, dev_id: int) -> tuple[str, ...]:
        return tuple(self._all()[dev_id])

    def __iter__(self) -> Iterator[int]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


@cache
def chip_database() -> ChipDatabase:
    """The database shipped with flashrunner, one per process, each file parsed when needed.

    Its schema check runs in the test suite
    (``tests/chips/test_chip_database.py``), not at every start; a part
    defined twice is still refused when its files are parsed.
    """
    shipped = _ShippedCatalogue()
    return ChipDatabase(_Parts(_ShippedRecipes(shipped)), _ShippedDevIds(shipped))
