"""``discover --write FILE --interactive``: the questions asked on a real terminal (a pty),
the answers checked one by one, the diff shown and the file written only on yes."""

from __future__ import annotations

import io
import os
import pty
import select
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from runner.cli import main
from runner.cli_discover import discover_here
from runner.errors import PlanError
from runner.interactive import Prompter, name_links
from runner.inventory import sync_inventory
from runner.manifest import load_manifest
from runner.stations.localsshd import SSHD, start_station

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
BENCH = DATA / "bench.yaml"


class Terminal:
    """``python -m runner ARGS`` on a pseudo-terminal: read what it shows, type answers."""

    def __init__(self, *args: str) -> None:
        master, slave = pty.openpty()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "dumb", "NO_COLOR": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=ROOT,
                                        env=env, stdin=slave, stdout=slave, stderr=slave,
                                        close_fds=True)
        os.close(slave)
        self.master = master
        self.screen = ""
        self.read_to = 0

    def _read(self) -> bool:
        ready, _, _ = select.select([self.master], [], [], 60)
        assert ready, f"no output for 60 s; the terminal shows:\n{self.screen[-2000:]}"
        try:
            chunk = os.read(self.master, 65536)
        except OSError:   # the program ended and closed the terminal
            return False
        if not chunk:
            return False
        self.screen += chunk.decode("utf-8", "replace").replace("\r\n", "\n")
        return True

    def expect(self, text: str) -> str:
        """Everything shown up to and including ``text`` since the last expect."""
        while text not in self.screen[self.read_to:]:
            assert self._read(), f"ended before {text!r}:\n{self.screen[-2000:]}"
        end = self.screen.index(text, self.read_to) + len(text)
        shown, self.read_to = self.screen[self.read_to:end], end
        return shown

    def answer(self, question: str, reply: str) -> str:
        shown = self.expect(question)
        os.write(self.master, (reply + "\n").encode())
        return shown

    def finish(self) -> int:
        while self._read():
            pass
        os.close(self.master)
        return self.process.wait(timeout=60)


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    target = tmp_path / "station-3.yaml"
    shutil.copy(DATA / "station.yaml", target)
    return target


