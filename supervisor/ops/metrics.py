"""Prometheus metrics: a collector that reads, at scrape time, what the gate
counted in plain integers (`GateCounters`) and what the `StateReader` sees.

Nothing is counted on the decision path by prometheus_client itself: the gate
bumps a dict entry and a list slot; this collector turns them into families.
Each supervisor has its own registry (`MetricsRegistry`), so two in one
process (tests, a library user's) never mix counts.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator

from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from supervisor.channels.gate_counters import LATENCY_BUCKETS_S, GateCounters
from supervisor.core.lockouts import account_lockouts
from supervisor.gate import GateView
from supervisor.ops.state import RISK_LEVELS, StateReader
from supervisor.version import __version__

__all__ = ["CONTENT_TYPE", "GateCollector", "MetricsRegistry"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MAX_INSTANCES = 64  # series per desk: more instances than this are not shown one by one

_SEED_COUNTERS = (
    ("allow", "risk_gate_allows", "Orders allowed unchanged."),
    ("block", "risk_gate_blocks", "Orders blocked."),
    ("scale_down", "risk_gate_scale_downs", "Orders allowed at a smaller quantity."),
)


class GateCollector(Collector):
    def __init__(self, reader: StateReader, counters: GateCounters | None) -> None:
        self._reader = reader
        self._counters = counters

    def collect(self) -> Iterator[Metric]:
        cfg = self._reader.config
        build = GaugeMetricFamily(
            "risk_gate_build_info",
            "1, labelled with riskgate's version, the Python it runs on, the store backend and instance name.",
            labels=("version", "python", "store", "instance_name"),  # "instance" is Prometheus' own label
        )
        build.add_metric((__version__, platform.python_version(), cfg.store.backend, cfg.instance.name), 1.0)
        yield build
        yield from self._decisions()
        yield from self._sources()
        yield from self._accounts()
        yield from self._instances()

    def _decisions(self) -> Iterator[Metric]:
        if self._counters is None:
            return
        decisions, buckets, latency_sum = self._counters.snapshot()
        family = CounterMetricFamily(
            "risk_gate_decisions",
            "Decisions by outcome, reason code and account.",
            labels=("decision", "reason_code", "account"),
        )
        by_decision = {"allow": 0, "block": 0, "scale_down": 0}
        for (decision, code, account), n in sorted(decisions.items()):
            family.add_metric((decision, str(code), account), n)
            by_decision[decision] = by_decision.get(decision, 0) + n
        yield family
        for decision, name, text in _SEED_COUNTERS:
            yield CounterMetricFamily(name, text, value=by_decision[decision])
        yield CounterMetricFamily(
            "risk_gate_collar_unreferenced",
            "Orders let through with no reference price for the collar (collar_missing_reference = allow).",
            value=self._counters.collar_unreferenced,
        )
        cumulative, total = [], 0
        for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), buckets, strict=True):
            total += n
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), total))
        yield HistogramMetricFamily(
            "risk_gate_evaluate_latency_seconds",
            "From the caller's request to the gate's answer (queueing and deciding).",
            buckets=cumulative,
            sum_value=latency_sum,
        )

    def _sources(self) -> Iterator[Metric]:
        reader = self._reader
        runtime_view = reader.sources_now()
        age = GaugeMetricFamily(
            "risk_gate_source_age_seconds", "Age of the latest state of each source.", labels=("source",)
        )
        up = GaugeMetricFamily(
            "risk_gate_source_up", "1 when the source's state is fresh enough to decide on.", labels=("source",)
        )
        for name, src in runtime_view.items():
            if src["age_s"] is not None:
                age.add_metric((name,), src["age_s"])
            up.add_metric((name,), 1.0 if src["fresh"] else 0.0)
        yield age
        yield up
        ess = reader.ess_active()
        yield GaugeMetricFamily(
            "risk_gate_ess_active",
            "1 while an emergency stop is active (unknown counts as active).",
            value=0.0 if ess is False else 1.0,
        )
        yield GaugeMetricFamily(
            "risk_gate_reduce_only",
            "1 while an operator's reduce-only halt holds: orders that grow a position block (REDUCE_ONLY_MODE).",
            value=0.0 if reader.reduce_only() is None else 1.0,
        )
        halts = GaugeMetricFamily(
            "risk_gate_operator_halts",
            "Operator halts holding, by mode (all: every order; reduce_only): one per operator and mode.",
            labels=("mode",),
        )
        for mode, n in reader.operator_halts().items():
            halts.add_metric((mode,), n)
        yield halts
        yield GaugeMetricFamily(
            "risk_gate_ready",
            "1 when every source is fresh and the gate runs.",
            value=0.0 if reader.readiness(runtime_view) else 1.0,
        )
        restarts = CounterMetricFamily("risk_gate_actor_restarts", "Actor restarts by supervision.", labels=("actor",))
        alive = GaugeMetricFamily("risk_gate_actor_up", "1 while the actor runs.", labels=("actor",))
        for row in reader.actor_rows():
            restarts.add_metric((row["actor"],), row["restarts"])
            alive.add_metric((row["actor"],), 1.0 if row["alive"] else 0.0)
        yield restarts
        yield alive
        journal = reader.journal_figures()
        yield GaugeMetricFamily(
            "risk_gate_journal_queued", "Journal records waiting to be written.", value=journal["queued"]
        )
        yield CounterMetricFamily("risk_gate_journal_written", "Journal records written.", value=journal["written"])
        yield CounterMetricFamily("risk_gate_journal_dropped", "Journal records dropped.", value=journal["dropped"])
        yield GaugeMetricFamily(
            "risk_gate_journal_blocking",
            "1 while the journal's failure blocks new orders.",
            value=1.0 if journal["blocking"] else 0.0,
        )

    def _accounts(self) -> Iterator[Metric]:
        view = self._reader.gate_view()
        level = GaugeMetricFamily(
            "risk_gate_risk_level", "Global Risk v3 level: 0 INFO, 1 WARNING, 2 CRITICAL (absent: none yet)."
        )
        if view is not None and view.signal is not None:
            level.add_metric((), RISK_LEVELS[view.signal.risk_level])
        yield level
        reserved = GaugeMetricFamily(
            "risk_gate_reserved_notional_usd",
            "Notional held by approved orders not yet filled or ended.",
            labels=("account",),
        )
        pnl = GaugeMetricFamily(
            "risk_gate_pnl_pct", "PnL % of the period's start equity.", labels=("account", "period")
        )
        equity = GaugeMetricFamily(
            "risk_gate_equity_usd", "Account equity from the latest snapshot.", labels=("account",)
        )
        locked = GaugeMetricFamily(
            "risk_gate_account_lockout",
            "1 for each lockout holding an account (new risk blocked until it lifts), by its code.",
            labels=("account", "code"),
        )
        left = GaugeMetricFamily(
            "risk_gate_account_lockout_seconds_left",
            "Seconds until the lockout lifts by itself at the latest (absent: only an operator lifts it).",
            labels=("account", "code"),
        )
        if view is not None:
            cfg = self._reader.config
            wall = self._reader.wall()
            for name, acct in sorted(view.accounts.items()):
                account = cfg.accounts.accounts.get(name)
                profile = cfg.profiles.get(account.capital_profile) if account is not None else None
                for lock in account_lockouts(acct.state, profile, cfg.periods, wall) if profile is not None else ():
                    locked.add_metric((name, lock.code.value), 1.0)
                    if lock.until is not None:
                        left.add_metric((name, lock.code.value), max(0.0, (lock.until - wall).total_seconds()))
                for terms, until in view.repeat_latches.items():  # repeated order terms refused
                    if terms[0] == name:
                        locked.add_metric((name, "DUPLICATE_ORDER"), 1.0)
                        left.add_metric((name, "DUPLICATE_ORDER"), max(0.0, until - view.monotonic))
                reserved.add_metric((name,), acct.reserved_usd)
                equity.add_metric((name,), acct.state.equity)
                for period, start in (("day", acct.state.day_start_equity), ("week", acct.state.week_start_equity)):
                    if start > 0:
                        pnl.add_metric((name, period), (acct.state.equity - start) / start * 100.0)
        yield reserved
        yield pnl
        yield equity
        yield locked
        yield left
        yield from self._prices(view)

    def _prices(self, view: GateView | None) -> Iterator[Metric]:
        """The price reference per symbol ([prices]): fresh, paused after a spike, pauses so far."""
        if not self._reader.config.prices.enabled:
            return
        fresh = GaugeMetricFamily(
            "risk_gate_price_fresh",
            "1 while the prices source's mark for the symbol is fresh (0: its opening orders block).",
            labels=("symbol",),
        )
        paused = GaugeMetricFamily(
            "risk_gate_price_paused",
            "1 while the symbol is paused after a price spike (opening orders block).",
            labels=("symbol",),
        )
        held = view.prices if view is not None else {}
        cfg = self._reader.config
        for symbol in sorted(set(held) | cfg.priced_symbols):
            found = held.get(symbol)
            now = view.monotonic if view is not None else 0.0
            fresh.add_metric((symbol,), 1.0 if found is not None and now <= found[1] else 0.0)
            paused.add_metric((symbol,), 1.0 if found is not None and now < found[2] else 0.0)
        yield fresh
        yield paused
        if self._counters is not None:
            pauses = CounterMetricFamily(
                "risk_gate_price_pauses", "Pauses after a price spike, by symbol.", labels=("symbol",)
            )
            for symbol, n in sorted(self._counters.price_pauses.items()):
                pauses.add_metric((symbol,), n)
            yield pauses

    def _instances(self) -> Iterator[Metric]:
        """Several instances (store.backend = "postgresql"): each one's state and heartbeat, and
        the budget each leases per cap, as of this instance's last round (no query per scrape)."""
        describe = self._reader.shared_describe
        if describe is None:
            return
        doc = describe()
        states = GaugeMetricFamily(
            "risk_gate_instances", "Instances sharing the store, by state (ready, not ready, silent, stopped, gone).",
            labels=("state",),
        )  # fmt: skip
        beat = GaugeMetricFamily(
            "risk_gate_instance_heartbeat_age_seconds", "Age of each instance's heartbeat.", labels=("instance",)
        )
        leases = GaugeMetricFamily(
            "risk_gate_lease_usd", "Budget each instance leases of each cap.", labels=("instance", "cap")
        )
        counts = dict.fromkeys(("ready", "not ready", "silent", "stopped", "gone"), 0)
        for row in doc["instances"][:_MAX_INSTANCES]:
            counts[row["state"]] = counts.get(row["state"], 0) + 1
            beat.add_metric((row["name"],), row["heartbeat_age_s"])
            for cap, usd in sorted(row["leases_usd"].items()):
                leases.add_metric((row["name"], cap), usd)
        for state, n in counts.items():
            states.add_metric((state,), n)
        yield states
        yield beat
        yield leases


class MetricsRegistry:
    """One supervisor's registry: `exposition()` is the /metrics body."""

    def __init__(self, reader: StateReader, counters: GateCounters | None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GateCollector(reader, counters))
        # The process (CPU, memory, file descriptors, start time) and Python (version, GC).
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        if GC_COLLECTOR is not None:
            GCCollector(registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
