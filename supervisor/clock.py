"""Clocks. The only module that reads the machine's time.

Every other module takes a `Clock` so that tests drive time with `FakeClock`.
`monotonic()` orders events and ages state; `now()` stamps results in UTC;
`call_every()` drives periodic work (polls, health logs): a thread on the
system clock, `advance()`/`set()` on the fake one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock", "Timer"]

_log = logging.getLogger("riskgate.clock")  # stdlib: the clock sits below the structlog set-up


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...

    def call_every(self, interval_s: float, fn: Callable[[], None], name: str = "timer") -> Timer: ...


class _ThreadTimer:
    """Calls `fn` every `interval_s` on a daemon thread until cancelled."""

    def __init__(self, interval_s: float, fn: Callable[[], None], name: str) -> None:
        self._interval = interval_s
        self._fn = fn
        self._name = name
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"timer-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_due = time.monotonic() + self._interval
        while not self._cancelled.wait(max(0.0, next_due - time.monotonic())):
            try:
                self._fn()
            except Exception:  # noqa: BLE001 - a tick must never kill the timer, nor fail unseen
                _log.exception("timer_tick_failed: %s", self._name)
            next_due += self._interval
            if next_due < time.monotonic():  # fell behind (suspend, overload): skip, don't burst
                next_due = time.monotonic() + self._interval

    def cancel(self) -> None:
        self._cancelled.set()


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_every(self, interval_s: float, fn: Callable[[], None], name: str = "timer") -> Timer:
        return _ThreadTimer(interval_s, fn, name)


_EPOCH_START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday, mid-day


class _FakeTimer:
    __slots__ = ("cancelled", "due", "fn", "interval")

    def __init__(self, due: float, interval: float, fn: Callable[[], None]) -> None:
        self.due = due
        self.interval = interval
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when told to. Thread safe.

    `advance(s)` moves both the monotonic and the wall clock; `set(dt)` jumps the
    wall clock (and moves the monotonic clock forward by the same amount, never
    backwards, as a real monotonic clock would). Timers that fall due fire once
    on the advancing thread, after the move (a long jump does not replay every
    missed tick, as a suspended machine would not).
    """

    def __init__(self, start: datetime | None = None, monotonic: float = 1000.0) -> None:
        start = start or _EPOCH_START
        if start.tzinfo is None:
            raise ValueError("FakeClock start must be timezone-aware")
        self._lock = threading.Lock()
        self._wall = start.astimezone(UTC)
        self._mono = float(monotonic)
        self._timers: list[_FakeTimer] = []

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return self._wall

    def call_every(self, interval_s: float, fn: Callable[[], None], name: str = "timer") -> Timer:
        if interval_s <= 0:
            raise ValueError("interval must be > 0")
        timer = _FakeTimer(self._mono + interval_s, interval_s, fn)
        with self._lock:
            self._timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._mono += seconds
            self._wall += timedelta(seconds=seconds)
        self._fire_due()

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FakeClock.set needs a timezone-aware datetime")
        with self._lock:
            delta = (when - self._wall).total_seconds()
            self._wall = when.astimezone(UTC)
            self._mono += max(0.0, delta)
        self._fire_due()

    def _fire_due(self) -> None:
        with self._lock:
            self._timers = [t for t in self._timers if not t.cancelled]
            due = [t for t in self._timers if t.due <= self._mono]
            for t in due:
                t.due = self._mono + t.interval
        for t in due:
            t.fn()
