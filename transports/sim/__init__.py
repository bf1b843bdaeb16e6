"""Simulated chips and links.

``SimChip`` is an STM32 seen from its pins: NOR flash with the geometry of the
chip database, option bytes, readout protection and a unique ID. Each link has a
front end here that speaks its wire protocol *from the chip's side* (a
bootloader on a pty or a ``flashsim://`` port, an SMBus, a CAN node, a USB
backend), and :mod:`transports.sim.endpoints` hands them to the drivers through
the endpoint seam, so a rehearsal runs the real protocol drivers. Nothing in
this package imports the transports it stands in for.
"""

from __future__ import annotations

from transports.sim.chip import SimChip, SimFlashFault
from transports.sim.clock import SimClock
from transports.sim.faults import Fault, FaultPlan, InjectedFault
from transports.sim.world import SimulationWorld

__all__ = ["Fault", "FaultPlan", "InjectedFault", "SimChip", "SimClock", "SimFlashFault",
           "SimulationWorld"]
