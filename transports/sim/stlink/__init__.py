"""A simulated ST-Link probe with an STM32 behind it, on the shared pyusb backend.

:func:`attach_probe` plugs one probe per simulated device into the world's
USB backend (``world.shared("usb", SimUsbBackend)``), wired to the device's
:class:`~transports.sim.chip.SimChip` through an SWD target model whose flash
controller behaves like the family's silicon. The device's profile quirks
select variants:

``probe``          v1 | v2 | v2-1 | v3 (default v2)
``firmware``       the JTAG/SWD firmware number J (default per probe)
``clone``          apm32 | gd32 | cks32 (a clone of the part)
``target-voltage`` volts at the target (0.0: unpowered)
``binary-serial``  old V2 firmware's 12-byte binary serial
``port-path``      e.g. ``"3-1.4"`` (default: a distinct port per probe)
``wait-replies``   answer this many debug-register commands with WAIT first
"""

from __future__ import annotations

import threading
from typing import Any

from transports.chips import Chip
from transports.sim.control import sim_hardware
from transports.sim.stlink.bot import SimStLinkV1
from transports.sim.stlink.controller import SimFlashController
from transports.sim.stlink.flash_f1 import SimF1Controller
from transports.sim.stlink.flash_f4 import SimF4Controller
from transports.sim.stlink.flash_h5 import SimH5Controller
from transports.sim.stlink.flash_h7 import SimH7Controller
from transports.sim.stlink.flash_l0 import SimL0Controller
from transports.sim.stlink.flash_l4 import SimL4Controller
from transports.sim.stlink.identity import core_identity
from transports.sim.stlink.probe import PROBE_MODELS, SimStLinkProbe, derive_probe_serial
from transports.sim.stlink.target import SimSwdTarget
from transports.sim.usb import SimUsbBackend
from transports.sim.world import SimulationWorld

__all__ = ["CONTROLLER_MODELS", "SimStLinkProbe", "SimSwdTarget", "attach_probe",
           "derive_probe_serial", "make_target", "probe_for"]

CONTROLLER_MODELS: dict[str, type[SimFlashController]] = {
    "f0": SimF1Controller, "f1": SimF1Controller, "f1xl": SimF1Controller,
    "f2": SimF4Controller, "f4": SimF4Controller, "f7": SimF4Controller,
    "l4": SimL4Controller, "g0": SimL4Controller, "g4": SimL4Controller,
    "wb": SimL4Controller, "wl": SimL4Controller, "c0": SimL4Controller,
    "l5": SimL4Controller, "u5": SimL4Controller,
    "h7": SimH7Controller, "h7ab": SimH7Controller, "h5": SimH5Controller,
    "l0": SimL0Controller, "l1": SimL0Controller,
}


def make_target(world: SimulationWorld, device: str, chip: Chip) -> SimSwdTarget:
    """The SWD target model over ``device``'s simulated chip, with the profile's quirks."""
    sim = world.chip(device, chip)
    quirks: dict[str, Any] = dict(world.profile(device).quirks)
    clone = quirks.get("clone")
    model = CONTROLLER_MODELS.get(chip.controller)
    if model is None:
        raise ValueError(f"no simulated {chip.controller} flash controller for {chip.part}")
    controller = model(sim, writes_during_busy="drop" if clone else "stall")
    return SimSwdTarget(sim, controller, core_identity(chip, clone))


def attach_probe(world: SimulationWorld, device: str, chip: Chip,
                 serial: str | None = None, key: str | None = None,
                 port_path: str | None = None) -> SimStLinkProbe:
    """Plug the simulated probe that reaches ``device``, or move an existing one to it.

    ``key`` names the physical probe (the session's resource key: its serial, port
    path or link); devices sharing a key take turns on one probe, as on a bench
    where boards are swapped under one ST-Link, so the probe is re-wired to this
    device's chip. Without a key every device has its own probe.
    """
    backend = world.shared("usb", SimUsbBackend)
    probes: dict[str, SimStLinkProbe] = world.shared("stlink-probes", dict)
    by_device: dict[str, SimStLinkProbe] = world.shared("stlink-probes-by-device", dict)
    with world_lock(world):
        probe = probes.get(key or f"device:{device}")
        if probe is None and port_path:
            # One probe per USB port: a link naming the port finds the one plugged there.
            probe = next((p for p in probes.values() if p.port_path == port_path), None)
            if probe is not None:
                probes[key or f"device:{device}"] = probe
                if probe.device != device:
                    probe.target = make_target(world, device, chip)
                    probe.device = device
        if probe is None:
            probe = _build_probe(world, backend, device, chip, serial, port_path)
            probes[key or f"device:{device}"] = probe
            probe.backend = backend
            sim_hardware(world).attach_powered(f"probe:{key or device}", probe)  # its hub port
        elif probe.device != device:
            probe.target = make_target(world, device, chip)
            probe.device = device
        if probe.dropped:
            probe.reenumerate()
            backend.plug(probe)
        by_device[device] = probe
        return probe


def probe_for(world: SimulationWorld, device: str) -> SimStLinkProbe:
    """The probe last attached to ``device`` (tests and benchmarks read its counters)."""
    by_device: dict[str, SimStLinkProbe] = world.shared("stlink-probes-by-device", dict)
    return by_device[device]


def world_lock(world: SimulationWorld) -> threading.Lock:
    lock: threading.Lock = world.shared("stlink-probes-lock", threading.Lock)
    return lock


def _build_probe(world: SimulationWorld, backend: SimUsbBackend, device: str, chip: Chip,
                 serial: str | None, port_path: str | None = None) -> SimStLinkProbe:
    quirks: dict[str, Any] = dict(world.profile(device).quirks)
    target = make_target(world, device, chip)
    number = sum(isinstance(d, SimStLinkProbe) for d in backend.devices) + 1
    bus = 1
    ports: tuple[int, ...] = (4, number)
    path = quirks.get("port-path") or port_path
    if path:
        bus_text, _, port_text = str(path).partition("-")
        bus, ports = int(bus_text), tuple(int(p) for p in port_text.split("."))
    name = quirks.get("serial") or serial or derive_probe_serial(f"{world.seed}:{device}")
    voltage = float(quirks.get("target-voltage", 3.3))
    kind = str(quirks.get("probe", "v2"))
    if kind == "v1":
        probe: SimStLinkProbe = SimStLinkV1(target, serial=str(name), port_numbers=ports,
                                            target_voltage=voltage)
    else:
        if kind not in PROBE_MODELS:
            raise ValueError(f"unknown simulated probe {kind!r}; use v1, v2, v2-1 or v3")
        probe = SimStLinkProbe(PROBE_MODELS[kind], target, serial=str(name),
                               binary_serial=bool(quirks.get("binary-serial")),
                               port_numbers=ports, bus=bus,
                               jtag_version=quirks.get("firmware"),
                               target_voltage=voltage,
                               wait_replies=int(quirks.get("wait-replies", 0)))
    probe.device = device
    backend.plug(probe)
    return probe
