"""SimChip behaves like STM32 NOR flash."""

from __future__ import annotations

import pytest

from transports.chips import ChipDatabase
from transports.sim import SimChip, SimFlashFault, SimulationWorld


def test_erased_flash_reads_ff(chips: ChipDatabase) -> None:
    sim = SimChip(chips.part("stm32f103c8"))
    assert sim.flash == b"\xff" * 64 * 1024


def test_programming_only_clears_bits(chips: ChipDatabase) -> None:
    sim = SimChip(chips.part("stm32f103c8"))
    sim.program(0x08000000, b"\xf0\x0f")
    sim.program(0x08000000, b"\x3c\x3c")
    assert sim.read_flash(0x08000000, 2) == b"\x30\x0c"


def test_strict_program_refuses_unerased_unit(chips: ChipDatabase) -> None:
    sim = SimChip(chips.part("stm32g071rb"))
    sim.program(0x08000000, b"\x00" * 8)
    with pytest.raises(SimFlashFault) as info:
        sim.program(0x08000004, b"\x00" * 4, require_erased=True)
    assert info.value.reason == "not-erased"
    assert info.value.address == 0x08000000


def test_sector_erase_covers_whole_sector(chips: ChipDatabase) -> None:
    sim = SimChip(chips.part("stm32f411re"))
    sim.program(0x08010000, b"\x00" * 16)
    sim.program(0x08020000, b"\x00" * 16)
    sim.erase_block(4)  # the 64 KiB sector at 0x08010000
    assert sim.read_flash(0x08010000, 16) == b"\xff" * 16
    assert sim.read_flash(0x08020000, 16) == b"\x00" * 16


def test_rdp_level1_refuses_reads_and_regression_mass_erases(chips: ChipDatabase) -> None:
    sim = SimChip(chips.part("stm32l476rg"))
    sim.program(0x08000000, b"\x00" * 8)
    sim.set_rdp_level(1)
    with pytest.raises(SimFlashFault) as info:
        sim.read_flash(0x08000000, 8)
    assert info.value.reason == "read-protected"
    sim.set_rdp_level(0)
    assert sim.read_flash(0x08000000, 8) == b"\xff" * 8


def test_rdp_level2_is_permanent(chips: ChipDatabase) -> None:
    sim = SimChip(chips.part("stm32g071rb"))
    sim.set_rdp_level(2)
    with pytest.raises(SimFlashFault):
        sim.set_rdp_level(0)


def test_uid_and_flash_size_are_memory_mapped(chips: ChipDatabase,
                                              world: SimulationWorld) -> None:
    chip = chips.part("stm32f103c8")
    sim = world.chip("dev-a", chip)
    other = world.chip("dev-b", chip)
    assert sim.read_memory(chip.uid_address, 12) == sim.uid
    assert sim.uid != other.uid
    assert int.from_bytes(sim.read_memory(chip.flash_size_address, 2), "little") == 64
    assert world.chip("dev-a", chip) is sim


def test_write_protected_page_refuses_program(chips: ChipDatabase) -> None:
    sim = SimChip(chips.part("stm32f103c8"))
    sim.write_protect([0])
    with pytest.raises(SimFlashFault) as info:
        sim.program(0x08000000, b"\x00\x00")
    assert info.value.reason == "write-protected"


def test_rdp_sits_in_byte_1_of_the_f4_option_word(chips: ChipDatabase) -> None:
    sim = SimChip(chips.part("stm32f411re"))
    assert sim.option_bytes[:2] == b"\xec\xaa"  # USER/BOR as shipped, then RDP level 0
    sim.set_rdp_level(1)
    assert sim.option_bytes[0] == 0xEC
    assert sim.option_bytes[1] not in (0xAA, 0xCC)


def test_f4_option_image_applies_rdp_from_byte_1(chips: ChipDatabase) -> None:
    sim = SimChip(chips.part("stm32f411re"))
    image = bytearray(sim.option_bytes)
    image[0] = 0xAA  # a USER/BOR byte that would read as level 0 at the wrong offset
    image[1] = 0x55
    sim.write_option_bytes(bytes(image))
    assert sim.rdp_level == 1
    assert sim.option_bytes[0] == 0xAA


def test_h7_option_area_is_the_optsr_word_with_rdp_in_bits_15_8(chips: ChipDatabase) -> None:
    sim = SimChip(chips.part("stm32h743zi"))
    assert int.from_bytes(sim.option_bytes, "little") == 0x1C6A_AAF0
    sim.set_rdp_level(2)
    assert int.from_bytes(sim.option_bytes, "little") == 0x1C6A_CCF0


def test_f1_rdp_stays_in_byte_0_with_its_complement(chips: ChipDatabase) -> None:
    sim = SimChip(chips.part("stm32f103c8"))
    sim.set_rdp_level(1)
    assert sim.option_bytes[0] ^ sim.option_bytes[1] == 0xFF
    assert sim.option_bytes[0] != 0xA5
