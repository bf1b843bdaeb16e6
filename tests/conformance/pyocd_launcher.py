"""Run pyOCD, unmodified, against simulated ST-Link probes.

Usage: ``python -m tests.conformance.pyocd_launcher --device PART:PROBE -- PYOCD-ARGS``.

pyOCD finds ST-Links with pyusb's ``usb.core.find`` through libusb's backend
(``libusb_package.get_libusb1_backend`` when that package is installed, else
``usb.backend.libusb1.get_backend``). This launcher answers exactly that
lookup with the simulation's pyusb backend, on which it has plugged one probe
per ``--device PART:PROBE`` (probe: v2, v2-1, v3), each wired to a simulated
chip; then it runs pyOCD's own command-line tool with the arguments after
``--``. Nothing of pyOCD is replaced. ``--image FILE`` preloads the first
device's flash; ``--flash-out FILE`` saves it afterwards; ``--facts FILE``
writes what a test compares pyOCD's output with (UID, DBGMCU_IDCODE).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import usb.backend.libusb1

from transports.chips import chip_database
from transports.sim import SimulationWorld
from transports.sim.stlink import attach_probe, probe_for
from transports.sim.usb import SimUsbBackend
from transports.sim.world import DeviceProfile


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pyocd_launcher")
    parser.add_argument("--device", action="append", required=True, help="PART:PROBE")
    parser.add_argument("--image", type=Path)
    parser.add_argument("--flash-out", type=Path)
    parser.add_argument("--facts", type=Path)
    parser.add_argument("pyocd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    pyocd_args = args.pyocd[1:] if args.pyocd[:1] == ["--"] else args.pyocd

    specs = [spec.split(":") for spec in args.device]
    world = SimulationWorld(profiles={f"dut{i}": DeviceProfile(quirks={"probe": probe})
                                      for i, (_part, probe) in enumerate(specs)})
    chips = chip_database()
    for i, (part, _probe) in enumerate(specs):
        attach_probe(world, f"dut{i}", chips.part(part))
    first = world.chips["dut0"]
    if args.image is not None:
        first.program(first.chip.flash.base, args.image.read_bytes(), timed=False)
    if args.facts is not None:
        target = probe_for(world, "dut0").target
        assert target is not None
        args.facts.write_text(json.dumps({
            "uid": first.uid.hex(), "serial": probe_for(world, "dut0").serial,
            "idcode": (target.identity.rev_id << 16) | first.chip.dev_id,
            "idcode_address": first.chip.idcode_address, "uid_address": first.chip.uid_address}))

    backend = world.shared("usb", SimUsbBackend)
    usb.backend.libusb1.get_backend = lambda *args, **kwargs: backend  # pyusb's lookup
    try:
        import libusb_package

        libusb_package.get_libusb1_backend = lambda: backend
    except ImportError:
        pass
    from pyocd.__main__ import PyOCDTool

    status = int(PyOCDTool().run(pyocd_args) or 0)
    if args.flash_out is not None:
        args.flash_out.write_bytes(world.chips["dut0"].flash)
    world.close()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
