"""Flash-controller drivers, one per controller kind of the chip database."""

from __future__ import annotations

from transports.stlink.flash.base import FlashDriver
from transports.stlink.flash.f1 import F1FlashDriver
from transports.stlink.flash.f4 import F4FlashDriver
from transports.stlink.flash.h5 import H5FlashDriver
from transports.stlink.flash.h7 import H7FlashDriver
from transports.stlink.flash.l0 import L0FlashDriver
from transports.stlink.flash.l4 import L4FlashDriver

__all__ = ["DRIVERS", "FlashDriver", "driver_for"]

#: controller kind → driver class. A kind absent here is refused at connect with a
#: message naming it.
DRIVERS: dict[str, type[FlashDriver]] = {
    "f0": F1FlashDriver, "f1": F1FlashDriver, "f1xl": F1FlashDriver,
    "f2": F4FlashDriver, "f4": F4FlashDriver, "f7": F4FlashDriver,
    "l4": L4FlashDriver, "g0": L4FlashDriver, "g4": L4FlashDriver, "wb": L4FlashDriver,
    "wl": L4FlashDriver, "c0": L4FlashDriver, "l5": L4FlashDriver, "u5": L4FlashDriver,
    "h7": H7FlashDriver, "h7ab": H7FlashDriver, "h5": H5FlashDriver,
    "l0": L0FlashDriver, "l1": L0FlashDriver,
}


def driver_for(controller: str) -> type[FlashDriver] | None:
    return DRIVERS.get(controller)
