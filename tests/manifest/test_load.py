"""A valid manifest becomes the frozen model; mistakes are reported all at once."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

import runner
from runner.errors import ManifestError
from runner.manifest import load_manifest
from runner.model import (
    EraseScope,
    EraseStep,
    Location,
    OptionBytesStep,
    ResetStep,
    VerifyMethod,
    VerifyStep,
    WriteStep,
)
from transports.faults import Fault

HERE = Path(__file__).parent
GOOD = HERE / "good" / "widget.yaml"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


MINIMAL = """\
manifest: 1
name: t
images:
  app: {{file: {image}, address: 0x08000000}}
transports:
  link: {{kind: sim}}
recipes:
  std:
    - erase: {{}}
    - write: [app]
    - verify: {{}}
devices:
  dev: {{chip: stm32f103c8, transport: link, recipe: std}}
"""


@pytest.fixture
def app_bin(tmp_path: Path) -> Path:
    path = tmp_path / "app.bin"
    path.write_bytes(bytes(range(16)))
    return path


def test_package_exports_load_manifest() -> None:
    assert runner.load_manifest is load_manifest


def test_good_manifest_builds_the_model_in_manifest_order() -> None:
    manifest = load_manifest(GOOD)
    assert manifest.version == 1
    assert manifest.name == "widget-rev-b"
    assert manifest.simulate is True
    assert list(manifest.devices) == ["sensor-1", "sensor-2", "gateway"]
    assert list(manifest.images) == ["boot", "app"]
    assert list(manifest.links) == ["probe-a", "bus-1"]
    assert manifest.devices["gateway"].after == ("sensor-1", "sensor-2")
    assert manifest.execution.max_parallel == 8
    assert manifest.log.file == "logs/{name}-{run_id}.jsonl"


def test_good_manifest_steps_become_typed_steps() -> None:
    steps = load_manifest(GOOD).recipes["standard"].steps
    assert [type(s) for s in steps] == [EraseStep, WriteStep, VerifyStep, OptionBytesStep,
                                        ResetStep]
    erase, write_step, verify, option_bytes, reset = steps
    assert isinstance(erase, EraseStep) and erase.scope is EraseScope.USED
    assert isinstance(write_step, WriteStep) and write_step.images == ("boot", "app")
    assert write_step.recovery == "patient"
    assert isinstance(verify, VerifyStep) and verify.method is VerifyMethod.AUTO
    assert isinstance(option_bytes, OptionBytesStep) and option_bytes.rdp == 1
    assert isinstance(reset, ResetStep) and reset.mode == "hardware"


def test_hex_addresses_are_integers() -> None:
    assert load_manifest(GOOD).images["app"].address == 0x08004000


def test_image_paths_resolve_against_the_manifest_folder() -> None:
    manifest = load_manifest(GOOD)
    assert manifest.images["boot"].path == GOOD.parent / "boot.hex"
    assert manifest.images["boot"].path.is_file()


def test_device_level_link_options_stay_on_the_device() -> None:
    device = load_manifest(GOOD).devices["sensor-2"]
    assert device.link.link == "bus-1"
    assert dict(device.link.options) == {"bus": "shared"}


def test_recovery_policy_keeps_its_settings() -> None:
    policy = load_manifest(GOOD).recovery["default"]
    assert policy.retries == 2
    assert policy.on == frozenset({"timeout", "nack", "link-lost", "verify"})
    assert policy.actions == ("reconnect", "reset")
    assert policy.delay(2) == 1.0


def test_simulation_settings_are_built() -> None:
    simulation = load_manifest(GOOD).simulation
    assert simulation.time_scale == 0.0
    assert simulation.seed == "line-a"
    sensor = simulation.devices["sensor-1"]
    assert sensor.rdp == 1 and sensor.fill == 0
    assert sensor.faults == (Fault(kind="timeout", op="write", at_byte=4096, times=1),)
    assert sensor.quirks == {}


def test_every_element_knows_where_it_was_written() -> None:
    manifest = load_manifest(GOOD)
    assert manifest.devices["sensor-1"].location == Location(file=str(GOOD), line=28, column=3)
    assert manifest.links["probe-a"].location.file == str(GOOD.parent / "station.yaml")
    assert manifest.recipes["standard"].steps[0].location.line == 16


def test_sha256_covers_the_top_file_then_each_include() -> None:
    manifest = load_manifest(GOOD)
    station = GOOD.parent / "station.yaml"
    assert manifest.files == (GOOD, station)
    expected = hashlib.sha256(GOOD.read_bytes() + station.read_bytes()).hexdigest()
    assert manifest.sha256 == expected


def test_model_is_frozen() -> None:
    manifest = load_manifest(GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        manifest.devices["x"] = manifest.devices["gateway"]  # type: ignore[index]
    assert isinstance(manifest.recipes["standard"].steps, tuple)


def test_three_different_mistakes_are_reported_together(tmp_path: Path, app_bin: Path) -> None:
    text = MINIMAL.format(image=app_bin.name)
    text = text.replace("devices:", "execution: {max-paralel: 2}\ndevices:")  # typo'd key
    text = text.replace("transport: link,", "transport: lnk,")    # dangling reference
    text = text.replace("address: 0x08000000", "address: 0x08020000")  # outside 64 KiB
    path = write(tmp_path, "m.yaml", text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    messages = [(i.line, i.where, i.message) for i in caught.value.issues]
    assert len(messages) == 3, messages
    assert "unknown key 'max-paralel' in execution; did you mean 'max-parallel'?" \
        in messages[0][2]
    assert "image 'app' (0x08020000..0x0802000F) does not fit" in messages[1][2]
    assert "transport 'lnk', which is not defined" in messages[2][2]
    assert "3 problems found" in str(caught.value)


def test_issues_are_sorted_by_line(tmp_path: Path, app_bin: Path) -> None:
    text = MINIMAL.format(image=app_bin.name).replace("name: t", "name: T")
    text = text.replace("chip: stm32f103c8", "chip: nope")
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "m.yaml", text))
    lines = [i.line for i in caught.value.issues]
    assert lines == sorted(lines) and len(lines) == 2


def test_unquoted_on_stays_a_key(tmp_path: Path, app_bin: Path) -> None:
    text = MINIMAL.format(image=app_bin.name).replace(
        "devices:", "recovery:\n  default: {retries: 1, on: [timeout]}\ndevices:")
    manifest = load_manifest(write(tmp_path, "m.yaml", text))
    assert manifest.recovery["default"].on == frozenset({"timeout"})


def test_yes_is_text_not_a_boolean(tmp_path: Path, app_bin: Path) -> None:
    text = MINIMAL.format(image=app_bin.name).replace("name: t", "name: t\nsimulate: yes")
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "m.yaml", text))
    assert "expected true or false, got the text 'yes'" in caught.value.first.message


def test_duplicate_nested_keys_name_both_places(tmp_path: Path, app_bin: Path) -> None:
    text = MINIMAL.format(image=app_bin.name).replace(
        "{kind: sim}", "{kind: sim, rate: 1000, rate: 2000}")
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "m.yaml", text))
    issue = caught.value.first
    assert (issue.line, issue.column, issue.where) == (6, 33, "transports.link.rate")
    assert "duplicate key 'rate' (first written at line 6, column 21)" in issue.message


def test_missing_manifest_file_is_an_issue(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "absent.yaml")
    assert "cannot read the manifest" in caught.value.first.message


def test_empty_file_is_an_issue(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "m.yaml", "# nothing yet\n"))
    assert "the file is empty" in caught.value.first.message


def test_top_level_list_is_an_issue(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "m.yaml", "- a\n- b\n"))
    assert "not a mapping" in caught.value.first.message


def test_chip_names_are_case_insensitive(tmp_path: Path, app_bin: Path) -> None:
    text = MINIMAL.format(image=app_bin.name).replace("stm32f103c8", "STM32F103C8")
    assert load_manifest(write(tmp_path, "m.yaml", text)).devices["dev"].chip == "stm32f103c8"


def test_a_verify_after_a_write_in_the_same_recipe_is_fine(tmp_path: Path,
                                                           app_bin: Path) -> None:
    text = MINIMAL.format(image=app_bin.name)
    assert len(load_manifest(write(tmp_path, "m.yaml", text)).recipes["std"].steps) == 3


def test_rdp2_with_confirmation_is_accepted(tmp_path: Path, app_bin: Path) -> None:
    text = MINIMAL.format(image=app_bin.name).replace("stm32f103c8", "stm32f411re").replace(
        "    - verify: {}", "    - verify: {}\n    - option-bytes: {rdp: 2, confirm: irreversible}")
    step = load_manifest(write(tmp_path, "m.yaml", text)).recipes["std"].steps[-1]
    assert isinstance(step, OptionBytesStep) and step.irreversible


def test_write_step_takes_the_mapping_form(tmp_path: Path, app_bin: Path) -> None:
    text = MINIMAL.format(image=app_bin.name).replace("write: [app]", "write: {images: [app]}")
    step = load_manifest(write(tmp_path, "m.yaml", text)).recipes["std"].steps[1]
    assert isinstance(step, WriteStep) and step.images == ("app",)


def test_images_reaching_past_each_other_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(bytes(256))
    (tmp_path / "small.bin").write_bytes(bytes(4))
    text = MINIMAL.format(image="big.bin").replace(
        "  app: {file: big.bin, address: 0x08000000}",
        "  app: {file: big.bin, address: 0x08000000}\n"
        "  a: {file: small.bin, address: 0x08000010}\n"
        "  b: {file: small.bin, address: 0x08000020}").replace("write: [app]",
                                                               "write: [app, a, b]")
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "m.yaml", text))
    messages = [i.message for i in caught.value.issues]
    assert any("'app' and 'a' overlap" in m for m in messages)
    assert any("'app' and 'b' overlap" in m for m in messages)


def test_a_long_after_chain_closing_on_itself_is_one_cycle(tmp_path: Path, app_bin: Path) -> None:
    devices = "".join(f"  d{i}: {{chip: stm32f103c8, transport: link, recipe: std, "
                      f"after: [d{(i + 1) % 1500}]}}\n" for i in range(1500))
    text = MINIMAL.format(image=app_bin.name).split("devices:")[0] + "devices:\n" + devices
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "m.yaml", text))
    (issue,) = caught.value.issues
    assert issue.where == "devices.d0.after[0]"
    assert issue.message.startswith("devices wait for each other in a cycle: d0 → d1 → d2")
    assert "d1499 → d0 (each comes after the next)" in issue.message


def test_a_typo_of_use_in_a_device_link_is_reported(tmp_path: Path, app_bin: Path) -> None:
    text = MINIMAL.format(image=app_bin.name).replace("transport: link,",
                                                      "transport: {uses: link},")
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path, "m.yaml", text))
    assert "the required key 'use' is missing" in caught.value.first.message


def test_the_chip_database_can_be_given(tmp_path: Path, app_bin: Path) -> None:
    from transports.chips import ChipDatabase, chip_database

    only_f4 = ChipDatabase({"stm32f411re": chip_database().part("stm32f411re")}, {})
    path = write(tmp_path, "m.yaml", MINIMAL.format(image=app_bin.name))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, chips=only_f4)
    assert caught.value.first.message.startswith("unknown chip 'stm32f103c8'")
