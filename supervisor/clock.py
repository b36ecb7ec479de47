"""Clocks. The only module that reads the machine's time.

Every other module takes a `Clock` so that tests drive time with `FakeClock`.
`monotonic()` orders events and ages state; `now()` stamps results in UTC.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


_EPOCH_START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday, mid-day


class FakeClock:
    """A clock that moves only when told to. Thread safe.

    `advance(s)` moves both the monotonic and the wall clock; `set(dt)` jumps the
    wall clock (and moves the monotonic clock forward by the same amount, never
    backwards, as a real monotonic clock would).
    """

    def __init__(self, start: datetime | None = None, monotonic: float = 1000.0) -> None:
        start = start or _EPOCH_START
        if start.tzinfo is None:
            raise ValueError("FakeClock start must be timezone-aware")
        self._lock = threading.Lock()
        self._wall = start.astimezone(UTC)
        self._mono = float(monotonic)

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return self._wall

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._mono += seconds
            self._wall += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FakeClock.set needs a timezone-aware datetime")
        with self._lock:
            delta = (when - self._wall).total_seconds()
            self._wall = when.astimezone(UTC)
            self._mono += max(0.0, delta)
