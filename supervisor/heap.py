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


def pace_collector(young: int) -> None:
    """Python's cyclic collector looks at the young generation every `young` net
    allocations (`gate.gc_young_threshold`; 0: the process's setting is left alone).
    Python's 700 means a young collection every ~40 decisions, and the older ones
    often enough to walk every held reservation: at 20,000, 10-15 % more decisions
    per second with 1 to 16 callers, and a shorter p99 (bench/NOTES.md). A decision
    makes no reference cycles of its own, so the cycles that wait longer are few.
    Process-wide: it stays set after riskgate stops."""
    if young > 0:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young, middle, old)
