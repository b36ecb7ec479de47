"""A one-shot reply slot: the gate's answer handed to one waiting thread.

`RiskSupervisor.evaluate` tells the gate an `EvaluateOrder` carrying one of
these as its `reply` and waits on it. It does what pykka's ask future does for
this one case (one value, one waiter, a timeout) with a single lock instead of
a condition variable, which keeps the hand-off cheap on the decision path.
"""

from __future__ import annotations

import _thread
import contextlib
from typing import Generic, TypeVar

__all__ = ["ReplySlot"]

T = TypeVar("T")


class ReplySlot(Generic[T]):
    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._value: T | None = None
        self._lock = _thread.allocate_lock()
        self._lock.acquire()  # held until the answer arrives

    def __call__(self, value: T) -> None:
        """Deliver the answer (from the gate's thread). Later calls are ignored."""
        if self._value is None:
            self._value = value
            with contextlib.suppress(RuntimeError):  # already released: a second answer
                self._lock.release()

    def wait(self, timeout: float) -> T | None:
        """The answer, or None if none arrived within `timeout` seconds."""
        if self._lock.acquire(timeout=timeout):
            return self._value
        return None
