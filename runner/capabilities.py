"""What one device's link will offer, and what a plan makes of it.

The manifest checker, the compiler, the renderings and the run all decide
here how a step will be done, so that the plan a user reviews says what the
run does: a verify ``auto`` compares by on-target checksum where the link and
chip offer one (:func:`verify_via`), a reset without a mode takes the link's
natural reset (:func:`natural_reset`). Capabilities come from the transport
class for this chip and these options
(:meth:`~transports.base.TransportClass.planned_capabilities`).

When a device's link lacks what a step needs, :func:`missing` says why and
:func:`instead` what the manifest could say instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from runner.model import VerifyMethod
from runner.plan import DevicePlan
from transports.base import Capability, ResetMode, TransportClass, planned_capabilities
from transports.chips import Chip
from transports.registry import load_transport

__all__ = ["RESET_NEEDS", "device_capabilities", "instead", "missing", "natural_reset",
           "planned_for", "verify_via"]

#: Any of these capabilities lets a link reset the chip this way.
RESET_NEEDS: Mapping[ResetMode, tuple[Capability, ...]] = {
    ResetMode.HARDWARE: (Capability.RESET_HARDWARE,),
    ResetMode.SOFTWARE: (Capability.RESET_SOFTWARE,),
    ResetMode.GO: (Capability.GO,),
    ResetMode.HALT: (Capability.RESET_SOFTWARE, Capability.RESET_HARDWARE),
}

#: Why a link of a kind that can do something cannot do it for one device.
_REASONS = {
    Capability.CHECKSUM: "its ROM bootloader lists no Get Checksum",
    Capability.RESET_HARDWARE: "no reset line is wired to NRST (the link's reset option)",
}


def device_capabilities(transport: TransportClass, options: Mapping[str, Any],
                        chip: Chip | None) -> frozenset[Capability]:
    """What a session of ``transport`` with ``chip`` and ``options`` will offer.

    Without a known chip, everything the link kind can offer.
    """
    if chip is None:
        return frozenset(transport.capabilities)
    return planned_capabilities(transport, options, chip)


def planned_for(device: DevicePlan) -> frozenset[Capability]:
    """What the plan counts on ``device``'s session to offer."""
    return device_capabilities(load_transport(device.kind), device.options, device.chip)


def verify_via(method: VerifyMethod, capabilities: frozenset[Capability]) -> str:
    """How a verify step will compare: ``"checksum"`` or ``"readback"``."""
    if method is VerifyMethod.CHECKSUM or (
            method is VerifyMethod.AUTO and Capability.CHECKSUM in capabilities):
        return "checksum"
    return "readback"


def natural_reset(caps: frozenset[Capability]) -> ResetMode | None:
    """The reset a link does when the manifest names none: hardware, else go, else software."""
    for capability, mode in ((Capability.RESET_HARDWARE, ResetMode.HARDWARE),
                             (Capability.GO, ResetMode.GO),
                             (Capability.RESET_SOFTWARE, ResetMode.SOFTWARE)):
        if capability in caps:
            return mode
    return None


def missing(kind: str, part: str | None, every: frozenset[Capability],
            needs: Iterable[Capability]) -> str:
    """Who cannot: ``a uart link`` when the kind never can, else the link to this part and why.

    ``every`` is the kind's whole set (:attr:`TransportClass.capabilities`).
    """
    wanted = [capability for capability in needs if capability in every]
    if not wanted or part is None:
        return f"a {kind} link"
    reasons = [_REASONS[capability] for capability in wanted if capability in _REASONS]
    why = f" ({'; '.join(reasons)})" if reasons else " (not with this chip and these options)"
    return f"a {kind} link to {part}{why}"


def instead(step: str, offered: frozenset[Capability]) -> str:
    """What a ``step`` (a recipe step kind) could ask for that ``offered`` allows."""
    if step == "verify" and Capability.READ in offered:
        return "use verify: {method: readback}, or method auto, which reads back here"
    if step == "reset":
        modes = [mode.value for mode in ResetMode
                 if offered.intersection(RESET_NEEDS[mode])]
        natural = natural_reset(offered)
        if modes and natural is not None:
            return (f"use reset mode {' or '.join(modes)}, or leave the mode out "
                    f"({natural.value} here)")
    return "use another link for this device or drop the step"
