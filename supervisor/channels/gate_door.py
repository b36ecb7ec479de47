"""GateDoor: the caller's way in to the gate's decision when nothing waits for the gate.

Handing an order to the gate's thread and its answer back costs two thread
wake-ups, and under the GIL more than the decision itself (docs/benchmarks.md).
So the gate's decision (the same code on the same state) also runs on the
caller's thread, through this door, when that changes nothing an order could
see:

- The gate handles every message it takes from its inbox holding `lock`
  (pykka's own ones too: a proxy's call, a stop), and a caller decides
  holding it: one decision or one state change at a time, as when only the
  gate's thread decided.
- `inbox.pending` counts every message put in the gate's inbox and not yet
  handled (counted up on the sender's thread before its `tell` returns). A
  caller decides here only when it is 0, checked under the lock; else its
  order is queued behind them. So an order never overtakes anything told or
  asked of the gate before `evaluate` was called, by any thread: state, a
  queued order's booking, a reload, a stop.
- A gate whose handler raised is `suspended` until it handles another message
  (a raise from a tell kills it; pykka marks it stopped only afterwards).
- A stopped or replaced gate shuts its door at once (`shut` never waits: a
  caller still deciding inside finishes, and the gate's own check after the
  decision answers it GATE_UNAVAILABLE if the gate was replaced meanwhile or
  its deadline passed, on the injected clock; what it booked stays booked
  until it expires).

The decision at the door reads the ESS board, books, and hands the journal and
the metrics their records exactly as on the gate's thread; it does no I/O.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

from supervisor.channels.inbox import GateInbox
from supervisor.clock import SystemClock
from supervisor.core.messages import EvaluateOrder, RejectOrder, RiskGateResult

__all__ = ["BUSY", "GateDoor"]

BUSY: Final = "busy"  # the lock was not free within the caller's wait
_REAL = SystemClock()  # the caller's wait is real time, whatever clock is injected


class GateDoor:
    def __init__(self) -> None:
        # Re-entrant, so nothing on the gate's own thread can deadlock it; re-entry never
        # decides: the gate's thread holds it only while handling a message (pending >= 1).
        self.lock = threading.RLock()
        self._inbox: GateInbox | None = None
        self._decide: Callable[[EvaluateOrder | RejectOrder], RiskGateResult | None] | None = None
        self._open = False
        self.suspended = False  # written by the gate's thread, holding the lock

    def bind(self, inbox: GateInbox, decide: Callable[[EvaluateOrder | RejectOrder], RiskGateResult | None]) -> None:
        """The gate's inbox and its decision at the door (returns the result)."""
        self._inbox, self._decide = inbox, decide

    def open(self) -> None:
        """Let callers in (once the gate has been fed what it must know first)."""
        with self.lock:
            self._open = self._decide is not None

    def shut(self) -> None:
        """No more decisions here (never waits; see the module's docstring)."""
        self._open = False

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
        lock = self.lock
        if not lock.acquire(blocking=False):
            if wait is None:
                return None
            # Wait for it holding the GIL's turn, not in the lock: a thread that sleeps in
            # the lock is handed it by the OS while it has no GIL, and then every caller
            # blocks on every decision (a convoy: ~4x fewer decisions with 4 callers).
            ends = _REAL.monotonic() + wait
            while not lock.acquire(blocking=False):
                if _REAL.monotonic() >= ends:
                    return BUSY
                time.sleep(0)  # lets the holder run (releases the GIL)
        try:
            decide = self._decide
            if not self._open or self.suspended or decide is None or inbox.pending:
                return None  # checked again under the lock: a message arrived meanwhile
            return decide(msg)
        finally:
            self.lock.release()
