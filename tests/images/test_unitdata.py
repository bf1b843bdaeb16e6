"""Per-unit values: the bytes to write and what the log says about them."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import pytest

from runner.errors import UnitDataError
from runner.unitdata import (
    CounterSource,
    CsvSource,
    Encoding,
    UidSource,
    compute_unit_value,
    source_from_mapping,
    unit_size,
)

UID = "0123456789abcdef00112233"


def _value(source, device: str = "unit-1", uid: str = UID):  # type: ignore[no-untyped-def]
    return compute_unit_value(source, device=device, run_id="run-1", uid=uid)


# ----------------------------------------------------------------------------- counter


def test_counter_value_is_little_endian_binary_of_the_width(tmp_path: Path) -> None:
    source = CounterSource(state=tmp_path / "s.json", start=0x1234,
                           encoding=Encoding(width=4, endianness="little"))
    value = _value(source)
    assert value.data == b"\x34\x12\x00\x00"
    assert value.value == str(0x1234) and value.source == f"counter {tmp_path / 's.json'}"


def test_counter_value_big_endian(tmp_path: Path) -> None:
    source = CounterSource(state=tmp_path / "s.json", start=0x0102,
                           encoding=Encoding(width=2, endianness="big"))
    assert _value(source).data == b"\x01\x02"


def test_counter_value_as_ascii_template_padded_to_width(tmp_path: Path) -> None:
    source = CounterSource(state=tmp_path / "s.json", start=42,
                           encoding=Encoding(template="SN-%06d", width=12))
    value = _value(source)
    assert value.data == b"SN-000042\0\0\0" and value.value == "SN-000042"


def test_counter_value_too_wide_for_its_field_is_refused(tmp_path: Path) -> None:
    source = CounterSource(state=tmp_path / "s.json", start=300, encoding=Encoding(width=1))
    with pytest.raises(UnitDataError, match="300 does not fit in 1 bytes"):
        _value(source)


def test_bad_template_is_refused_before_any_value_is_allocated(tmp_path: Path) -> None:
    source = CounterSource(state=tmp_path / "s.json", encoding=Encoding(template="SN-%s-%d"))
    with pytest.raises(UnitDataError, match="not a printf-style template"):
        _value(source)
    assert not (tmp_path / "s.json").exists()


# ----------------------------------------------------------------------------- UID


def test_uid_itself_is_its_bytes_as_read() -> None:
    value = _value(UidSource())
    assert value.data == bytes.fromhex(UID) and value.source == "chip UID"


def test_uid_crc32_in_the_chosen_byte_order() -> None:
    crc = zlib.crc32(bytes.fromhex(UID))
    assert _value(UidSource(derive="crc32", endianness="big")).data == crc.to_bytes(4, "big")
    assert _value(UidSource(derive="crc32")).value == f"0x{crc:08X}"


def test_uid_sha256_prefix() -> None:
    digest = hashlib.sha256(bytes.fromhex(UID)).digest()
    value = _value(UidSource(derive="sha256", length=8))
    assert value.data == digest[:8] and "8 bytes" in value.source


def test_uid_template_is_ascii() -> None:
    crc = zlib.crc32(bytes.fromhex(UID))
    value = _value(UidSource(template="ID-{uid}-{crc32:08X}", width=40))
    text = f"ID-{UID}-{crc:08X}"
    assert value.data == text.encode().ljust(40, b"\0") and value.value == text


def test_uid_value_needs_a_uid() -> None:
    with pytest.raises(UnitDataError, match="did not report the chip's UID"):
        _value(UidSource(), uid="")


# ----------------------------------------------------------------------------- CSV


@pytest.fixture
def units(tmp_path: Path) -> Path:
    path = tmp_path / "units.csv"
    path.write_text("uid,calibration,name\n"
                    f"{UID},0a0b0c,first\n"
                    "ffffffffffffffffffffffff,010203,second\n")
    return path


def test_csv_row_keyed_by_uid(units: Path) -> None:
    value = _value(CsvSource(file=units, column="calibration", key="uid", cell="hex"))
    assert value.data == b"\x0a\x0b\x0c"
    assert value.source == f"{units}:2 column calibration (uid {UID})"


def test_csv_without_row_for_the_uid_is_refused(units: Path) -> None:
    with pytest.raises(UnitDataError, match="no row for UID 000000000000000000000000"):
        _value(CsvSource(file=units, column="name", key="uid"), uid="00" * 12)


def test_csv_rows_in_order_are_each_used_once(units: Path) -> None:
    source = CsvSource(file=units, column="name")
    assert [_value(source, device=d).value for d in ("a", "b")] == ["first", "second"]
    with pytest.raises(UnitDataError, match="exhausted"):
        _value(source, device="c")


def test_csv_unknown_column_counts_the_columns_without_showing_them(units: Path) -> None:
    with pytest.raises(UnitDataError, match=r"no column 'serial' in its first line "
                                            r"\(3 columns\)") as caught:
        _value(CsvSource(file=units, column="serial", key="uid"))
    assert "calibration" not in str(caught.value)


def test_csv_int_cell_through_the_encoding(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("gain\n0x1234\n")
    source = CsvSource(file=path, column="gain", cell="int", encoding=Encoding(width=2))
    assert _value(source).data == b"\x34\x12"


# ----------------------------------------------------------------------------- sizes, manifest form


def test_sizes_are_known_before_any_value(tmp_path: Path) -> None:
    assert unit_size(CounterSource(state=tmp_path / "s")) == 4
    assert unit_size(CounterSource(state=tmp_path / "s", encoding=Encoding(width=2))) == 2
    assert unit_size(UidSource()) == 12
    assert unit_size(UidSource(derive="crc32")) == 4
    assert unit_size(UidSource(derive="sha256", length=6)) == 6
    assert unit_size(UidSource(template="{uid}", width=24)) == 24


def test_text_fields_without_width_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnitDataError, match="needs `width`"):
        unit_size(CounterSource(state=tmp_path / "s", encoding=Encoding(template="%d")))
    with pytest.raises(UnitDataError, match="needs `width`"):
        unit_size(UidSource(template="{uid}"))
    with pytest.raises(UnitDataError, match="needs `width`"):
        unit_size(CsvSource(file=tmp_path / "u.csv", column="c"))


def test_manifest_forms_resolve_paths_against_the_manifest_folder(tmp_path: Path) -> None:
    counter = source_from_mapping({"counter": {"state": "serials.json", "start": 1000,
                                               "width": 4, "endianness": "big"}}, tmp_path)
    assert counter == CounterSource(state=tmp_path / "serials.json", start=1000,
                                    encoding=Encoding(width=4, endianness="big"))
    uid = source_from_mapping({"uid": {"derive": "crc32"}}, tmp_path)
    assert uid == UidSource(derive="crc32")
    rows = source_from_mapping({"csv": {"file": "u.csv", "column": "cal", "key": "uid",
                                        "cell": "hex", "width": 3}}, tmp_path)
    assert rows == CsvSource(file=tmp_path / "u.csv", column="cal", key="uid", cell="hex",
                             encoding=Encoding(width=3))


def test_csv_hex_cell_must_fill_its_field(units: Path) -> None:
    source = CsvSource(file=units, column="calibration", key="uid", cell="hex",
                       encoding=Encoding(width=4))
    with pytest.raises(UnitDataError, match="is 3 bytes, the field is 4"):
        _value(source)
