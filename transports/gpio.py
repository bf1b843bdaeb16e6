"""BOOT0 and NRST on GPIO lines (a Raspberry Pi station and the like), through libgpiod v2.

Lines are named in the inventory by chip and line: the chip by its **label**
first (``pinctrl-rp1``), then its path (``/dev/gpiochip0``), and the line by its
**name** first (``GPIO17``), then its offset, so a kernel update that
renumbers the gpiochips (it happened on the Raspberry Pi 5) cannot move a pin.
NRST is driven open-drain and active-low, so a probe's NRST can share the net.

A device's session holds **one** line request for its BOOT0 and NRST lines
for as long as it runs (:class:`TargetPins`); releasing it (also when the
process dies) hands the lines back to their defaults. Every line change is
reported with a monotonic timestamp. The backend is the seam: :class:`GpiodBackend`
on a host, a simulated chip wired to simulated boards in rehearsals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from transports.errors import EnvironmentProblem, HardwareControlError

__all__ = ["GpioBackend", "GpiodBackend", "LineRequest", "LineSpec", "TargetPins"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LineSpec:
    """One GPIO line as the inventory names it."""

    chip: str
    line: str | int
    active_low: bool = False
    open_drain: bool = False

    def describe(self) -> str:
        return f"{self.chip}:{self.line}"


@runtime_checkable
class LineRequest(Protocol):
    """Lines held by one consumer; values are logical (active = asserted)."""

    def set(self, role: str, active: bool) -> None: ...

    def get(self, role: str) -> bool: ...

    def release(self) -> None: ...


@runtime_checkable
class GpioBackend(Protocol):
    """Opens line requests; raises :class:`HardwareControlError` for a missing chip or line."""

    def request(self, consumer: str, lines: Mapping[str, LineSpec],
                initial: Mapping[str, bool]) -> LineRequest: ...


class GpiodBackend:
    """libgpiod v2 (the ``gpiod`` package) on this host."""

    def __init__(self, devices: str = "/dev") -> None:
        self.devices = devices

    def _gpiod(self) -> Any:
        try:
            import gpiod
        except ImportError as error:
            raise EnvironmentProblem("GPIO lines need libgpiod's Python bindings",
                                     hint="pip install gpiod (libgpiod v2)") from error
        return gpiod

    def _chip_path(self, gpiod: Any, name: str) -> str:
        import glob

        paths = sorted(glob.glob(f"{self.devices}/gpiochip*"))
        for path in paths:  # by label first: stable across renumbering
            try:
                with gpiod.Chip(path) as chip:
                    if chip.get_info().label == name:
                        return path
            except OSError:
                continue
        if name in paths or (name.startswith("/") and gpiod.is_gpiochip_device(name)):
            return name
        raise HardwareControlError(f"no GPIO chip labelled or named {name!r}",
                                   hint=f"the chips here: {', '.join(paths) or 'none'}; "
                                        f"`gpiodetect` lists their labels")

    def request(self, consumer: str, lines: Mapping[str, LineSpec],
                initial: Mapping[str, bool]) -> LineRequest:
        gpiod = self._gpiod()
        from gpiod.line import Direction, Drive, Value

        by_chip: dict[str, dict[str, LineSpec]] = {}
        for role, spec in lines.items():
            by_chip.setdefault(self._chip_path(gpiod, spec.chip), {})[role] = spec
        requests: list[Any] = []
        offsets: dict[str, tuple[Any, int]] = {}
        for path, specs in by_chip.items():
            config: dict[int, Any] = {}
            with gpiod.Chip(path) as chip:
                for role, spec in specs.items():
                    try:
                        offset = spec.line if isinstance(spec.line, int) else \
                            chip.line_offset_from_id(spec.line)
                    except (OSError, ValueError) as error:
                        raise HardwareControlError(f"GPIO chip {spec.chip} has no line "
                                                   f"{spec.line!r}") from error
                    config[offset] = gpiod.LineSettings(
                        direction=Direction.OUTPUT, active_low=spec.active_low,
                        drive=Drive.OPEN_DRAIN if spec.open_drain else Drive.PUSH_PULL,
                        output_value=Value.ACTIVE if initial.get(role) else Value.INACTIVE)
                    offsets[role] = (None, offset)
            request = gpiod.request_lines(path, consumer=consumer, config=config)
            requests.append(request)
            for role in specs:
                offsets[role] = (request, offsets[role][1])
        return _GpiodRequest(requests, offsets, Value)


class _GpiodRequest:
    def __init__(self, requests: list[Any], offsets: dict[str, tuple[Any, int]],
                 value: Any) -> None:
        self._requests, self._offsets, self._value = requests, offsets, value

    def set(self, role: str, active: bool) -> None:
        request, offset = self._offsets[role]
        request.set_value(offset, self._value.ACTIVE if active else self._value.INACTIVE)

    def get(self, role: str) -> bool:
        request, offset = self._offsets[role]
        return bool(request.get_value(offset) == self._value.ACTIVE)

    def release(self) -> None:
        for request in self._requests:
            request.release()
        self._requests = []


#: ``(role, active, fields)`` for every line change.
LineEvent = Callable[[str, bool, Mapping[str, Any]], None]


class TargetPins:
    """BOOT0 and NRST of one target, held in one request for a session.

    NRST active means the chip is held in reset; BOOT0 active means BOOT0 high
    (the ROM bootloader is chosen when NRST is released, RM0008 §3.4).
    """

    def __init__(self, backend: GpioBackend, consumer: str, *, nrst: LineSpec | None = None,
                 boot0: LineSpec | None = None, on_change: LineEvent | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic,
                 pulse_s: float = 0.02, settle_s: float = 0.1,
                 boot0_rest: bool = False) -> None:
        self.backend, self.consumer = backend, consumer
        #: BOOT0 between operations: high for a board flashed through its ROM bootloader
        #: (so any reset brings the ROM back), low for one reached by a debug probe.
        self.boot0_rest = boot0_rest
        self.specs = {role: spec for role, spec in (("nrst", nrst), ("boot0", boot0)) if spec}
        self.on_change = on_change
        self.sleep, self.monotonic = sleep, monotonic
        self.pulse_s, self.settle_s = pulse_s, settle_s
        self._request: LineRequest | None = None
        self._started = monotonic()

    @property
    def has_nrst(self) -> bool:
        return "nrst" in self.specs

    @property
    def has_boot0(self) -> bool:
        return "boot0" in self.specs

    def open(self) -> None:
        if self._request is None and self.specs:
            initial = {"nrst": False, "boot0": self.boot0_rest}
            self._request = self.backend.request(self.consumer, self.specs,
                                                 {role: initial[role] for role in self.specs})

    def close(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            request.release()

    def set_line(self, role: str, active: bool) -> None:
        """Drive ``nrst`` (active: held in reset) or ``boot0`` (active: high)."""
        self._need(role, f"driving {role.upper()}")
        self._set(role, active)

    def _set(self, role: str, active: bool) -> None:
        self.open()
        assert self._request is not None
        self._request.set(role, active)
        if self.on_change is not None:
            spec = self.specs[role]
            self.on_change(role, active, {"line": spec.describe(),
                                          "t_ms": round((self.monotonic() - self._started)
                                                        * 1000, 1)})

    def _need(self, role: str, action: str) -> None:
        if role not in self.specs:
            raise HardwareControlError(f"{action} needs the target's {role.upper()} on a GPIO "
                                       f"line, and none is wired",
                                       hint=f"add {role} under the device's wiring")

    def pulse_reset(self) -> dict[str, Any]:
        """Hold NRST for ``pulse_s``, release it, let the chip start (``settle_s``)."""
        self._need("nrst", "an NRST pulse")
        self._set("nrst", True)
        self.sleep(self.pulse_s)
        self._set("nrst", False)
        self.sleep(self.settle_s)
        return {"line": self.specs["nrst"].describe(), "pulse_ms": self.pulse_s * 1000}

    def boot(self, bootloader: bool) -> dict[str, Any]:
        """Restart into the ROM bootloader (BOOT0 high) or the application (BOOT0 low)."""
        self._need("boot0", "choosing the boot mode")
        self._need("nrst", "choosing the boot mode")
        self._set("nrst", True)
        self._set("boot0", bootloader)
        self.sleep(self.pulse_s)
        self._set("nrst", False)  # BOOT0 is sampled here
        self.sleep(self.settle_s)
        if bootloader != self.boot0_rest:
            self._set("boot0", self.boot0_rest)  # sampled already: back to its rest level
        return {"boot0": self.specs["boot0"].describe(), "nrst": self.specs["nrst"].describe(),
                "mode": "bootloader" if bootloader else "application"}
