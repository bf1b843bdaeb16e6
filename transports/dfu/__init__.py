"""USB DFU: the STM32 ROM bootloader with ST's DfuSe extensions (AN3156).

``usb`` finds and selects the device and parses its descriptors, ``layout``
its memory-layout strings, ``protocol`` the DFU class requests and DfuSe
commands, ``identity`` confirms the chip, ``transport`` is the session the
runner drives.
"""

from __future__ import annotations

from transports.dfu.transport import DfuTransport

__all__ = ["DfuTransport"]
