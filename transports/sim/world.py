"""The simulation world: every simulated chip and shared link of one run.

A rehearsal creates one :class:`SimulationWorld` per run, where the run is
composed (``runner.launch``). The simulated endpoint provider
(:mod:`transports.sim.endpoints`) asks it for the chip behind each device
(created once, so a reconnect finds the same flash) and for shared far ends
(one simulated I2C bus or CAN bus serves every device on it; one pyusb backend
hosts every simulated USB device). After the run a test inspects the chips'
flash.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from transports.chips import Chip
from transports.sim.chip import SimChip, derive_uid
from transports.sim.clock import SimClock
from transports.sim.faults import Fault, FaultPlan

__all__ = ["DeviceProfile", "SimulationWorld"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceProfile:
    """How one simulated device starts: protection, faults, quirks.

    ``quirks`` carries front-end specific settings (``clone: apm32`` for the
    ST-Link simulator, a bootloader version for the USART one, …); front ends
    read what they know and ignore the rest.
    """

    rdp_level: int = 0
    faults: Sequence[Fault] = ()
    uid: bytes | None = None
    flash_size_register: int | None = None
    fill: int | None = None
    quirks: Mapping[str, Any] = field(default_factory=dict)


class SimulationWorld:
    """All simulated hardware of one run.

    Args:
        time_scale: real seconds slept per simulated second (0 = no pacing).
        seed: makes UIDs unique per world yet reproducible.
        profiles: per-device starting state, by device name.
    """

    def __init__(self, *, time_scale: float = 0.0, seed: str = "flashrunner",
                 profiles: Mapping[str, DeviceProfile] | None = None) -> None:
        self.time_scale = time_scale
        self.seed = seed
        self.profiles = dict(profiles or {})
        self.chips: dict[str, SimChip] = {}
        self._shared: dict[str, Any] = {}
        self._closers: list[Callable[[], None]] = []
        self._substituted: set[str] = set()
        self._lock = threading.RLock()

    def profile(self, device: str) -> DeviceProfile:
        return self.profiles.get(device, DeviceProfile())

    def substitute(self, device: str, sim: SimChip) -> None:
        """Put ``sim`` behind ``device`` whatever part the manifest names.

        Models a board that carries another chip than the manifest says, so
        the runner's identity check can be exercised; :meth:`chip` then
        returns ``sim`` without comparing parts.
        """
        with self._lock:
            self.chips[device] = sim
            self._substituted.add(device)

    def chip(self, device: str, chip: Chip) -> SimChip:
        """The simulated chip behind ``device`` (created on first use)."""
        with self._lock:
            existing = self.chips.get(device)
            if existing is not None:
                if existing.chip.part != chip.part and device not in self._substituted:
                    raise ValueError(f"device {device} is simulated as {existing.chip.part}, "
                                     f"not {chip.part}")
                return existing
            profile = self.profile(device)
            initial = None
            if profile.fill is not None:
                initial = bytes([profile.fill]) * chip.flash.size
            sim = SimChip(chip, uid=profile.uid or derive_uid(f"{self.seed}:{device}"),
                          clock=SimClock(self.time_scale), faults=FaultPlan(profile.faults),
                          rdp_level=profile.rdp_level,
                          flash_size_register=profile.flash_size_register,
                          initial_flash=initial)
            self.chips[device] = sim
            return sim

    def shared(self, key: str, factory: Callable[[], T]) -> T:
        """One object per key for the whole world (a bus, a USB backend, a pty server)."""
        with self._lock:
            if key not in self._shared:
                self._shared[key] = factory()
            value: T = self._shared[key]
            return value

    def on_close(self, closer: Callable[[], None]) -> None:
        """Run ``closer`` when the world closes (stop threads, close ptys)."""
        with self._lock:
            self._closers.append(closer)

    def close(self) -> None:
        """Stop everything the world started; idempotent."""
        with self._lock:
            closers, self._closers = self._closers[::-1], []
        for closer in closers:
            try:
                closer()
            except Exception:  # best effort: one failing closer must not leak the rest
                pass

    def __enter__(self) -> SimulationWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
