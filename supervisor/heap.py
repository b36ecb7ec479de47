"""The process's memory: freed pages given back to the operating system, and the collector's pace.

When many reservations end at once (a burst of orders held for `reservation_ttl_s`, then
expired), Python frees their objects but the C library keeps the pages: the process's RSS
stays at its peak (bench section 12: +114 MB after 100,000 expired, +24 MB after a trim).
glibc's `malloc_trim(0)` returns what is free. Called by the gate's housekeeping, outside
its lock (ctypes releases the GIL for the call), never on the decision path.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable

__all__ = ["can_give_back", "give_back", "pace_collector"]


def _find_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError):  # no glibc (musl, macOS): nothing to call
        return None
    return trim


_TRIM = _find_trim()


def can_give_back() -> bool:
    """Whether this C library can return freed pages (glibc)."""
    return _TRIM is not None


def give_back() -> bool:
    """Return the C library's free pages to the OS; False where it cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


_own_young: int | None = None  # the process's young threshold before riskgate first set its own


def pace_collector(young: int) -> None:
    """Python's cyclic collector looks at the young generation every `young` net
    allocations (`gate.gc_young_threshold`). Python's 700 means a young collection
    every ~40 decisions, and the older ones often enough to walk every held
    reservation: at 20,000, 7-19 % more decisions per second with 1 to 16 callers,
    and a shorter p99 (bench/NOTES.md). Process-wide: it stays set after riskgate
    stops. 0 gives the process back the threshold it had before riskgate first set
    one (or leaves it alone); a process whose automatic collection is off
    (threshold 0) keeps it off."""
    global _own_young  # one per process, as the setting itself
    current, middle, old = gc.get_threshold()
    if current == 0:
        return  # the process turned automatic collection off (riskgate never does): not ours to turn on
    if young > 0:
        if _own_young is None:
            _own_young = current
        gc.set_threshold(young, middle, old)
    elif _own_young is not None:
        gc.set_threshold(_own_young, middle, old)
        _own_young = None
