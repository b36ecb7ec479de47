"""GateCounters: what the metrics count of the decisions, in plain integers.

Decisions are counted from the journal's stream, not on the decision path: the
gate hands each decision to the journal once (a `DecisionRecord`), and the
journal's thread counts each record once as it takes it (`count_records`,
by seq: a batch taken again after a failed write, or by a journal's successor,
is not counted twice). A decision the journal's queue had no room for is
counted where it was decided (`count`), so the metrics miss none, and a
reader counts what is still queued before it copies (`snapshot`), so what it
reads is up to the moment. Counting and copying hold `lock`. The object
outlives gate and journal restarts, so counters never go backwards. Labels
are configured account names only (`accounts`, swapped by a reload), every
other account is "other": a hostile order mints no series.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["LATENCY_BUCKETS_S", "GateCounters"]

# Upper bounds of the evaluate-latency histogram, seconds (Prometheus `le`).
LATENCY_BUCKETS_S = (
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


class GateCounters:
    __slots__ = (
        "accounts",
        "collar_unreferenced",
        "counted_through",
        "decisions",
        "latency_buckets",
        "latency_sum",
        "lock",
        "price_pauses",
        "queued",
    )

    def __init__(self, accounts: Iterable[str] = ()) -> None:
        # (decision, reason code, account or "other") -> decisions
        self.decisions: dict[tuple[str, str, str], int] = {}
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)  # the last is +Inf
        self.latency_sum = 0.0
        self.collar_unreferenced = 0  # orders let through without a reference price for the collar
        self.price_pauses: dict[str, int] = {}  # symbol (a configured one) -> pauses after a price spike
        self.accounts = frozenset(accounts)  # the configured accounts: the only labels besides "other"
        self.counted_through = 0  # the journal seq of the last record counted
        self.lock = threading.Lock()
        # The journal's decisions still queued (JournalQueue.count_into): counted before a snapshot.
        self.queued: Callable[[int], Iterable[Any]] | None = None

    def count(self, decision: str, code: str, account: str | None, latency_s: float | None) -> None:
        """One decision; `latency_s` None: answered without the gate (not in the histogram)."""
        with self.lock:
            self._count(decision, code, account, latency_s)

    def _count(self, decision: str, code: str, account: str | None, latency_s: float | None) -> None:
        key = (decision, code, account if account in self.accounts else "other")
        decisions = self.decisions
        decisions[key] = decisions.get(key, 0) + 1
        if latency_s is not None:
            self.latency_buckets[bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
            self.latency_sum += latency_s

    def count_records(self, decisions: Iterable[Any]) -> None:
        """Journaled decisions (`DecisionRecord`s, in seq order), each counted once: those
        whose seq is above `counted_through`, but for the ones marked not `counted` (an answer
        replaced by another record of the same order)."""
        with self.lock:
            through, count = self.counted_through, self._count
            for record in decisions:
                if record.seq <= through:
                    continue
                through = record.seq
                if not record.counted:
                    continue  # replaced by another record of the same order's answer
                result = record.result
                count(result.decision, result.reason_code, record.account, record.latency)
            self.counted_through = through

    def snapshot(self) -> tuple[dict[tuple[str, str, str], int], list[int], float]:
        """Copies to read from another thread: decisions, latency buckets (not cumulative), latency
        sum; the decisions still queued for the journal counted first, so a read is up to the moment."""
        if self.queued is not None:
            self.count_records(self.queued(self.counted_through))
        with self.lock:
            return self.decisions.copy(), self.latency_buckets.copy(), self.latency_sum
