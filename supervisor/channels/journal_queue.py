"""The journal's inbox: records appended by any thread, drained by the journal actor.

The gate must never wait for the journal, nor format anything for it: per
decision it appends one `DecisionRecord` (a named tuple of references to
frozen objects: the result, the order, the account's book) to a deque. The
journal actor takes records from the left in batches, writes them in one
transaction (group commit), and only then removes them: a journal that dies
mid-batch loses nothing, and its successor writes the batch again (rows are
unique on (run, seq), so a batch written twice is stored once).

The queue is bounded. What happens when it is full, or when the journal
cannot write, is the journal policy's business (`journal.on_failure`); the
gate reads `blocking` at the start of every evaluation. Nothing is dropped
silently: `decision` and `event` say whether they took the record, and drops
are counted.

With `journal.durability = "commit"` a caller whose order was approved waits,
after the decision, until the journal has committed every record queued up to
its answer (`when_committed`): the first waiter asks the journal to flush at
once (`flush_now`), and everyone waiting then rides on that one transaction
(group commit). The decision itself never waits.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from supervisor.channels.gate_counters import GateCounters
from supervisor.core.gate_state import AccountBook
from supervisor.core.messages import OrderRequest, RiskGateResult, RiskSignal
from supervisor.logs import get_logger

log = get_logger("riskgate.journal")

__all__ = [
    "DecisionRecord",
    "EventRecord",
    "InputRecord",
    "JournalQueue",
    "LeasesMeanwhile",
    "Record",
    "RecordsLost",
    "Seeded",
]


class DecisionRecord(NamedTuple):
    """One decision, as the gate (or the facade, for one made before the gate) saw it."""

    seq: int
    result: RiskGateResult
    order: OrderRequest | None  # None: no order could be read
    account: str | None
    signal: RiskSignal | None = None
    book: AccountBook | None = None
    reserved_units: int | None = None  # the account's reserved notional, micro-USD
    mono: float | None = None  # the gate's monotonic time when it decided (None: not decided by the gate)
    latency: float | None = None  # seconds from the request to the decision, for the metrics (None: not timed)
    # False: not counted by the metrics, which count each order's answer once: an approval the gate
    # replaced with GATE_UNAVAILABLE (decided after the caller's timeout), or a JOURNAL_UNAVAILABLE
    # that replaced an approval already counted (journal.durability = "commit").
    counted: bool = True


class EventRecord(NamedTuple):
    """Something that explains decisions: a source failed, ESS changed, an operator acted."""

    seq: int
    when: datetime
    kind: str
    source: str
    account: str | None
    detail: dict[str, Any]


class InputRecord(NamedTuple):
    """What the gate applied to its state (a message, the ESS board's reading, its seed), at
    `mono` (its monotonic time) and `when`: with the decisions, every check can be re-run
    (supervisor.replay). One record per change the gate takes, never one per decision."""

    seq: int
    when: datetime
    mono: float
    message: object
    received: float


class Seeded(NamedTuple):
    """The gate was given the state recalled from the journal as of (mono, wall)."""

    mono: float
    wall: datetime


class RecordsLost(NamedTuple):
    """`records` inputs or decisions were not queued (the queue was full) just before this record:
    a replay cannot rebuild the state from here on, and says so (supervisor.replay)."""

    records: int


class LeasesMeanwhile(NamedTuple):
    """Several instances: the leases a budget round holds while it asks (Gate.budget_round)."""

    leases: dict[tuple[str, str], Any]


Record = DecisionRecord | EventRecord | InputRecord
_new_tuple = tuple.__new__  # a record built without its class's Python-level __new__: this runs per decision


class JournalQueue:
    """Records are `DecisionRecord`s and `EventRecord`s, in the order they were taken (by `seq`)."""

    #: Whether it keeps what it is given (a replay's gate journals nothing: the inputs and the details
    #: of the decisions it would record are not even looked up).
    keeps_records = True

    def __init__(self, max_records: int, block_when_failing: bool) -> None:
        self.run = f"{os.getpid():x}-{os.urandom(4).hex()}"  # this process's records
        self.max_records = max_records
        self.block_when_failing = block_when_failing
        self._items: deque[Record] = deque()
        # Records are taken on many threads (the gate, API threads, the sources, the controls): a seq
        # and its place in the queue are given together, so the queue is always in seq order and
        # "committed up to seq S" means every record up to S was written.
        self._order = threading.Lock()
        self._take, self._give = self._order.acquire, self._order.release
        self._seq = itertools.count(1)
        self._drops = itertools.count(1)
        self.dropped = 0
        self._replay_lost = 0  # inputs and decisions not queued since the last one queued (RecordsLost)
        self.written = 0  # records the journal has written (its own count)
        # source -> (since, cause, detail) of its current failure, for the state API
        self.source_errors: dict[str, tuple[datetime, str, str]] = {}
        self.problem: str | None = None  # why the journal cannot write now, or None
        self.blocking: str | None = None  # why new orders must block now (the policy's verdict), or None
        self.committed = 0  # every record up to this seq is written (or given up as unwritable)
        self.flush_now: Callable[[], None] | None = None  # asks the journal to flush at once (commit mode)
        self._flush_asked = False
        self._commit_lock = threading.Lock()
        self._waiters: list[tuple[int, int, Callable[[], None]]] = []  # (seq, tie-break, call) heap
        self._tickets = itertools.count()
        # The metrics' counters (None: metrics off; see `count_into`).
        self.counters: GateCounters | None = None

    def count_into(self, counters: GateCounters | None) -> None:
        """The metrics' counters count this queue's decisions: the journal's thread counts
        each it takes, a reader of the counters first counts what is still queued, and one
        this queue has no room for is counted where it was decided."""
        self.counters = counters
        if counters is not None:
            counters.queued = self.decisions_after

    # -- producers (any thread) ---------------------------------------------------
    def _full(self) -> bool:
        if len(self._items) >= self.max_records:
            self.dropped = next(self._drops)
            self.blocking = self._verdict(full=True)
            return True
        return False

    def decision(
        self,
        result: RiskGateResult,
        order: OrderRequest | None,
        account: str | None,
        signal: RiskSignal | None = None,
        book: AccountBook | None = None,
        reserved_units: int | None = None,
        mono: float | None = None,
        latency: float | None = None,
        counted: bool = True,
    ) -> int:
        """Append a decision's record; its seq (0 when the queue is full: not queued)."""
        items = self._items
        if len(items) >= self.max_records and self._full():
            self._replay_lost += 1
            if self.counters is not None and counted:
                self.counters.count(result.decision, result.reason_code, account, latency)
            return 0
        # Seq and place in one step: the queue is in seq order, whatever the threads. (acquire and
        # release, not `with`: this runs per decision, and the context manager costs twice as much.)
        self._take()
        try:
            if self._replay_lost:
                self._mark_lost(result.timestamp)
            seq = next(self._seq)
            items.append(
                _new_tuple(
                    DecisionRecord, (seq, result, order, account, signal, book, reserved_units, mono, latency, counted)
                )
            )
        finally:
            self._give()
        return seq

    def event(self, when: datetime, kind: str, source: str = "", account: str | None = None, **detail: Any) -> bool:
        """An event that explains decisions (a source failed, ESS changed, ...).
        A source's failure is also kept as its last error until it recovers."""
        if kind == "source_failed":
            self.source_errors[source] = (when, str(detail.get("cause", "")), str(detail.get("detail", "")))
        elif kind == "source_recovered":
            self.source_errors.pop(source, None)
        if self._full():
            return False
        with self._order:
            seq = next(self._seq)
            self._items.append(EventRecord(seq, when, kind, source, account, detail))
        return True

    def input(self, when: datetime, mono: float, message: object, received: float) -> bool:
        """What the gate applied to its state (InputRecord); False when the queue is full (the
        next record queued is then preceded by a RecordsLost: a replay stops trusting the run)."""
        if len(self._items) >= self.max_records and self._full():
            self._replay_lost += 1
            return False
        self._take()
        try:
            if self._replay_lost:
                self._mark_lost(when)
            self._items.append(_new_tuple(InputRecord, (next(self._seq), when, mono, message, received)))
        finally:
            self._give()
        return True

    def _mark_lost(self, when: datetime) -> None:
        """Holding the order lock: a RecordsLost for what was not queued, before the next record."""
        lost, self._replay_lost = self._replay_lost, 0
        self._items.append(_new_tuple(InputRecord, (next(self._seq), when, 0.0, RecordsLost(lost), 0.0)))

    def when_committed(self, seq: int, call: Callable[[], None]) -> bool:
        """True if every record up to `seq` is committed already; else `call()` runs
        (on the journal's thread) once they are, and a flush is asked for now."""
        with self._commit_lock:
            if self.committed >= seq:
                return True
            heapq.heappush(self._waiters, (seq, next(self._tickets), call))
            ask = not self._flush_asked
            self._flush_asked = True
        flush = self.flush_now
        if ask and flush is not None:
            flush()
        return False

    # -- the journal actor ----------------------------------------------------------
    def flushing(self) -> None:
        """A flush begins: records taken from now on need a flush of their own."""
        with self._commit_lock:
            self._flush_asked = False

    def waiting(self) -> bool:
        return bool(self._waiters)

    def mark_committed(self, seq: int) -> None:
        """Every record up to `seq` is written: wake whoever waited for them."""
        due: list[Callable[[], None]] = []
        with self._commit_lock:
            if seq <= self.committed:
                return
            self.committed = seq
            waiters = self._waiters
            while waiters and waiters[0][0] <= seq:
                due.append(heapq.heappop(waiters)[2])
        for call in due:
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - one waiter gone (its loop closed) must not stop the journal
                log.warning("commit_waiter_failed", error=repr(exc))

    def peek(self, n: int) -> list[Record]:
        """Up to n records from the left, left in place."""
        with self._order:  # not while another thread appends (a deque mutated during iteration)
            return list(itertools.islice(self._items, n))

    def decisions_after(self, seq: int) -> list[DecisionRecord]:
        """The decision records queued after `seq` (for the metrics to catch up with when they
        are read: GateCounters.snapshot), however many: a journal that cannot write keeps up to
        `max_records` queued, and each of them is counted."""
        with self._order:  # only the skip and the copy (C calls) hold the appends back, not the filtering
            items = self._items
            if not items or items[-1].seq <= seq:
                return []
            # Seqs in the queue are consecutive (each is drawn as its record is appended, and records
            # leave from the left only): the first after `seq` is found by arithmetic.
            records = list(itertools.islice(items, max(0, seq - items[0].seq + 1), None))
        return [r for r in records if type(r) is DecisionRecord]

    def remove_through(self, seq: int) -> int:
        """Drop the records from the left up to `seq` (after they were written);
        how many went (none when another writer removed them already)."""
        items = self._items
        gone = 0
        with self._order:
            while items and items[0].seq <= seq:
                items.popleft()
                gone += 1
        return gone

    def set_problem(self, problem: str | None) -> None:
        self.problem = problem
        self.blocking = self._verdict(full=len(self._items) >= self.max_records)

    def _verdict(self, full: bool) -> str | None:
        """Why new orders must block now under the policy, or None."""
        if not self.block_when_failing:
            return None
        if self.problem is not None:
            return f"journal cannot write: {self.problem}"
        if full:
            return f"journal queue full ({self.max_records} records waiting)"
        return None

    def __len__(self) -> int:
        return len(self._items)
