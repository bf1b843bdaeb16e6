"""The emulator's hot calls, made without letting go of the interpreter lock.

``unicorn``'s Python binding calls its C library through :mod:`ctypes`, which
releases the GIL for every foreign call. A simulated core makes one such call
to start each slice, and the library calls back into Python (a bus cycle
handed to the simulated flash controller) once per load or store outside
SRAM; every callback must take the GIL back. With one simulated target that
costs nothing. In a rehearsal with dozens of probes, each of those re-takes
waits behind every other runnable thread, so a CRC run of 2,048 flash loads
that needs 1.5 ms of CPU took a median 50 ms and up to 1.3 s of wall time,
and the target's simulated clock counted the wait as time
(docs/architecture.md, "Simulated time").

Calling the same library functions through a :class:`ctypes.PyDLL` view keeps
the GIL for the whole slice: the callbacks then find it already held. The
work done is identical (the same C functions on the same engine handle); only
the lock hand-offs go. Where the binding does not expose what this needs (a
future release laid out differently), :func:`held_calls` answers ``None`` and
the core uses the binding's own methods.
"""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["BindingCalls", "HeldCalls", "engine_calls", "held_calls"]

_OK = 0


class HeldCalls:
    """``emu_start``/``emu_stop``, register and memory access of one engine, GIL held."""

    def __init__(self, uc: Any, library: ctypes.PyDLL, error: type[Exception]) -> None:
        self._uc = uc
        self._handle = uc._uch
        self._error = error
        self._start = _function(library, "uc_emu_start", ctypes.c_int, ctypes.c_void_p,
                                ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64,
                                ctypes.c_size_t)
        self._stop = _function(library, "uc_emu_stop", ctypes.c_int, ctypes.c_void_p)
        self._reg_read = _function(library, "uc_reg_read", ctypes.c_int, ctypes.c_void_p,
                                   ctypes.c_int, ctypes.c_void_p)
        self._reg_write = _function(library, "uc_reg_write", ctypes.c_int, ctypes.c_void_p,
                                    ctypes.c_int, ctypes.c_void_p)
        self._mem_read = _function(library, "uc_mem_read", ctypes.c_int, ctypes.c_void_p,
                                   ctypes.c_uint64, ctypes.c_char_p, ctypes.c_uint64)
        self._mem_write = _function(library, "uc_mem_write", ctypes.c_int, ctypes.c_void_p,
                                    ctypes.c_uint64, ctypes.c_char_p, ctypes.c_uint64)
        self._value = ctypes.c_uint64()

    def emu_start(self, begin: int, until: int, count: int) -> None:
        """As ``Uc.emu_start``: a hook's exception is raised once the slice has ended."""
        self._uc._hook_exception = None
        status = self._start(self._handle, begin, until, 0, count)
        if status != _OK:
            raise self._error(status)
        if self._uc._hook_exception is not None:
            raise self._uc._hook_exception

    def emu_stop(self) -> None:
        status = self._stop(self._handle)
        if status != _OK:
            raise self._error(status)

    def reg_read(self, register: int) -> int:
        """A 32-bit core register (the M profile has no wider ones)."""
        value = self._value
        value.value = 0
        status = self._reg_read(self._handle, register, ctypes.byref(value))
        if status != _OK:
            raise self._error(status)
        return value.value & 0xFFFFFFFF

    def reg_write(self, register: int, value: int) -> None:
        word = ctypes.c_uint64(value & 0xFFFFFFFF)
        status = self._reg_write(self._handle, register, ctypes.byref(word))
        if status != _OK:
            raise self._error(status)

    def mem_read(self, address: int, size: int) -> bytes:
        buffer = ctypes.create_string_buffer(size)
        status = self._mem_read(self._handle, address, buffer, size)
        if status != _OK:
            raise self._error(status)
        return buffer.raw

    def mem_write(self, address: int, data: bytes) -> None:
        status = self._mem_write(self._handle, address, data, len(data))
        if status != _OK:
            raise self._error(status)


def _function(library: ctypes.PyDLL, name: str, restype: Any, *argtypes: Any) -> Any:
    function = getattr(library, name)
    function.restype = restype
    function.argtypes = argtypes
    return function


_LIBRARY: list[ctypes.PyDLL | None] = []


def _library() -> ctypes.PyDLL | None:
    if not _LIBRARY:
        try:
            from unicorn.unicorn_py3 import unicorn as binding

            loaded = binding.uclib
            _LIBRARY.append(ctypes.PyDLL(loaded._name, handle=loaded._handle))
        except (ImportError, AttributeError, OSError):
            _LIBRARY.append(None)
    return _LIBRARY[0]


def held_calls(uc: Any) -> HeldCalls | None:
    """The GIL-holding calls for engine ``uc``, or None where the binding hides its handle."""
    library = _library()
    if library is None or not hasattr(uc, "_uch") or not hasattr(uc, "_hook_exception"):
        return None
    import unicorn

    try:
        return HeldCalls(uc, library, unicorn.UcError)
    except AttributeError:
        return None


class BindingCalls:
    """The same calls through the binding's own methods (the GIL is let go in each)."""

    def __init__(self, uc: Any) -> None:
        self._uc = uc

    def emu_start(self, begin: int, until: int, count: int) -> None:
        self._uc.emu_start(begin, until, count=count)

    def emu_stop(self) -> None:
        self._uc.emu_stop()

    def reg_read(self, register: int) -> int:
        return int(self._uc.reg_read(register)) & 0xFFFFFFFF

    def reg_write(self, register: int, value: int) -> None:
        self._uc.reg_write(register, value & 0xFFFFFFFF)

    def mem_read(self, address: int, size: int) -> bytes:
        return bytes(self._uc.mem_read(address, size))

    def mem_write(self, address: int, data: bytes) -> None:
        self._uc.mem_write(address, data)


def engine_calls(uc: Any) -> HeldCalls | BindingCalls:
    """The calls a simulated core makes on ``uc``: GIL held where the binding allows."""
    return held_calls(uc) or BindingCalls(uc)
