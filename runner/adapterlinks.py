"""The link ``discover --write`` proposes for a found USB-serial, I2C or CAN adapter.

A link is proposed only where its kind's option schema is satisfied by what
discovery read: a USB-serial adapter's ``uart`` link selects its port by the
``/dev/serial/by-path`` name (stable while the cabling is; ttyUSB numbers are
not); an I2C adapter that offers plain I2C gets an ``i2c`` link on its bus (an
SMBus-only one cannot carry the ROM protocol, AN4221); a socketcan interface
a ``can`` link on its channel. An ST-Link's virtual COM port belongs to its
probe and is not proposed. What the adapter cannot tell (how BOOT0 and NRST
are driven, the ROM's I2C address) is named by :func:`to_fill_in`, for the
comment over the added block.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import jsonschema

from runner.found import Found
from transports.registry import load_transport
from transports.stlink.usb import PROBE_KINDS, ST_VID

__all__ = ["ADAPTER_KINDS", "adapter_link", "slug", "to_fill_in"]

#: The found kind → the link kind proposed for it.
ADAPTER_KINDS = {"serial": "uart", "i2c": "i2c", "can": "can"}

#: Per link kind: what a proposed entry leaves for the operator to fill in.
_TO_FILL_IN = {
    "uart": "uart links: set boot0/reset (rts, dtr or a GPIO line) for the ROM's entry",
    "i2c": "i2c links: set address unless the part's chip data has it (AN2606); BOOT0/NRST "
           "wiring",
    "can": "can links: run the interface at 125 kbit/s (AN3154); BOOT0/NRST wiring",
}

_I2C_NODE = re.compile(r"^/dev/i2c-(\d+)$")


def adapter_link(found: Found) -> tuple[str, dict[str, Any]] | None:
    """The name and options of the link for ``found`` (``None``: none is proposed)."""
    options: dict[str, Any]
    if found.kind == "serial":
        if found.vcp_of is not None or (found.vid == ST_VID and found.pid in PROBE_KINDS):
            return None   # an ST-Link's VCP: its probe's link covers the bench position
        if not found.by_path:
            return None
        name, options = f"uart-{slug(found.port_path)}", {"kind": "uart",
                                                           "port": found.by_path}
    elif found.kind == "i2c":
        match = _I2C_NODE.match(found.node or "")
        if found.plain_i2c is not True or match is None:
            return None   # SMBus only, or its functionality unknown
        name, options = f"i2c-{match[1]}", {"kind": "i2c", "bus": int(match[1])}
    elif found.kind == "can":
        if not found.node:
            return None
        name = found.node if found.node.startswith("can") else f"can-{found.node}"
        options = {"kind": "can", "interface": "socketcan", "channel": found.node}
    else:
        return None
    schema = load_transport(str(options["kind"])).options_schema
    validator = jsonschema.validators.validator_for(schema)(schema)
    if not validator.is_valid({k: v for k, v in options.items() if k != "kind"}):
        return None
    return name, options


def to_fill_in(kinds: Iterable[str]) -> list[str]:
    """The comment lines over an added block holding links of ``kinds``."""
    wanted = set(kinds)
    return [_TO_FILL_IN[kind] for kind in ("uart", "i2c", "can") if kind in wanted]


def slug(path: str) -> str:
    """``path`` as a link-name part: ``1-4.2`` → ``1-4-2``."""
    return re.sub(r"[^0-9A-Za-z]+", "-", path).strip("-")
