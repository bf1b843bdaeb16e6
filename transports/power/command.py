"""A power adapter driven by a command: custom hub controllers such as ``hub_cli``.

Some stations switch their boards with a vendor tool (``hub_cli power_off
0x0004``, ``get_power_state``). The inventory gives the commands as **argv
templates**, never shell strings: each element is formatted on its own with
the port's fields and the list is executed directly, so nothing in a port name
or a field value can reach a shell. Fields: ``{port}`` (the port number),
``{name}`` (``USB3``), ``{mask}`` (``1 << (port - 1)``: USB1..USB16 are
0x0001..0x8000). Integer format specs such as ``{mask:#06x}`` are allowed.
"""

from __future__ import annotations

import re
import string
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from transports.errors import HardwareControlError

__all__ = ["CommandPower", "check_template", "port_number"]

_FIELDS = frozenset({"port", "name", "mask"})
_SPEC = re.compile(r"^#?0?\d{0,2}[dxXob]?$")
_NUMBER = re.compile(r"0[xX][0-9A-Fa-f]+|\d+")


def check_template(argv: Sequence[str]) -> None:
    """Refuse a template with unknown fields or format specs (what validation calls)."""
    if not argv:
        raise ValueError("an argv template needs at least the program")
    for element in argv:
        for _, field, spec, conversion in string.Formatter().parse(element):
            if field is None:
                continue
            if field not in _FIELDS:
                raise ValueError(f"unknown field {{{field}}} in {element!r}; use "
                                 f"{', '.join('{' + f + '}' for f in sorted(_FIELDS))}")
            if conversion:
                raise ValueError(f"conversion !{conversion} in {element!r} is not allowed; "
                                 f"write {{{field}}} or an integer format such as "
                                 f"{{mask:#06x}}")
            if not _SPEC.match(spec or ""):
                raise ValueError(f"format {{{field}:{spec}}} in {element!r} is not an "
                                 f"integer format such as {{mask:#06x}}")


def port_number(port: str | int) -> int:
    """``USB3`` or ``3`` → 3 (USB1..USB16)."""
    text = str(port).strip().upper().removeprefix("USB")
    if not text.isdigit() or not 1 <= int(text) <= 16:
        raise HardwareControlError(f"{port!r} is not a port USB1..USB16")
    return int(text)


class CommandPower:
    """One port of a command-driven power adapter."""

    def __init__(self, *, port: str | int, off: Sequence[str], on: Sequence[str],
                 state: Sequence[str] | None = None, timeout_s: float = 10.0,
                 run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
                 name: str = "command") -> None:
        for template in (off, on, *([state] if state else [])):
            try:
                check_template(template)
            except ValueError as error:
                raise HardwareControlError(str(error)) from None
        self.number = port_number(port)
        self.off_argv, self.on_argv = tuple(off), tuple(on)
        self.state_argv = tuple(state) if state else None
        self.timeout_s, self._run, self.name = timeout_s, run, name
        self.resource = f"power-command:{name}:{self.number}"

    @property
    def mask(self) -> int:
        return 1 << (self.number - 1)

    def argv(self, template: Sequence[str]) -> list[str]:
        fields = {"port": self.number, "name": f"USB{self.number}", "mask": self.mask}
        return [element.format(**fields) for element in template]

    def _execute(self, template: Sequence[str]) -> str:
        argv = self.argv(template)
        try:
            done = self._run(argv, capture_output=True, text=True, timeout=self.timeout_s,
                             check=False)
        except FileNotFoundError as error:
            raise HardwareControlError(f"power command {argv[0]!r} is not installed",
                                       hint="install it or fix the adapter's argv") from error
        except subprocess.TimeoutExpired as error:
            raise HardwareControlError(f"power command {argv[0]} did not finish within "
                                       f"{self.timeout_s:g} s") from error
        if done.returncode != 0:
            tail = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or [""]
            raise HardwareControlError(f"power command {' '.join(argv)} failed with exit "
                                       f"status {done.returncode}: {tail[0][:200]}")
        return done.stdout or ""

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.name, "port": f"USB{self.number}", "mask": f"0x{self.mask:04X}",
                "method": "command"}

    def off(self) -> dict[str, Any]:
        self._execute(self.off_argv)
        return {**self.describe(), "argv": self.argv(self.off_argv)}

    def on(self) -> dict[str, Any]:
        self._execute(self.on_argv)
        return {**self.describe(), "argv": self.argv(self.on_argv)}

    def is_on(self) -> bool | None:
        """The port's bit in the mask ``get_power_state`` prints (``None`` without one)."""
        if self.state_argv is None:
            return None
        match = _NUMBER.search(self._execute(self.state_argv))
        if match is None:
            raise HardwareControlError(f"power command {self.state_argv[0]} printed no power "
                                       f"mask")
        return bool(int(match.group(0), 0) & self.mask)

    def still_off(self) -> None:
        if self.is_on():
            raise HardwareControlError(f"USB{self.number} of {self.name} is on again while it "
                                       f"was meant to be off")
