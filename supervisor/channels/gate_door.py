"""GateDoor: the caller's way in to the gate's decision when nothing waits for the gate.

Handing an order to the gate's thread and its answer back costs two thread
wake-ups, and under the GIL more than the decision itself (docs/benchmarks.md:
a bare pykka ask is ~10 µs on one core, ~12-100 µs across cores; the decision
~6 µs). So the gate's decision (`GateActor._on_evaluate`, the same code on the
same state) also runs on the caller's thread, through this door, when that
changes nothing an order could see:

- The gate handles every message holding `lock`, and a caller decides holding
  it: one decision or one state change at a time, as when only the gate's
  thread decided.
- `inbox.pending` counts the gate's messages queued or being handled (counted
  up on the sender's thread before its `tell` returns). A caller decides here
  only when it is 0, checked under the lock; else its order is queued behind
  them. So an order never overtakes state (a signal, a snapshot, a fill, a
  queued order's booking) told before it, by any thread: what was sent before
  `evaluate` was called is applied before the order is decided.
- A stopped or replaced gate shuts its door (`shut`, under the lock: a caller
  deciding now finishes first), and orders go the queued way, which answers
  GATE_UNAVAILABLE.

Nothing else changes: the ESS board is read, reservations booked, the journal
and metrics handed their records exactly as on the gate's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from supervisor.channels.inbox import GateInbox
from supervisor.core.messages import EvaluateOrder, RejectOrder, RiskGateResult

__all__ = ["BUSY", "GateDoor"]

BUSY: Final = "busy"  # the lock was not free within the caller's wait


class GateDoor:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._inbox: GateInbox | None = None
        self._decide: Callable[[EvaluateOrder | RejectOrder], RiskGateResult | None] | None = None
        self._open = False

    def bind(self, inbox: GateInbox, decide: Callable[[EvaluateOrder | RejectOrder], RiskGateResult | None]) -> None:
        """The gate's inbox and its decision (called with `reply=None`, it returns the result)."""
        self._inbox, self._decide = inbox, decide

    def open(self) -> None:
        """Let callers in (once the gate has been fed what it must know first)."""
        with self.lock:
            self._open = self._decide is not None

    def shut(self, timeout: float = 1.0) -> None:
        """No more decisions here. Waits up to `timeout` for one in progress; a
        gate stuck in a handler holds the lock, and then no caller is inside."""
        locked = self.lock.acquire(timeout=timeout)
        self._open = False
        if locked:
            self.lock.release()

    @property
    def is_open(self) -> bool:
        return self._open

    def decide(self, msg: EvaluateOrder | RejectOrder, wait: float | None) -> RiskGateResult | str | None:
        """The gate's answer decided here; None: queue it to the gate instead
        (something is queued there, or the door is shut); BUSY: the lock was
        not free within `wait` seconds (None: do not wait at all, for an event
        loop, which then queues it)."""
        inbox = self._inbox
        if not self._open or inbox is None or inbox.pending:
            return None
        if wait is None:
            if not self.lock.acquire(blocking=False):
                return None
        elif not self.lock.acquire(timeout=wait):
            return BUSY
        try:
            decide = self._decide
            if not self._open or decide is None or inbox.pending:
                return None  # checked again under the lock: a message arrived meanwhile
            return decide(msg)
        finally:
            self.lock.release()
