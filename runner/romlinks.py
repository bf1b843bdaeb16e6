"""Which links can reach a part's ROM bootloader, from the chip data (AN2606).

A ``uart``, ``i2c``, ``can`` or ``dfu`` link talks to the system bootloader,
so it reaches a part only if that part's ROM has the interface; an ``i2c``
link also needs the bootloader's slave address, which the chip data records
for some lines only (the link's ``address`` option supplies it otherwise).
``stlink`` and ``sim`` links do not go through the ROM. Checked before any
link is opened, so a link that cannot work is a configuration error, never
a chip that "could not be read".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from transports.chips import Chip

__all__ = ["ROM_INTERFACE", "rom_links", "unreachable"]

#: The AN2606 interface each bootloader link kind speaks.
ROM_INTERFACE = {"uart": "usart", "i2c": "i2c", "can": "can", "dfu": "dfu"}


def rom_links(chip: Chip) -> tuple[str, ...]:
    """The link kinds ``chip``'s ROM answers on without further options."""
    offered = chip.bootloader.interfaces
    return tuple(kind for kind, interface in ROM_INTERFACE.items()
                 if interface in offered and (kind != "i2c"
                                              or chip.bootloader.i2c_address is not None))


def unreachable(chip: Chip, kind: str, options: Mapping[str, Any]) -> str | None:
    """Why a ``kind`` link with ``options`` cannot reach ``chip``'s ROM (``None``: it can)."""
    interface = ROM_INTERFACE.get(kind)
    offered = chip.bootloader.interfaces
    if interface is None or not offered:
        return None
    others = ", ".join(k for k in rom_links(chip) if k != kind) or "no other bootloader link"
    instead = f"a link its ROM offers: {others} (or stlink, over SWD)"
    if interface not in offered:
        article = "an" if kind[0] in "aeio" else "a"   # an i2c link, a uart link
        return (f"{chip.part}'s ROM has no {interface.upper()} bootloader (AN2606), so "
                f"{article} {kind} link cannot reach it; use {instead}")
    if kind == "i2c" and options.get("address") is None and chip.bootloader.i2c_address is None:
        return (f"no I2C bootloader address is known for {chip.part} (AN2606), so an i2c link "
                f"without address= cannot reach it; set the link's address, or use {instead}")
    return None