def test_each_new_link_is_named_and_wired_on_a_terminal_and_written_on_yes(
        inventory: Path, tmp_path: Path) -> None:
    before = inventory.read_text()
    term = Terminal("discover", "--simulate", str(BENCH), "--write", str(inventory),
                    "--interactive", "--no-firmware")
    # The DFU board at 1-3 (the one at 1-2 is bound to dfu-c).
    assert "new dfu at 1-3: STM32  BOOTLOADER, serial 2059346B5744, hub usb1 port 3" in \
        term.answer("link name [dfu-1-3]: ", "tray 3")
    assert "'tray 3' is not a link name" in term.answer("link name [dfu-1-3]: ", "probe-a")
    assert "a link probe-a is already in the file" in \
        term.answer("link name [dfu-1-3]: ", "tray-3")
    term.answer("hub port that powers it (power), or none [1-3]: ", "")
    term.answer("NRST line (CHIP:LINE[:active-low|:active-high]), or none [none]: ",
                "pinctrl-rp1")
    assert "'pinctrl-rp1' is not a GPIO line" in term.answer(
        "NRST line (CHIP:LINE[:active-low|:active-high]), or none [none]: ",
        "pinctrl-rp1:GPIO27")
    term.answer("BOOT0 line (CHIP:LINE[:active-low|:active-high]), or none [none]: ",
                "pinctrl-rp1:GPIO27")
    assert "BOOT0 and NRST are on the same GPIO line" in term.answer(
        "BOOT0 line (CHIP:LINE[:active-low|:active-high]), or none [none]: ",
        "pinctrl-rp1:GPIO17:active-sideways")
    assert "say active-low or active-high" in term.answer(
        "BOOT0 line (CHIP:LINE[:active-low|:active-high]), or none [none]: ",
        "pinctrl-rp1:GPIO17")
    # The clone probe at 1-4.2 (selected by its port path): the default name, power auto.
    assert "new stlink at 1-4.2" in term.answer("link name [stlink-1-4-2]: ", "")
    term.answer("hub port that powers it (probe-power), or none [1-4.2]: ", "1-4 port 9")
    assert "hub 1-4 has 4 ports, not 9" in \
        term.answer("hub port that powers it (probe-power), or none [1-4.2]: ", "")
    term.answer("NRST line (CHIP:LINE[:active-low|:active-high]), or none [none]: ", "")
    term.answer("BOOT0 line (CHIP:LINE[:active-low|:active-high]), or none [none]: ", "")
    # The probe at 1-4.3 (selected by serial): its hub port needs the hub as a supply.
    assert "new stlink at 1-4.3" in term.answer("link name [stlink-351967]: ", "probe-e")
    term.answer("hub port that powers it (probe-power), or none [1-4.3]: ", "")
    term.answer("NRST line (CHIP:LINE[:active-low|:active-high]), or none [none]: ",
                "gpiochip0:5:active-low")
    term.answer("BOOT0 line (CHIP:LINE[:active-low|:active-high]), or none [none]: ", "none")
    # The adapters: no hub port is asked (theirs does not power the board), the wiring is.
    assert "new serial /dev/ttyUSB0 at 1-4.4: FT232R USB UART, serial A10K3XYZ, hub 1-4 " \
        "port 4" in term.answer("link name [uart-1-4-4]: ", "board-f")
    term.answer("NRST line (CHIP:LINE[:active-low|:active-high]), or none [none]: ",
                "gpiochip0:6")
    term.answer("BOOT0 line (CHIP:LINE[:active-low|:active-high]), or none [none]: ",
                "gpiochip0:7")
    for name in ("can0", "i2c-1"):
        term.answer(f"link name [{name}]: ", "")
        term.answer("NRST line (CHIP:LINE[:active-low|:active-high]), or none [none]: ", "")
        term.answer("BOOT0 line (CHIP:LINE[:active-low|:active-high]), or none [none]: ", "")
    assert "new i2c /dev/i2c-1 off USB: Synopsys DesignWare I2C adapter" in term.screen
    # The diff first, then the question; nothing is written before the yes.
    diff = term.answer("write these changes to " + str(inventory) + "? [n]: ", "maybe")
    assert f"\n--- {inventory}\n+++ {inventory}\n" in diff
    assert inventory.read_text() == before
    term.answer("answer y or n\n  write these changes to " + str(inventory) + "? [n]: ", "y")
    assert "written" in term.expect("written")
    assert term.finish() == 0
    after = inventory.read_text()
    assert '  tray-3: {kind: dfu, port-path: "1-3", wiring: {power: auto, nrst: ' \
           '{chip: pinctrl-rp1, line: GPIO27}, boot0: {chip: pinctrl-rp1, line: GPIO17}}}\n' \
           in after
    assert '  stlink-1-4-2: {kind: stlink, port-path: "1-4.2", wiring: {probe-power: auto}}\n' \
        in after
    assert '  probe-e: {kind: stlink, serial: "483F6E066772574857351967", wiring: ' \
           '{probe-power: {use: hub-1-4, port: 3}, nrst: {chip: gpiochip0, line: 5, ' \
           'active-low: true}}}\n' in after
    assert 'power:\n  # found by flashrunner discover\n  hub-1-4: {kind: usb-hub, hub: "1-4"}\n' \
        in after
    assert '  board-f: {kind: uart, port: "/dev/serial/by-path/pci-0000:00:14.0-usb-0:4.4:1.0-' \
           'port0", wiring: {nrst: {chip: gpiochip0, line: 6}, boot0: {chip: gpiochip0, ' \
           'line: 7}}}\n' in after
    assert "  can0: {kind: can, interface: socketcan, channel: can0}\n" in after
    assert "  i2c-1: {kind: i2c, bus: 1}\n" in after
    assert after.startswith(before.split("\n\n# end")[0].split("  probe-gone:")[0])
    # What was written is the manifest's grammar: a device on the link takes its wiring.
    product = tmp_path / "product.yaml"
    product.write_text(f"manifest: 1\nname: p\ninclude: [{inventory.name}]\n"
                       "recipes: {check: [{erase: {scope: mass}}]}\n"
                       "devices:\n"
                       "  board: {chip: stm32f411re, transport: tray-3, recipe: check}\n"
                       "  sensor: {chip: stm32f411re, transport: probe-e, recipe: check}\n")
    devices = load_manifest(product).devices
    assert devices["board"].wiring.nrst is not None and \
        devices["board"].wiring.nrst.line == "GPIO27"
    assert devices["board"].wiring.power is not None and devices["board"].wiring.power.auto
    sensor = devices["sensor"].wiring
    assert sensor.probe_power is not None and \
        (sensor.probe_power.supply, sensor.probe_power.port) == ("hub-1-4", 3)
    assert sensor.nrst is not None and sensor.nrst.active_low and sensor.nrst.line == 5


def test_dry_run_asks_and_shows_the_diff_but_writes_nothing(inventory: Path) -> None:
    before = inventory.read_text()
    term = Terminal("discover", "--simulate", str(BENCH), "--write", str(inventory),
                    "--interactive", "--dry-run", "--no-firmware")
    for _ in range(3):
        term.answer("link name [", "")
        term.answer("or none [1-", "none")
        term.answer("NRST line", "")
        term.answer("BOOT0 line", "")
    for _ in range(3):   # the USB-serial, CAN and I2C adapters
        term.answer("link name [", "")
        term.answer("NRST line", "")
        term.answer("BOOT0 line", "")
    shown = term.expect("+  i2c-1")
    assert "+  dfu-1-3: {kind: dfu, port-path: \"1-3\"}" in shown
    assert term.finish() == 0
    assert "write these changes" not in term.screen
    assert inventory.read_text() == before


