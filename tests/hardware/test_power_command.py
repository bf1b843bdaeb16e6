"""A command-driven power adapter (the seed's ``hub_cli``): argv templates, never a shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from transports.errors import HardwareControlError
from transports.power.command import CommandPower, check_template, port_number

#: Stands in for hub_cli: keeps a power mask in a file, records every argv it is given.
HUB_CLI = '''
import json, sys
from pathlib import Path
state = Path(sys.argv[1])
log = state.with_suffix(".log")
with log.open("a") as out:
    out.write(json.dumps(sys.argv[2:]) + "\\n")
mask = int(state.read_text()) if state.exists() else 0xFFFF
command = sys.argv[2]
if command == "power_off":
    mask &= ~int(sys.argv[3], 16)
elif command == "power_on":
    mask |= int(sys.argv[3], 16)
elif command == "get_power_state":
    print(f"power state: 0x{mask:04x}")
else:
    print("unknown command", file=sys.stderr)
    sys.exit(2)
state.write_text(str(mask))
'''


@pytest.fixture
def hub_cli(tmp_path: Path) -> tuple[list[str], Path]:
    script = tmp_path / "hub_cli.py"
    script.write_text(HUB_CLI)
    state = tmp_path / "hub.state"
    return [sys.executable, str(script), str(state)], state


def adapter(prefix: list[str], port: str | int, **kwargs: object) -> CommandPower:
    return CommandPower(port=port, off=[*prefix, "power_off", "{mask:#06x}"],
                        on=[*prefix, "power_on", "{mask:#06x}"],
                        state=[*prefix, "get_power_state"], **kwargs)  # type: ignore[arg-type]


def test_usb_ports_map_to_their_mask_bit(hub_cli: tuple[list[str], Path]) -> None:
    prefix, state = hub_cli
    power = adapter(prefix, "USB3")
    assert power.mask == 0x0004 and port_number("USB16") == 16
    fields = power.off()
    assert fields["argv"][-2:] == ["power_off", "0x0004"]
    assert power.is_on() is False
    assert int(state.read_text()) == 0xFFFB
    power.on()
    assert power.is_on() is True


def test_hostile_values_reach_the_program_as_plain_arguments(
        hub_cli: tuple[list[str], Path], tmp_path: Path) -> None:
    prefix, state = hub_cli
    canary = tmp_path / "pwned"
    hostile = f"$(touch {canary}); rm -rf {tmp_path} ; `id` 'quoted' \"double\""
    power = CommandPower(port=2, off=[*prefix, "power_off", "{mask:#06x}", hostile],
                         on=[*prefix, "power_on", "{mask:#06x}"])
    power.off()
    recorded = [json.loads(line) for line in state.with_suffix(".log").read_text().splitlines()]
    assert recorded[-1] == ["power_off", "0x0002", hostile]
    assert not canary.exists() and tmp_path.exists()


@pytest.mark.parametrize("template", [["hub_cli", "{mask.__class__}"], ["hub_cli", "{port!r}"],
                                      ["hub_cli", "{serial}"], ["hub_cli", "{mask:>999999}"],
                                      []])
def test_templates_take_only_the_documented_fields(template: list[str]) -> None:
    with pytest.raises(ValueError):
        check_template(template)


def test_a_failing_command_says_what_failed(hub_cli: tuple[list[str], Path]) -> None:
    prefix, _ = hub_cli
    power = CommandPower(port=1, off=[*prefix, "explode"], on=[*prefix, "power_on", "{mask}"])
    with pytest.raises(HardwareControlError, match="exit status 2: unknown command"):
        power.off()


def test_a_missing_program_is_named(tmp_path: Path) -> None:
    power = CommandPower(port=1, off=[str(tmp_path / "no-such-hub_cli")], on=["true"])
    with pytest.raises(HardwareControlError, match="is not installed"):
        power.off()


@pytest.mark.parametrize("bad", ["USB0", "USB17", "port3", 0])
def test_ports_outside_usb1_to_usb16_are_refused(bad: str | int) -> None:
    with pytest.raises(HardwareControlError):
        port_number(bad)
