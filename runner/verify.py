"""Verification, done once by the runner for every link.

``auto`` asks the chip for an on-target checksum of the memory, adjacent erase
units' shares together (up to READ_BLOCK bytes), when the session offers
:attr:`Capability.CHECKSUM` (cheap: a few bytes on the wire) and reads back
only what disagrees; ``readback`` reads everything back. A
mismatch is a :class:`VerifyError` naming the first differing address with the
expected and actual bytes there. A checksum that disagrees with a unit whose
bytes then read back right (whole words: no padding involved) proves the
on-target checksum wrong: the rest of the verify reads back, and the caller is
told (``disproved``) so the run warns and stops trusting it.
"""

from __future__ import annotations

from collections.abc import Callable

from runner.errors import PlanError, VerifyError
from runner.memmap import MemoryMap, Segment
from runner.model import VerifyMethod
from runner.plan import VerifyAction
from transports.base import Capability, Progress, Transport
from transports.checksums import compute
from transports.chips import FlashGeometry

__all__ = ["READ_BLOCK", "unit_pieces", "verify_memory"]

#: Read-back block size: large, so per-command overhead stays small.
READ_BLOCK = 64 * 1024
#: Bytes of context reported around a mismatch.
_MISMATCH_CONTEXT = 16

#: ``(bytes done) -> None``; the verify step's cumulative progress.
Advance = Callable[[int], None]
#: Erase units ``(start, end)`` already compared equal, and how (``checksum``/``readback``).
Proven = dict[tuple[int, int], str]
#: Told of a piece whose on-target checksum disagreed with its (right) bytes.
Disproved = Callable[[Segment], None]


def unit_pieces(memory: MemoryMap, geometry: FlashGeometry | None) -> list[Segment]:
    """``memory`` cut at erase-unit boundaries: one piece per unit a segment touches."""
    if geometry is None:
        return list(memory)
    pieces: list[Segment] = []
    for segment in memory:
        if not geometry.contains(segment.address, len(segment)):
            pieces.append(segment)
            continue
        for block in geometry.blocks_covering(segment.address, len(segment)):
            lo, hi = max(block.address, segment.address), min(block.end, segment.end)
            pieces.append(Segment(lo, segment.data[lo - segment.address:hi - segment.address]))
    return pieces


def verify_memory(transport: Transport, action: VerifyAction, *, erased: int, link: str,
                  device: str, advance: Advance, geometry: FlashGeometry | None = None,
                  proven: Proven | None = None, checksums: bool = True,
                  disproved: Disproved | None = None) -> str:
    """Check flash against ``action.memory``; return the method actually used.

    With ``geometry`` the checksums are taken over adjacent erase units' shares
    of the memory, up to READ_BLOCK bytes at a time (per unit when some units
    are ``proven``), so a mismatch is read back over that much only. ``proven``
    holds erase units (start, end) that a skip-unchanged write of this session
    compared whole against this very content and left untouched, with the
    method it used: a piece inside one is not compared again when that method
    is the one this verify would use or a read-back (``verify: {method:
    readback}`` after a checksum comparison reads back). ``checksums`` false:
    the link's checksum is not trusted (an earlier one was proven wrong).

    Raises:
        VerifyError: the flash differs (first mismatching address and bytes).
        PlanError: ``checksum`` was asked of a link that cannot compute one.
    """
    has_checksum = checksums and Capability.CHECKSUM in transport.capabilities
    if action.method is VerifyMethod.CHECKSUM and not has_checksum:
        raise PlanError(f"link {link} cannot compute checksums on the target, so {device} "
                        f"cannot be verified by checksum",
                        hint="use verify method auto or readback")
    use_checksum = has_checksum and action.method is not VerifyMethod.READBACK
    done = 0
    method = "checksum" if use_checksum else "readback"
    pieces = unit_pieces(action.memory, geometry) \
        if use_checksum or proven else list(action.memory)
    if use_checksum and not proven:
        # One on-target run per group of adjacent units, not per unit: a group that
        # disagrees is read back (and a group that reads back right, whole words,
        # proves the checksum wrong as a unit would).
        pieces = [Segment(group[0].address, b"".join(piece.data for piece in group))
                  if len(group) > 1 else group[0] for group in _groups(pieces)]
    for segment in pieces:
        if proven and _is_proven(segment, proven, "checksum" if use_checksum else "readback"):
            done += len(segment)
            advance(done)
            continue
        if use_checksum and _checksum_matches(transport, segment, erased):
            done += len(segment)
            advance(done)
            continue
        if use_checksum:
            method = "checksum+readback"
        _read_back(transport, segment, link=link, device=device,
                   advance=_shifted(advance, done))
        if use_checksum and segment.address % 4 == 0 and len(segment) % 4 == 0:
            use_checksum = False   # the bytes are right, so the checksum was wrong
            if disproved is not None:
                disproved(segment)
        done += len(segment)
        advance(done)
    return method


def _groups(pieces: list[Segment]) -> list[list[Segment]]:
    """``pieces`` in runs of adjacent ones of at most :data:`READ_BLOCK` bytes (a larger
    piece alone); only a run's last piece may end off a word (its padding stays last)."""
    groups: list[list[Segment]] = []
    size = 0
    for piece in pieces:
        last = groups[-1][-1] if groups else None
        if (last is not None and last.end == piece.address and len(last) % 4 == 0
                and size + len(piece) <= READ_BLOCK):
            groups[-1].append(piece)
            size += len(piece)
        else:
            groups.append([piece])
            size = len(piece)
    return groups


def _is_proven(segment: Segment, proven: Proven, method: str) -> bool:
    for (start, end), how in proven.items():
        if start <= segment.address and segment.end <= end:
            return how in ("readback", method)
    return False


def _shifted(advance: Advance, base: int) -> Advance:
    """``advance`` for a part that starts ``base`` bytes into the step."""
    return lambda done: advance(base + done)


def _read_progress(advance: Advance, base: int) -> Progress:
    return lambda done, _total: advance(base + done)


def _checksum_matches(transport: Transport, segment: Segment, erased: int) -> bool:
    reported = transport.checksum(segment.address, len(segment))
    # The CRC unit takes whole words: the tail is padded as the transport pads it.
    padded = segment.data + bytes([erased]) * (-len(segment) % 4)
    return compute(reported.algorithm, padded) == reported.value


def _read_back(transport: Transport, segment: Segment, *, link: str, device: str,
               advance: Advance) -> None:
    for offset in range(0, len(segment), READ_BLOCK):
        expected = segment.data[offset:offset + READ_BLOCK]
        address = segment.address + offset
        actual = transport.read(address, len(expected), _read_progress(advance, offset))
        if actual != expected:
            first = _first_difference(expected, actual)
            at = address + first
            raise VerifyError(
                f"{device}: flash differs from the image at 0x{at:08X} "
                f"(expected {expected[first:first + 1].hex()}, "
                f"read {actual[first:first + 1].hex()})",
                address=at, expected=expected[first:first + _MISMATCH_CONTEXT],
                actual=actual[first:first + _MISMATCH_CONTEXT], transport=link, device=device,
                hint="erase and write again; if it persists the flash may be worn or the "
                     "link corrupting data")


def _first_difference(expected: bytes, actual: bytes) -> int:
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want != got:
            return index
    return min(len(expected), len(actual))