def test_interactive_without_a_terminal_is_refused(inventory: Path) -> None:
    before = inventory.read_text()
    done = subprocess.run([sys.executable, "-m", "runner", "discover", "--simulate",
                           str(BENCH), "--write", str(inventory), "--interactive"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert "--interactive asks on a terminal, and stdin is not one" in done.stderr
    assert inventory.read_text() == before


def test_interactive_goes_with_write(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--simulate", str(BENCH), "--interactive"]) == 2
    assert "--interactive go with --write FILE" in capsys.readouterr().err


def test_the_answers_are_read_by_the_prompt_itself(inventory: Path) -> None:
    """Answers fed to the prompt's own input: a hub that cannot switch, the input ending."""
    result = discover_here(inventory, BENCH, read_firmware=False)
    # As if hub 1-4 did not switch its ports: a hub-port answer there is refused.
    result = replace(result, devices=tuple(
        replace(f, power_switching="none") if f.port_path == "1-4" else f
        for f in result.devices))
    shown = io.StringIO()
    answers = io.StringIO("\n\n\n\n"          # dfu-1-3: every default
                          "\n\nnone\n\n\n"    # stlink-1-4-2: 1-4.2 refused, then none
                          "\n")               # stlink-351967: the name, then no more input
    prompter = Prompter(source=answers, output=shown)
    with pytest.raises(PlanError, match="the input ended at 'hub port that powers it"):
        sync_inventory(inventory, result, dry_run=True, namer=name_links(prompter))
    text = shown.getvalue()
    assert text.count("! hub 1-4 does not switch port power") == 1
    assert "new stlink at 1-4.3" in text
    assert inventory.read_text() == (DATA / "station.yaml").read_text()


STATION = """\
stations:
  pi1:
    host: 127.0.0.1
    port: {port}
    user: {user}
    identity-file: {keys}/id_ed25519
    known-hosts: {keys}/known_hosts
    connect-timeout: 5
    links: [pi1-probe-a, pi1-any]
transports:
  pi1-probe-a: {{kind: stlink, serial: "066DFF485550755187121723"}}
  pi1-any: {{kind: stlink}}
"""

STATION_PRODUCT = """\
manifest: 1
name: one-station
include: [stations.yaml]
simulate: true
simulation:
  time-scale: 0
  hubs:
    "1-4": {ports: 4}
  devices:
    a: {quirks: {port-path: "1-4.1"}}
    b: {quirks: {serial: "483F6E066772574857351967", port-path: "1-4.2"}}
recipes:
  check:
    - erase: {scope: mass}
devices:
  a: {chip: stm32f411re, station: pi1, transport: pi1-probe-a, recipe: check}
  b: {chip: stm32f411re, station: pi1, transport: pi1-any, recipe: check}
"""


@pytest.mark.skipif(not SSHD.exists(), reason="openssh-server is not installed")
def test_interactive_on_a_station_names_its_link_into_its_section(tmp_path: Path) -> None:
    import getpass

    station = start_station(tmp_path / "keys", "pi1")
    try:
        (tmp_path / "stations.yaml").write_text(STATION.format(
            port=station.port, user=getpass.getuser(), keys=tmp_path / "keys"))
        (tmp_path / "product.yaml").write_text(STATION_PRODUCT)
        inventory = tmp_path / "stations.yaml"
        term = Terminal("discover", "--station", "pi1", "--simulate",
                        str(tmp_path / "product.yaml"), "--write", str(inventory),
                        "--interactive", "--no-firmware")
        assert "station pi1: new stlink at 1-4.2" in \
            term.answer("link name [pi1-stlink-351967]: ", "pi1-bench-left")
        term.answer("hub port that powers it (probe-power), or none [1-4.2]: ", "")
        term.answer("NRST line", "pinctrl-rp1:GPIO27")
        term.answer("BOOT0 line", "")
        term.answer("write these changes to", "y")
        assert term.finish() == 0, term.screen
    finally:
        station.stop()
    after = inventory.read_text()
    assert "    links: [pi1-probe-a, pi1-any, pi1-bench-left]\n" in after
    assert '  pi1-bench-left: {kind: stlink, serial: "483F6E066772574857351967", wiring: ' \
           '{probe-power: {use: hub-1-4, port: 2}, nrst: {chip: pinctrl-rp1, line: GPIO27}}}' \
           in after
    assert 'power:\n  # found by flashrunner discover\n  hub-1-4: {kind: usb-hub, hub: "1-4"}\n' \
        in after
