"""The emulator's calls, made without letting go of the interpreter lock.

``unicorn``'s Python binding calls its C library through :mod:`ctypes`, which
releases the GIL for every foreign call. A simulated core makes such calls to
set up its engine (map memory, hook the bus) and to start each slice, and the
library calls back into Python (a bus cycle handed to the simulated flash
controller) once per load or store outside SRAM; every callback must take the
GIL back. With one simulated target that costs nothing. In a rehearsal with
dozens of probes, each of those re-takes waits behind every other runnable
thread: a CRC run of 2,048 flash loads that needs 1.5 ms of CPU took a median
50 ms and up to 1.3 s of wall time, making an engine up to 240 ms, and the
target's simulated clock counted the wait as time (docs/architecture.md,
"Simulated time").

:func:`hold_the_gil` points the binding at a :class:`ctypes.PyDLL` view of the
same library, whose calls keep the GIL: callbacks then find it already held.
The work done is identical (the same C functions, with the prototypes the
binding gave them, on the same engine handles); only the lock hand-offs go.
Where the binding is laid out differently (a future release), nothing is
changed and its calls let the GIL go as before.
"""

from __future__ import annotations

import ctypes
import threading

__all__ = ["hold_the_gil"]

_SWAPPED: list[bool] = []
_SWAP_LOCK = threading.Lock()


def hold_the_gil() -> bool:
    """Make every call of the unicorn binding keep the GIL (once); True where it does."""
    with _SWAP_LOCK:
        if not _SWAPPED:
            _SWAPPED.append(_swap())
        return _SWAPPED[0]


def _swap() -> bool:
    try:
        from unicorn.unicorn_py3 import unicorn as binding

        loaded = binding.uclib
        held = ctypes.PyDLL(loaded._name, handle=loaded._handle)
        for name, function in list(vars(loaded).items()):
            if isinstance(function, loaded._FuncPtr):
                twin = getattr(held, name)
                twin.argtypes = function.argtypes
                twin.restype = function.restype
        binding.uclib = held
    except (ImportError, AttributeError, OSError, TypeError):
        return False
    return True

