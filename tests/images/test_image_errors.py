"""A malformed file fails with an ImageError naming the file, the place and the fault."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from runner.errors import ImageError
from tests.images.helpers import DATA, FLASH, load


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _hex_lines() -> list[str]:
    return (DATA / "flat.hex").read_text().splitlines()


def _fails(path: Path, **fields: object) -> ImageError:
    with pytest.raises(ImageError) as caught:
        load(path, **fields)
    error = caught.value
    assert str(path) in str(error)
    assert error.path == str(path)
    return error


# ----------------------------------------------------------------------------- Intel HEX


def test_hex_bad_checksum_names_the_line_and_both_checksums(tmp_path: Path) -> None:
    lines = _hex_lines()
    lines[2] = lines[2][:-2] + "00"
    error = _fails(_write(tmp_path, "a.hex", "\n".join(lines)))
    assert error.line == 3
    assert f"{tmp_path / 'a.hex'}:3: Intel HEX record checksum is 0x00" in error.message


def test_hex_non_hex_character_names_the_line(tmp_path: Path) -> None:
    lines = _hex_lines()
    lines[1] = lines[1][:5] + "G" + lines[1][6:]
    error = _fails(_write(tmp_path, "a.hex", "\n".join(lines)))
    assert error.line == 2 and "not a hexadecimal digit" in error.message


def test_hex_without_end_of_file_record_is_truncated(tmp_path: Path) -> None:
    lines = _hex_lines()[:-2]      # the start-address and EOF records are lost
    error = _fails(_write(tmp_path, "a.hex", "\n".join(lines)))
    assert "no end-of-file record" in error.message and "truncated" in error.message
    assert error.line == len(lines)


def test_hex_records_after_end_of_file_are_refused(tmp_path: Path) -> None:
    lines = _hex_lines()
    error = _fails(_write(tmp_path, "a.hex", "\n".join(lines + lines[1:3])))
    assert error.line == len(lines) + 1
    assert f"after the end-of-file record of line {len(lines)}" in error.message


def test_hex_record_writing_an_address_twice_names_the_second(tmp_path: Path) -> None:
    lines = _hex_lines()
    lines.insert(3, lines[1])
    error = _fails(_write(tmp_path, "a.hex", "\n".join(lines)))
    assert error.line == 4 and "already wrote" in error.message


def test_hex_unknown_record_type_is_named(tmp_path: Path) -> None:
    body = "00000007"
    checksum = (-sum(bytes.fromhex(body))) & 0xFF
    lines = _hex_lines()
    lines.insert(1, f":{body}{checksum:02X}")
    error = _fails(_write(tmp_path, "a.hex", "\n".join(lines)))
    assert error.line == 2 and "type 0x07 does not exist" in error.message


def test_hex_with_binary_bytes_points_at_the_line(tmp_path: Path) -> None:
    text = (DATA / "flat.hex").read_bytes().replace(b"\n", b"\n\xff", 1)
    error = _fails(_write(tmp_path, "a.hex", text), format="ihex")
    assert error.line == 2 and "not text" in error.message


# ----------------------------------------------------------------------------- S-record


def _srec_lines() -> list[str]:
    return (DATA / "flat.srec").read_text().splitlines()


def test_srec_bad_checksum_names_the_line(tmp_path: Path) -> None:
    lines = _srec_lines()
    lines[1] = lines[1][:-2] + ("00" if not lines[1].endswith("00") else "01")
    error = _fails(_write(tmp_path, "a.srec", "\n".join(lines)))
    assert error.line == 2 and "S-record record checksum" in error.message


def test_srec_without_termination_record_is_truncated(tmp_path: Path) -> None:
    lines = [line for line in _srec_lines() if not line.startswith(("S7", "S8", "S9"))]
    error = _fails(_write(tmp_path, "a.srec", "\n".join(lines[:-1])))
    assert "no termination record" in error.message and "truncated" in error.message
    assert error.line == len(lines) - 1


def test_srec_ending_in_a_matching_count_record_is_complete(tmp_path: Path) -> None:
    lines = [line for line in _srec_lines() if not line.startswith(("S7", "S8", "S9"))]
    body = f"03{len(lines) - 1:04X}"
    lines.append(f"S5{body}{~sum(bytes.fromhex(body)) & 0xFF:02X}")
    assert load(_write(tmp_path, "a.srec", "\n".join(lines))).memory == \
        load(DATA / "flat.srec").memory


def test_srec_count_record_catches_a_lost_line(tmp_path: Path) -> None:
    lines = _srec_lines()
    data_lines = [i for i, line in enumerate(lines) if line[:2] in ("S1", "S2", "S3")]
    body = f"03{len(data_lines) + 1:04X}"
    checksum = ~sum(bytes.fromhex(body)) & 0xFF
    terminator = next(i for i, line in enumerate(lines) if line[:2] in ("S7", "S8", "S9"))
    lines.insert(terminator, f"S5{body}{checksum:02X}")
    error = _fails(_write(tmp_path, "a.srec", "\n".join(lines)))
    assert error.line == terminator + 1
    assert f"count record says {len(data_lines) + 1} data records" in error.message


def test_srec_record_type_four_does_not_exist(tmp_path: Path) -> None:
    lines = _srec_lines()
    lines.insert(1, "S4030000FC")
    error = _fails(_write(tmp_path, "a.srec", "\n".join(lines)))
    assert error.line == 2 and "S4 does not exist" in error.message


# ----------------------------------------------------------------------------- ELF


def test_elf_truncated_header_reports_the_offset(tmp_path: Path) -> None:
    data = (DATA / "flat.elf").read_bytes()[:40]
    error = _fails(_write(tmp_path, "a.elf", data))
    assert error.offset == 40 and "ELF header is truncated" in error.message


def test_elf_truncated_segment_reports_its_offset(tmp_path: Path) -> None:
    data = (DATA / "flat.elf").read_bytes()
    phoff, = struct.unpack_from("<I", data, 28)
    offset, = struct.unpack_from("<I", data, phoff + 4)   # p_offset of the first PT_LOAD
    error = _fails(_write(tmp_path, "a.elf", data[:offset + 8]))
    assert error.offset == offset
    assert "loadable segment 0" in error.message and "runs past the end" in error.message


def test_elf_truncated_program_header_table_is_reported(tmp_path: Path) -> None:
    data = bytearray((DATA / "flat.elf").read_bytes())
    struct.pack_into("<I", data, 28, len(data) - 8)     # e_phoff near the end
    error = _fails(_write(tmp_path, "a.elf", bytes(data)))
    assert error.offset == len(data) - 8 and "program header table" in error.message


def test_elf_for_another_architecture_is_refused(tmp_path: Path) -> None:
    data = bytearray((DATA / "flat.elf").read_bytes())
    struct.pack_into("<H", data, 18, 62)                 # EM_X86_64
    error = _fails(_write(tmp_path, "a.elf", bytes(data)))
    assert "not for an ARM core" in error.message


def test_elf_format_forced_on_a_hex_file_says_so(tmp_path: Path) -> None:
    error = _fails(DATA / "flat.hex", format="elf")
    assert "not an ELF file" in error.message and error.offset == 0


# ----------------------------------------------------------------------------- DfuSe


def _resign(data: bytes) -> bytes:
    """Recompute the suffix CRC so that a structural fault is what is found."""
    from runner.dfufile import dfu_crc
    return data[:-4] + struct.pack("<I", dfu_crc(data[:-4]))


def test_dfu_crc_mismatch_reports_both_values(tmp_path: Path) -> None:
    data = bytearray((DATA / "flat.dfu").read_bytes())
    data[300] ^= 0x01
    error = _fails(_write(tmp_path, "a.dfu", bytes(data)))
    assert error.offset == len(data) - 4 and "CRC mismatch" in error.message


def test_dfu_bad_prefix_is_refused(tmp_path: Path) -> None:
    data = b"DfuSx" + (DATA / "flat.dfu").read_bytes()[5:]
    error = _fails(_write(tmp_path, "a.dfu", _resign(data)), format="dfu")
    assert error.offset == 0 and "bad DfuSe prefix" in error.message


def test_dfu_size_mismatch_is_refused(tmp_path: Path) -> None:
    data = bytearray((DATA / "flat.dfu").read_bytes())
    struct.pack_into("<I", data, 6, len(data))           # should exclude the suffix
    error = _fails(_write(tmp_path, "a.dfu", _resign(bytes(data))))
    assert error.offset == 6 and "size mismatch" in error.message


def test_dfu_truncated_element_is_refused(tmp_path: Path) -> None:
    data = bytearray((DATA / "flat.dfu").read_bytes())
    element = 11 + 274
    struct.pack_into("<I", data, element + 4, 1000)      # dwElementSize larger than the target
    error = _fails(_write(tmp_path, "a.dfu", _resign(bytes(data))))
    assert error.offset == element + 4
    assert "element 0 of target 0 is truncated: it says 1000 bytes" in error.message


def test_dfu_bad_target_signature_is_refused(tmp_path: Path) -> None:
    data = bytearray((DATA / "flat.dfu").read_bytes())
    data[11:17] = b"Tarxet"
    error = _fails(_write(tmp_path, "a.dfu", _resign(bytes(data))))
    assert error.offset == 11 and "bad target 0" in error.message


def test_dfu_without_suffix_is_refused(tmp_path: Path) -> None:
    data = (DATA / "flat.dfu").read_bytes()[:-16]
    error = _fails(_write(tmp_path, "a.dfu", data))
    assert "signature 'UFD' is missing" in error.message


# ----------------------------------------------------------------------------- raw, pins


def test_raw_binary_without_address_asks_for_one() -> None:
    error = _fails(DATA / "flat.bin")
    assert "raw binary and has no address" in error.message
    assert "address:" in (error.hint or "")


def test_empty_raw_binary_is_refused(tmp_path: Path) -> None:
    error = _fails(_write(tmp_path, "a.bin", b""), address=FLASH)
    assert "is empty" in error.message


def test_pin_mismatch_names_expected_and_actual_digests() -> None:
    actual = hashlib.sha256((DATA / "flat.hex").read_bytes()).hexdigest()
    pinned = "ab" * 32
    error = _fails(DATA / "flat.hex", sha256=pinned)
    assert f"has sha256 {actual}, but the manifest pins {pinned}" in error.message
    assert "flashrunner pin" in (error.hint or "")


def test_pin_compares_case_insensitively() -> None:
    actual = hashlib.sha256((DATA / "flat.hex").read_bytes()).hexdigest()
    assert load(DATA / "flat.hex", sha256=actual.upper()).sha256 == actual


def test_errors_name_the_image(tmp_path: Path) -> None:
    error = _fails(_write(tmp_path, "a.hex", ":00000001FE\n"), name="boot")
    assert error.message.startswith("image boot: ")
