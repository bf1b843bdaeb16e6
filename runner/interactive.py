"""The questions of ``discover --write FILE --interactive``, asked on a terminal.

For each link ``--write`` would add, the operator names it and says how the
station is cabled to it, in the manifest's wiring grammar (README, "Hardware
control and the recovery ladder"), written on the link as its ``wiring``:

* **link name** — default the pattern's (``stlink-351967``, ``dfu-1-3``);
* **hub port** — the port whose power a power-cycle cuts: by default the one
  the device hangs off (``probe-power`` for an ST-Link, the probe's own port;
  ``power`` for a DFU board). That is ``auto`` when the link selects by that
  port path, else ``{use: <hub supply>, port: N}`` with the file's ``usb-hub``
  supply for the hub (added to ``power:`` when the file has none);
* **NRST** and **BOOT0** — GPIO lines, ``CHIP:LINE`` with an optional
  ``:active-low`` / ``:active-high`` (``pinctrl-rp1:GPIO27``), or ``none``.

Every answer is checked as it is given (the wiring parts against the
manifest schema's own definitions) and asked again when it is wrong. Then
the change goes through the same splice and diff as ``--write``, and the
file is written only once the operator says yes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TextIO, TypeVar

from runner.errors import PlanError
from runner.inventory import Namer, NewLink, NewSupply, Proposal

__all__ = ["Answer", "Prompter", "name_links"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PORT_PATH = re.compile(r"^[0-9]+-[0-9]+(\.[0-9]+)*$")
_HUB_AND_PORT = re.compile(r"^([0-9]+-[0-9]+(?:\.[0-9]+)*)\s+port\s+([0-9]+)$")
_NONE = frozenset({"none", "-", "no"})

T = TypeVar("T")


class Answer(ValueError):
    """An answer that cannot be used; the question is asked again with this message."""


@dataclass(slots=True)
class Prompter:
    """Asks on ``output``, reads the answers from ``source`` (the terminal)."""

    source: TextIO
    output: TextIO

    def ask(self, question: str, default: str, check: Callable[[str], T]) -> T:
        """Ask until ``check(answer)`` accepts the answer (Enter gives ``default``)."""
        while True:
            self.output.write(f"  {question} [{default}]: ")
            self.output.flush()
            line = self.source.readline()
            if not line:
                raise PlanError(f"--interactive: the input ended at {question!r}; "
                                f"nothing was written")
            answer = line.strip() or default
            try:
                return check(answer)
            except Answer as error:
                self.output.write(f"  ! {error}\n")

    def confirm(self, question: str) -> bool:
        """A yes or no (Enter is no)."""
        def yes_or_no(answer: str) -> bool:
            if answer.lower() in ("y", "yes"):
                return True
            if answer.lower() in ("n", "no"):
                return False
            raise Answer("answer y or n")
        return self.ask(question, "n", yes_or_no)

    def say(self, text: str) -> None:
        self.output.write(text + "\n")
        self.output.flush()


@dataclass(slots=True)
class _Naming:
    """What the answers so far have used up: link names and hub supplies."""

    proposal: Proposal
    names: set[str] = field(default_factory=set)
    supplies: dict[str, str] = field(default_factory=dict)
    added: list[NewSupply] = field(default_factory=list)


def name_links(prompter: Prompter) -> Namer:
    """A :data:`runner.inventory.Namer` that asks ``prompter`` about each new link."""
    def namer(proposal: Proposal) -> tuple[list[NewLink], list[NewSupply]]:
        naming = _Naming(proposal=proposal, names=set(proposal.taken),
                         supplies=dict(proposal.supplies))
        links = [_ask_link(prompter, naming, link) for link in proposal.links]
        return links, naming.added
    return namer


def _ask_link(prompter: Prompter, naming: _Naming, link: NewLink) -> NewLink:
    found = link.found
    where = f"station {naming.proposal.station}: " if naming.proposal.station else ""
    hub = found.hub if found.hub_port is None else f"hub {found.hub} port {found.hub_port}"
    switching = found.hub_power_switching
    serial = f"serial {found.serial}, " if found.serial else ""
    node = f"{found.node} " if found.node else ""
    at = f"at {found.port_path}" if found.port_path else "off USB"
    prompter.say(f"{where}new {found.kind} {node}{at}: "
                 f"{found.product or found.adapter_name or found.kind}"
                 + (f", {serial}{hub}" if found.port_path else "")
                 + (f" (power switching {switching})" if switching else ""))
    name = prompter.ask("link name", link.name, lambda answer: _name(naming, answer))
    naming.names.add(name)
    wiring: dict[str, Any] = {}
    if found.kind in ("stlink", "dfu"):
        # An adapter's own hub port does not power the board behind it: not asked.
        role = "probe-power" if found.kind == "stlink" else "power"
        power = prompter.ask(f"hub port that powers it ({role}), or none", found.port_path,
                             lambda answer: _hub_port(naming, link, answer))
        if power is not None:
            wiring[role] = power
    nrst = prompter.ask("NRST line (CHIP:LINE[:active-low|:active-high]), or none", "none",
                        lambda answer: _gpio_line(answer, "nrst"))
    if nrst is not None:
        wiring["nrst"] = nrst
    boot0 = prompter.ask("BOOT0 line (CHIP:LINE[:active-low|:active-high]), or none", "none",
                         lambda answer: _boot0(answer, nrst))
    if boot0 is not None:
        wiring["boot0"] = boot0
    try:
        _check(wiring, "wiring")
    except Answer as error:   # each part was checked: the whole is valid by construction
        raise PlanError(f"link {name}: {error}") from None
    return replace(link, name=name, wiring=wiring or None)


def _name(naming: _Naming, answer: str) -> str:
    if not _NAME.match(answer):
        raise Answer(f"{answer!r} is not a link name: letters, digits, '.', '_' and '-', "
                     f"starting with a letter or digit, at most 64")
    if answer in naming.names:
        raise Answer(f"a link {answer} is already in the file; choose another name")
    return answer


def _hub_port(naming: _Naming, link: NewLink, answer: str) -> Any:
    """The wiring's power reference for ``answer`` (``None``: not wired)."""
    if answer.lower() in _NONE:
        return None
    match = _HUB_AND_PORT.match(answer)
    path = f"{match[1]}.{match[2]}" if match else answer
    if not _PORT_PATH.match(path):
        raise Answer(f"{answer!r} is not a hub port: give its port path (1-4.2), "
                     f"HUB port N (1-4 port 2), or none")
    hub, dot, port = path.rpartition(".")
    if not dot:   # a port of the root hub (1-3): Linux calls that hub 1-0
        bus, _, port = path.partition("-")
        hub = f"{bus}-0"
    found = naming.proposal.hubs.get(hub)
    if found is not None and found.power_switching == "none":
        raise Answer(f"hub {hub} does not switch port power (its descriptor says so); "
                     f"answer none, or a port of a hub that does")
    if found is not None and found.hub_ports is not None and int(port) > found.hub_ports:
        raise Answer(f"hub {hub} has {found.hub_ports} ports, not {port}")
    if path == link.found.port_path and link.by_path:
        return "auto"
    ganged = found is not None and found.power_switching == "ganged"
    return {"use": _supply(naming, hub, ganged=ganged), "port": int(port)}


