"""The USART transport against the simulated ROM, through pyserial (flashsim://)."""

from __future__ import annotations

import jsonschema
import pytest

from runner.errors import (
    ConnectError,
    EraseError,
    LinkLost,
    LinkTimeout,
    ReadProtected,
    Refused,
    WriteError,
    error_categories,
)
from tests.conftest import set_option_byte
from transports.base import MASS_ERASE, Capability, OptionBytesChange, ResetMode
from transports.checksums import stm32_crc32
from transports.sim.endpoints import usart_key
from transports.sim.faults import Fault
from transports.sim.usart import endpoint
from transports.sim.world import DeviceProfile
from transports.uart import UsartTransport, parse_sequence

from .conftest import OpenUsart, sim_of

BASE = 0x08000000


def pattern(size: int, seed: int = 1) -> bytes:
    return bytes((i * 7 + seed) & 0xFF for i in range(size))


# ------------------------------------------------------------------ session start


def test_f1_rom_offers_legacy_erase_v2_2(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    assert session.engine.commands.version == 0x22
    assert session.engine.commands.pick("erase") == 0x43


def test_f4_rom_offers_extended_erase_v3_1(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re")
    assert session.engine.commands.version == 0x31
    assert session.engine.commands.pick("erase") == 0x44


def test_identify_reports_pid_uid_flash_size_and_rdp(open_usart: OpenUsart) -> None:
    session = open_usart("stm32g071rb")
    identity = session.identify()
    assert identity.dev_id == 0x460
    assert identity.uid == sim_of(session).uid_hex
    assert identity.flash_size == 128 * 1024
    assert identity.rdp_level == 0
    assert identity.bootloader_version == "3.1"


def test_double_ack_on_sync_is_absorbed_where_the_chip_data_says_so(
        open_usart: OpenUsart) -> None:
    session = open_usart("stm32l412kb")       # usart-double-ack in the chip data (AN2606)
    assert session.identify().dev_id == 0x464


def test_no_second_ack_is_awaited_on_other_roms(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re")
    assert not session.engine.framing.double_ack   # type: ignore[attr-defined]
    assert session.identify().dev_id == 0x431


def test_leading_zero_before_sync_ack_is_skipped(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re", DeviceProfile(quirks={"sync-zero": True}))
    assert session.identify().dev_id == 0x431


def test_already_synchronised_chip_accepts_a_new_session(open_usart: OpenUsart) -> None:
    first = open_usart("stm32f103cb")
    world = first.request.endpoints.world
    first.close()
    second = open_usart("stm32f103cb", world=world)
    assert second.identify().dev_id == 0x410


def test_silent_chip_fails_to_connect(open_usart: OpenUsart) -> None:
    # BOOT0 on RTS but no reset line: the application keeps running, the ROM never answers.
    session = open_usart("stm32f103cb", connect=False, boot0="rts")
    with pytest.raises(ConnectError, match="0x7F"):
        session.connect()


# ------------------------------------------------------------------ erase / write / read


def test_write_then_read_back_roundtrips(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    image = pattern(5000)
    session.erase(session.chip.flash.blocks_covering(BASE, len(image)))
    session.write(BASE, image)
    assert session.read(BASE, len(image)) == image
    assert sim_of(session).flash[:len(image)] == image


def test_used_erase_touches_only_listed_pages(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    sim = sim_of(session)
    sim.program(BASE + 10 * 1024, b"\x00" * 4)
    session.erase(session.chip.flash.blocks[:3])
    assert sim.stats.blocks_erased == 3
    assert sim.read_flash(BASE + 10 * 1024, 4) == b"\x00" * 4


def test_mass_erase_clears_whole_flash(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re")
    sim = sim_of(session)
    sim.program(BASE + 0x40000, b"\x00" * 16)
    session.erase(MASS_ERASE)
    assert sim.stats.mass_erases == 1
    assert sim.flash == b"\xff" * len(sim.flash)


def test_erasing_every_page_is_one_global_erase(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    sim = sim_of(session)
    session.erase(session.chip.flash.blocks)
    assert sim.stats.mass_erases == 1 and sim.stats.blocks_erased == 0
    assert sim.flash == bytes([sim.geometry.erased]) * len(sim.flash)
    session.write(BASE, pattern(256))   # the pages count as erased by this session
    assert session.read(BASE, 256) == pattern(256)


def test_every_page_of_a_rom_without_mass_erase_is_erased_page_by_page(
        open_usart: OpenUsart) -> None:
    session = open_usart("stm32l073rz")   # AN2606: no global erase on L0
    sim = sim_of(session)
    session.erase(session.chip.flash.blocks)
    assert sim.stats.mass_erases == 0
    assert sim.stats.blocks_erased == len(session.chip.flash.blocks)


def test_rom_without_mass_erase_is_erased_page_by_page(open_usart: OpenUsart) -> None:
    session = open_usart("stm32g071rb", DeviceProfile(quirks={"no-mass-erase": True}))
    sim = sim_of(session)
    sim.program(BASE + 0x1F000, b"\x00" * 8)
    session.erase(MASS_ERASE)
    assert sim.stats.mass_erases == 0
    assert sim.stats.blocks_erased == 64
    assert sim.flash == b"\xff" * len(sim.flash)


def test_erased_chunks_are_skipped_after_this_sessions_erase(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    image = pattern(256) + b"\xff" * 768
    session.erase(session.chip.flash.blocks[:1])
    session.write(BASE, image)
    assert sim_of(session).stats.bytes_programmed == 256
    assert session.read(BASE, len(image)) == image


def test_erased_chunks_are_written_without_an_erase_in_this_session(
        open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    session.write(BASE, b"\xff" * 512)
    assert sim_of(session).stats.bytes_programmed == 512


def test_writing_unerased_flash_corrupts_like_nor_where_the_controller_allows_it(
        open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re")  # RM0090: no erased check, bits only clear
    session.write(BASE, b"\xf0" * 4)
    session.write(BASE, b"\x0f" * 4)
    assert session.read(BASE, 4) == b"\x00" * 4


@pytest.mark.parametrize("part", ["stm32f103cb", "stm32g071rb", "stm32l476rg"])
def test_the_rom_nacks_a_write_over_data_the_controller_refuses(open_usart: OpenUsart,
                                                                part: str) -> None:
    # PM0075 §2.3.3 (PGERR) / RM0444, RM0351 (PROGERR): a unit that is not erased is not
    # programmed, and the ROM answers the Write Memory with a NACK (AN3155 §3.6).
    session = open_usart(part)
    session.write(BASE, b"\xf0" * 8)
    with pytest.raises(WriteError):
        session.write(BASE, b"\x0f" * 8)
    assert session.read(BASE, 8) == b"\xf0" * 8
    session.write(BASE, b"\x00" * 8)  # programming all zeros over data is the exception
    assert session.read(BASE, 8) == b"\x00" * 8


def test_unaligned_write_is_refused_before_sending(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    with pytest.raises(WriteError) as info:
        session.write(BASE + 2, b"\x00" * 4)
    assert info.value.address == BASE + 2
    assert sim_of(session).stats.bytes_programmed == 0


def test_odd_length_write_is_padded_with_ff(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    session.write(BASE, b"\x01\x02\x03")
    assert session.read(BASE, 4) == b"\x01\x02\x03\xff"


def test_nack_names_command_and_stage(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    with pytest.raises(Refused) as info:
        session.read(0x40000000, 4)  # a peripheral: not readable through the ROM
    assert "Read Memory (0x11)" in str(info.value)
    assert "address stage" in str(info.value)


def test_erase_of_a_page_beyond_one_byte_numbers_is_refused(open_usart: OpenUsart) -> None:
    # An L476 made to speak v2.2 (legacy Erase, 1-byte page numbers) cannot reach page 300.
    session = open_usart("stm32l476rg", DeviceProfile(quirks={"usart-version": 0x22}))
    with pytest.raises(EraseError, match="one byte"):
        session.erase(session.chip.flash.blocks[300:301])


# ------------------------------------------------------------------ checksum


def test_get_checksum_is_offered_only_where_listed(open_usart: OpenUsart) -> None:
    plain = open_usart("stm32f411re")
    assert Capability.CHECKSUM not in plain.capabilities
    with pytest.raises(Refused):
        plain.checksum(BASE, 16)


def test_get_checksum_matches_host_crc(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re", DeviceProfile(quirks={"checksum": True}))
    assert Capability.CHECKSUM in session.capabilities
    image = pattern(1000)
    session.erase(session.chip.flash.blocks[:1])
    session.write(BASE, image)
    result = session.checksum(BASE, len(image))
    assert result.algorithm == "stm32-crc32"
    assert result.value == stm32_crc32(image)


# ------------------------------------------------------------------ protection


def test_rdp_level1_is_reported_and_blocks_reads(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re", DeviceProfile(rdp_level=1))
    assert session.identify().rdp_level == 1
    with pytest.raises(ReadProtected):
        session.read(BASE, 16)


def test_readout_unprotect_mass_erases_and_reconnects(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re", DeviceProfile(rdp_level=1, fill=0x00))
    session.write_option_bytes(OptionBytesChange(rdp_level=0))
    sim = sim_of(session)
    assert sim.rdp_level == 0
    assert sim.flash == b"\xff" * len(sim.flash)
    assert session.identify().rdp_level == 0


def test_readout_protect_then_reconnect_sees_level1(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    session.write_option_bytes(OptionBytesChange(rdp_level=1))
    assert sim_of(session).rdp_level == 1
    assert session.read_option_bytes().rdp_level == 1


def test_option_bytes_read_decodes_rdp(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    option_bytes = session.read_option_bytes()
    assert option_bytes.rdp_level == 0
    assert option_bytes.raw[:2] == b"\xa5\x5a"


def test_f4_option_bytes_read_decodes_rdp_from_byte_1(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re")
    # A USER/BOR byte that reads as level 2 at the wrong offset.
    set_option_byte(sim_of(session), 0, 0xCC)
    option_bytes = session.read_option_bytes()
    assert option_bytes.raw[:2] == b"\xcc\xaa"
    assert option_bytes.rdp_level == 0


def test_f4_readout_protect_leaves_user_and_bor_byte_untouched(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re")
    sim = sim_of(session)
    set_option_byte(sim, 0, 0x4C)  # USER: nRST_STDBY and WDG_SW cleared
    session.write_option_bytes(OptionBytesChange(rdp_level=1))
    assert sim.rdp_level == 1
    assert sim.option_bytes[0] == 0x4C


def test_f4_rdp_level2_write_leaves_user_and_bor_byte_untouched(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re")
    sim = sim_of(session)
    user_bor = sim.option_bytes[0]
    session.write_option_bytes(OptionBytesChange(rdp_level=2, confirmed_irreversible=True))
    assert sim.rdp_level == 2
    assert sim.option_bytes[:2] == bytes([user_bor, 0xCC])


def test_write_unprotect_clears_protection_and_reconnects(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    sim = sim_of(session)
    sim.write_protect([0, 1])
    session.engine.write_unprotect()
    assert sim.write_protected == frozenset()
    assert session.identify().dev_id == 0x410


def test_write_protect_protects_sectors_and_reconnects(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    session.engine.write_protect([1])
    assert sim_of(session).write_protected == frozenset({4, 5, 6, 7})  # 4 pages per sector


# ------------------------------------------------------------------ reset / lines


def test_hardware_entry_and_exit_through_modem_lines(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb", boot0="rts", reset="dtr")
    sim = sim_of(session)
    assert sim.stats.resets == 1  # the entry pulse
    session.reset(ResetMode.HARDWARE)
    assert sim.stats.resets == 2


def test_inverted_lines_enter_the_bootloader_too(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb", boot0="dtr", reset="rts", invert_boot0=True,
                         invert_reset=True)
    assert session.identify().dev_id == 0x410


def test_entry_sequence_drives_lines_as_written(open_usart: OpenUsart) -> None:
    profile = DeviceProfile(quirks={"boot0": "rts", "reset": "dtr"})
    session = open_usart("stm32f103cb", profile, entry_sequence="-rts&dtr,-dtr",
                         exit_sequence="rts&dtr,-dtr")
    assert session.identify().dev_id == 0x410
    session.reset(ResetMode.HARDWARE)
    assert sim_of(session).stats.resets == 2


def test_reset_without_reset_line_uses_go_to_flash(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    world = session.request.endpoints.world
    assert world is not None
    board = endpoint(usart_key(world, "usart", "dut"))
    session.reset(ResetMode.HARDWARE)
    assert board.stream.core.last_go == BASE
    assert sim_of(session).stats.resets == 0
    with pytest.raises(LinkLost):
        session.read(BASE, 4)


def test_empty_check_part_is_left_with_go_even_with_a_reset_line(
        open_usart: OpenUsart) -> None:
    session = open_usart("stm32l451rc", boot0="rts", reset="dtr")
    session.reset(ResetMode.HARDWARE)
    assert sim_of(session).stats.resets == 1  # only the entry pulse; the exit was Go


def test_sequence_parser_reads_stm32flash_syntax() -> None:
    assert parse_sequence("-dtr,rts,-rts") == (("dtr", False, 0.1), ("rts", True, 0.1),
                                               ("rts", False, 0.0))
    assert parse_sequence("rts&-dtr,,") == (("rts", True, 0.0), ("dtr", False, 0.1),
                                           ("", False, 0.1))


# ------------------------------------------------------------------ faults


def test_injected_nack_on_write_is_a_write_error_with_address(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb", DeviceProfile(faults=(Fault(kind="nack", op="write",
                                                                    at_byte=300),)))
    with pytest.raises(WriteError) as info:
        session.write(BASE, pattern(1024))
    assert info.value.address == BASE + 256
    assert {"write", "nack"} <= error_categories(info.value)


def test_read_reply_cut_short_is_a_timeout_and_the_session_recovers(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb", DeviceProfile(faults=(Fault(kind="timeout", op="read"),)))
    with pytest.raises(LinkTimeout):
        session.read(BASE, 16)
    assert session.read(BASE, 16) == b"\xff" * 16


def test_injected_link_loss_is_link_lost(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb", DeviceProfile(faults=(Fault(kind="link-lost",
                                                                    op="write"),)))
    with pytest.raises(LinkLost):
        session.write(BASE, pattern(16))


def test_injected_corruption_is_caught_by_read_back(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb", DeviceProfile(faults=(Fault(kind="corrupt",
                                                                    op="write"),)))
    image = pattern(64)
    session.write(BASE, image)
    assert session.read(BASE, 64) != image


# ------------------------------------------------------------------ class contract


def test_options_schema_rejects_unknown_keys() -> None:
    validator = jsonschema.Draft202012Validator(UsartTransport.options_schema)
    assert validator.is_valid({"port": "/dev/ttyUSB0", "baud": 115200, "boot0": "rts",
                               "reset": "dtr", "entry-sequence": "-dtr,rts,-rts"})
    assert not validator.is_valid({"port": "/dev/ttyUSB0", "baudrate": 115200})
    assert not validator.is_valid({"port": "/dev/ttyUSB0", "entry-sequence": "4,-5"})


def test_resource_key_is_the_port() -> None:
    assert UsartTransport.resource_key("u", {"port": "/dev/ttyUSB0"}) == "uart:/dev/ttyUSB0"


def test_boot0_and_reset_on_one_line_is_refused(open_usart: OpenUsart) -> None:
    with pytest.raises(ConnectError, match="share"):
        open_usart("stm32f103cb", connect=False, boot0="rts", reset="rts")


def test_whole_bank_is_erased_with_the_bank_code(open_usart: OpenUsart,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    session = open_usart("stm32l476rg")
    sim = sim_of(session)
    banks: list[int | None] = []
    real = session.engine.mass_erase
    monkeypatch.setattr(session.engine, "mass_erase",
                        lambda bank=None: (banks.append(bank), real(bank))[1])
    bank2 = [block for block in session.chip.flash.blocks if block.bank == 2]
    sim.program(bank2[0].address, b"\x00" * 8)
    session.erase(bank2)
    assert banks == [2]
    assert sim.read_flash(bank2[0].address, 8) == b"\xff" * 8
    assert sim.stats.blocks_erased == len(bank2)


def test_rdp_level2_needs_confirmation(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re")
    with pytest.raises(Refused, match="irreversible"):
        session.write_option_bytes(OptionBytesChange(rdp_level=2))
    assert sim_of(session).rdp_level == 0


def test_rdp_level2_is_written_through_the_option_bytes(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re")
    session.write_option_bytes(OptionBytesChange(rdp_level=2, confirmed_irreversible=True))
    assert sim_of(session).rdp_level == 2
    with pytest.raises(LinkLost):  # the session ended with the write
        session.identify()
    with pytest.raises(ConnectError):  # and level 2 disables the ROM bootloader for good
        session.connect()


def test_rdp_level2_is_refused_on_parts_without_it(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    with pytest.raises(Refused, match="no RDP level 2"):
        session.write_option_bytes(OptionBytesChange(rdp_level=2, confirmed_irreversible=True))


def test_a_rom_listing_get_checksum_adds_it_to_the_planned_set(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re", DeviceProfile(quirks={"checksum": True}))
    planned = UsartTransport.planned_capabilities(session.request.options, session.chip)
    assert session.capabilities - planned == {Capability.CHECKSUM}


@pytest.mark.parametrize("part", ["stm32f103cb", "stm32f411re", "stm32h743zi"])
@pytest.mark.parametrize("reset", ["dtr", "none"])
def test_a_session_offers_what_was_planned_when_the_rom_matches_the_database(
        open_usart: OpenUsart, part: str, reset: str) -> None:
    session = open_usart(part, reset=reset)
    assert session.capabilities == UsartTransport.planned_capabilities(
        session.request.options, session.chip)


def test_wire_time_is_charged_per_byte_at_the_baud_rate(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f411re", baud=57600)
    clock = sim_of(session).clock
    before = clock.elapsed
    session.read(BASE, 256)
    # 11 D1 / ACK / address+check / ACK / FF 00 / ACK / 256 data bytes, 11 bits each at 8E1
    assert clock.elapsed - before == pytest.approx((2 + 1 + 5 + 1 + 2 + 1 + 256) * 11 / 57600)


def test_a_host_at_8n1_fails_to_connect_like_on_silicon(open_usart: OpenUsart) -> None:
    # AN3155 §2: the ROM's USART is 8E1 and samples the host's 10-bit characters so:
    # the lone 0x7F gets through, the second byte of every command is lost.
    with pytest.raises(ConnectError):
        open_usart("stm32f411re", parity="none")


def test_brownout_mid_write_needs_a_reconnect(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb", DeviceProfile(faults=(Fault(kind="brownout",
                                                                    op="write", at_byte=512),)))
    with pytest.raises(LinkTimeout):
        session.write(BASE, pattern(1024))
    session.connect()
    session.erase(session.chip.flash.blocks[:1])
    session.write(BASE, pattern(1024))
    assert session.read(BASE, 1024) == pattern(1024)


def test_an_f1s_flash_size_and_uid_come_in_one_read(open_usart: OpenUsart,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    session = open_usart("stm32f103cb")
    reads: list[tuple[int, int]] = []
    read = session.engine.read_memory

    def noting(address: int, length: int) -> bytes:
        reads.append((address, length))
        return read(address, length)

    monkeypatch.setattr(session.engine, "read_memory", noting)
    identity = session.identify()
    assert reads == [(session.chip.flash_size_address, 20)]   # 0x1FFFF7E0..0x1FFFF7F4
    assert identity.uid == sim_of(session).uid_hex
    assert identity.flash_size == 128 * 1024


def test_a_refused_combined_read_falls_back_to_one_read_per_word(
        open_usart: OpenUsart, monkeypatch: pytest.MonkeyPatch) -> None:
    session = open_usart("stm32f103cb")
    read = session.engine.read_memory
    lengths: list[int] = []

    def refusing_spans(address: int, length: int) -> bytes:
        lengths.append(length)
        if length == 20:
            raise Refused("Read Memory: NACK at the length stage")
        return read(address, length)

    monkeypatch.setattr(session.engine, "read_memory", refusing_spans)
    identity = session.identify()
    assert lengths == [20, 2, 12]
    assert identity.uid == sim_of(session).uid_hex and identity.flash_size == 128 * 1024


def test_scattered_uid_words_are_read_one_by_one(open_usart: OpenUsart) -> None:
    session = open_usart("stm32l073rz")
    assert session.chip.uid_offsets != (0, 4, 8)
    assert session.identify().uid == sim_of(session).uid_hex


def test_l0_without_mass_erase_clears_every_page(open_usart: OpenUsart) -> None:
    session = open_usart("stm32l073rz")
    sim = sim_of(session)
    sim.program(BASE + 0x20000, b"\x11" * 4)
    session.erase(MASS_ERASE)
    assert sim.stats.mass_erases == 0
    assert sim.flash == bytes([sim.geometry.erased]) * len(sim.flash)


def test_8n1_characters_read_at_8e1_keep_a_lone_sync_byte_and_lose_the_next() -> None:
    from transports.sim.uartframe import CHIP_FRAMING, Framing, reframe
    host = Framing(parity="N")
    assert reframe(b"\x7f", host, CHIP_FRAMING) == b"\x7f"  # parity bit 1 = the stop bit
    assert reframe(b"\x00\xff", host, CHIP_FRAMING) == b"\x00"  # framing error eats 0xFF
    assert reframe(b"\x00\xff", CHIP_FRAMING, CHIP_FRAMING) == b"\x00\xff"


def test_a_partial_option_byte_write_erases_the_bytes_it_leaves_out(
        open_usart: OpenUsart) -> None:
    # AN3155 §3.6: the ROM erases the whole option area before programming what it got.
    session = open_usart("stm32f103cb")
    sim = sim_of(session)
    ob = session.chip.option_bytes
    set_option_byte(sim, 4, 0x12)  # Data0
    session.engine.write_memory(ob.address, b"\xa5\x5a\xff\x00")  # RDP and USER only
    assert sim.option_bytes[:4] == b"\xa5\x5a\xff\x00"
    assert sim.option_bytes[4] == 0xFF
    assert sim.rdp_level == 0


def test_an_option_byte_write_that_leaves_out_rdp_protects_an_f1(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")
    sim = sim_of(session)
    session.engine.write_memory(session.chip.option_bytes.address + 4, b"\x12\xed\xff\xff")
    assert sim.rdp_level == 1  # RM0008 §2.5: only 0xA5 in RDP unprotects


@pytest.mark.parametrize("part", ["stm32f401re", "stm32l053r8"])
def test_a_rom_that_reads_device_words_only_by_page_still_yields_uid_and_flash_size(
        open_usart: OpenUsart, part: str) -> None:
    # stm32loader PR #25 / issue #61: an F401 (or L05x) ROM NACKs 12 bytes at the UID
    # and 2 at the flash size, but answers a 256-byte read from the page's base.
    session = open_usart(part, DeviceProfile(quirks={"device-info-read": "aligned-block"}))
    sim = sim_of(session)
    with pytest.raises(Refused):
        session.engine.read_memory(session.chip.uid_address, 12)
    identity = session.identify()
    assert identity.uid == sim.uid_hex
    assert identity.flash_size == session.chip.flash.size


def test_pages_one_list_can_hold_are_erased_with_one_command(open_usart: OpenUsart) -> None:
    session = open_usart("stm32f103cb")        # legacy Erase: up to 255 pages a command
    framing = session.engine.framing
    codes: list[int] = []
    request = framing.request

    def counted(code: int, *args: object, **kwargs: object) -> None:
        codes.append(code)
        request(code, *args, **kwargs)  # type: ignore[arg-type]

    framing.request = counted  # type: ignore[method-assign]
    done: list[int] = []
    session.erase(session.chip.flash.blocks[:64], lambda count, _total: done.append(count))
    assert codes == [0x43] and done == [64]
    assert sim_of(session).stats.blocks_erased == 64
