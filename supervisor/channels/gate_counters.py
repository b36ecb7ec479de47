"""GateCounters: what the gate counts for the metrics, in plain integers.

Only the gate writes, holding its lock (on whichever thread decides:
supervisor.gate), one dict update and one list
increment per decision, no formatting; collectors on other threads read copies
(`dict.copy` and `list.copy` run without releasing the GIL, so a copy is one
consistent moment). The object outlives gate restarts, so counters never go
backwards.
"""

from __future__ import annotations

from bisect import bisect_left

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
    __slots__ = ("collar_unreferenced", "decisions", "latency_buckets", "latency_sum", "price_pauses")

    def __init__(self) -> None:
        # (decision, reason code, account or "other") -> decisions
        self.decisions: dict[tuple[str, str, str], int] = {}
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)  # the last is +Inf
        self.latency_sum = 0.0
        self.collar_unreferenced = 0  # orders let through without a reference price for the collar
        self.price_pauses: dict[str, int] = {}  # symbol (a configured one) -> pauses after a price spike

    def count(self, decision: str, code: str, account: str, latency_s: float | None) -> None:
        """One decision; `latency_s` None: answered without the gate (not in the histogram)."""
        key = (decision, code, account)
        decisions = self.decisions
        decisions[key] = decisions.get(key, 0) + 1
        if latency_s is not None:
            self.latency_buckets[bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
            self.latency_sum += latency_s

    def snapshot(self) -> tuple[dict[tuple[str, str, str], int], list[int], float]:
        """Copies to read from another thread: decisions, latency buckets (not cumulative), latency sum."""
        return self.decisions.copy(), self.latency_buckets.copy(), self.latency_sum
