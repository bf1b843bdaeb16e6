"""pyOCD, a real peer from PyPI, drives our simulated ST-Link V2, V2-1 and V3 unmodified.

pyOCD talks to the probe at the ADI level (READ/WRITE_DAP_REG, INIT_AP, memory
commands with GETLASTRWSTATUS2), walks the ROM table to find the core, and
flashes with its own CMSIS-style flash algorithms, which the simulated target
executes from SRAM against its flash-controller model. The launcher
(:mod:`tests.conformance.pyocd_launcher`) only answers pyusb's backend lookup;
each pyOCD run is its own process. Success is pyOCD's exit status, its output,
and the simulated flash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyocd", reason="pyOCD is not installed")

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
FLASH = 0x08000000
#: (our part, probe, pyOCD's builtin target): one per probe generation.
TARGETS = [("stm32f103rc", "v2", "stm32f103rc"), ("stm32f412zg", "v2-1", "stm32f412xg"),
           ("stm32f429zi", "v3", "stm32f429xi")]


def pyocd(tmp_path: Path, devices: list[str], *args: str,
          image: Path | None = None) -> tuple[int, str, Path, dict[str, object]]:
    flash, facts = tmp_path / "flash.bin", tmp_path / "facts.json"
    command = [sys.executable, "-m", "tests.conformance.pyocd_launcher",
               *(f"--device={device}" for device in devices), f"--flash-out={flash}",
               f"--facts={facts}"]
    if image is not None:
        command.append(f"--image={image}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([*command, "--", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    return done.returncode, done.stdout + done.stderr, flash, json.loads(facts.read_text())


def test_pyocd_lists_every_simulated_probe(tmp_path: Path) -> None:
    status, output, _flash, facts = pyocd(
        tmp_path, [f"{part}:{probe}" for part, probe, _ in TARGETS], "list")
    assert status == 0, output
    assert str(facts["serial"]) in output
    assert output.count("STLink") + output.count("STLINK") >= len(TARGETS)


@pytest.mark.parametrize("part,probe,target", TARGETS, ids=[t[1] for t in TARGETS])
def test_pyocd_commander_reads_identity_flash_and_registers(tmp_path: Path, part: str,
                                                             probe: str, target: str) -> None:
    image = tmp_path / "vectors.bin"
    image.write_bytes(bytes.fromhex("00500020c1010008") + bytes(range(8)))  # SP, reset vector
    status, output, _flash, facts = pyocd(
        tmp_path, [f"{part}:{probe}"], "commander", "-t", target,
        "-c", f"read32 0x{facts_address('idcode_address', part):08X}",
        "-c", f"read32 0x{facts_address('uid_address', part):08X} 12",
        "-c", f"read32 0x{FLASH:08X} 16", "-c", "halt", "-c", "reg",
        "-c", "reset halt", "-c", "reg pc", "-c", "reg sp", image=image)
    assert status == 0, output
    assert f"{int(str(facts['idcode'])):08x}" in output
    uid = bytes.fromhex(str(facts["uid"]))
    first_word = int.from_bytes(uid[:4], "little")
    assert f"{first_word:08x}" in output
    assert "20005000 080001c1" in output  # the flash words, as pyOCD prints them
    assert "halted" in output
    assert "pc = 0x080001c0" in output and "sp = 0x20005000" in output


#: load also onto an H7 (Cortex-M7, 256-bit flash words, the algorithm in DTCM)
LOAD_TARGETS = [*TARGETS, ("stm32h743zi", "v3", "stm32h743xx")]


@pytest.mark.parametrize("part,probe,target", LOAD_TARGETS,
                         ids=[f"{t[1]}-{t[0]}" for t in LOAD_TARGETS])
def test_pyocd_load_programs_the_image_with_its_own_flash_algorithm(
        tmp_path: Path, part: str, probe: str, target: str) -> None:
    image = tmp_path / "app.bin"
    data = os.urandom(10_000)
    image.write_bytes(data)
    status, output, flash, _facts = pyocd(tmp_path, [f"{part}:{probe}"], "load", "-t", target,
                                          "--base-address", f"0x{FLASH:08X}", str(image))
    assert status == 0, output
    assert flash.read_bytes()[:len(data)] == data


def facts_address(name: str, part: str) -> int:
    from transports.chips import chip_database

    chip = chip_database().part(part)
    return int(chip.idcode_address if name == "idcode_address" else chip.uid_address)