def _supply(naming: _Naming, hub: str, *, ganged: bool) -> str:
    """The ``power:`` entry of ``hub``: the file's, else one added for it."""
    if hub in naming.supplies:
        return naming.supplies[hub]
    base = f"hub-{hub.replace('.', '-')}"
    name, number = base, 2
    while name in naming.proposal.supply_names or name in naming.supplies.values():
        name, number = f"{base}-{number}", number + 1
    naming.supplies[hub] = name
    naming.added.append(NewSupply(name=name, hub=hub, ganged=ganged))
    return name


def _gpio_line(answer: str, role: str) -> dict[str, Any] | None:
    if answer.lower() in _NONE:
        return None
    chip, sep, rest = answer.partition(":")
    line, _, polarity = rest.partition(":")
    if not sep or not chip or not line:
        raise Answer(f"{answer!r} is not a GPIO line: give CHIP:LINE (pinctrl-rp1:GPIO17, "
                     f"gpiochip0:17), optionally :active-low or :active-high, or none")
    value: dict[str, Any] = {"chip": chip, "line": int(line) if line.isdigit() else line}
    if polarity:
        if polarity not in ("active-low", "active-high"):
            raise Answer(f"{polarity!r}: say active-low or active-high")
        value["active-low"] = polarity == "active-low"
    _check(value, "gpio-line", what=f"{role} line")
    return value


def _boot0(answer: str, nrst: Mapping[str, Any] | None) -> dict[str, Any] | None:
    boot0 = _gpio_line(answer, "boot0")
    if boot0 is not None and nrst is not None and \
            (boot0["chip"], boot0["line"]) == (nrst["chip"], nrst["line"]):
        raise Answer("BOOT0 and NRST are on the same GPIO line; give BOOT0 its own")
    return boot0


def _check(value: Any, definition: str, *, what: str = "") -> None:
    """``value`` against the manifest schema's ``definition`` (the wiring grammar)."""
    from runner.manifest.structure import strict_validator
    from schemas import load_schema

    schema = load_schema("manifest")
    validator = strict_validator({"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"})
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        at = ".".join(str(p) for p in errors[0].absolute_path)
        raise Answer(f"{what or definition}{' ' + at if at else ''}: {errors[0].message}")
