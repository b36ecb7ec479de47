"""StoreKeeper: this instance's side of the shared store, one round at a time.

A round (its actor's Poll, every `store.poll_interval_s`, sooner when LISTEN
hears a control change or the gate runs short of budget):

1. reads from the gate, under its lock, per cap, the positions and what is in
   flight, and the approvals (and refusals for want of budget) since the last
   round: the demand, and the order ids the other instances are to learn;
2. plans every cap's lease: what is in flight plus a slice, the larger of
   `store.lease_slice_pct` of the cap and twice the last round's demand
   (`plan`). A lease it shrinks is shrunk in the gate in that same step, before
   the database hears of it, so an answer lost on the way never leaves more
   spendable here than the database counts;
3. heartbeats, renews the leases, sends this instance's approved ids and reads
   the others', the shared halt, the overrides and every instance: one
   statement (`riskgate_round`);
4. hands the others' ids to the gate (duplicates from now on), the shared halt
   and overrides to the operator controls (the halt on the ESS board before
   anything else), then the leases and the time the round began to the gate
   (`SharedState`): the gate blocks opening orders when that time is older than
   `store.max_age_s` (SHARED_STATE_STALE) and spends each lease until it began
   + `lease_ttl_s`, so it ends here before the database gives it back.

A round that fails changes nothing here: the gate's confirmation ages and its
leases run out on their own. So budget moves to where the orders are: an idle
instance's next round asks for its slice only, a busy one's for twice what it
spent; an idle one holds at most its slice beyond one renewal period.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.core.budget import REDUCE, CapKey, cap_keys, cap_name
from supervisor.core.gate_state import to_units
from supervisor.core.messages import DecidedElsewhere, LeaseHeld, SharedState
from supervisor.logs import get_logger
from supervisor.shared.db import SharedStoreError
from supervisor.shared.store import HaltRow, LeaseAsk, Round, SharedStore

__all__ = ["MAX_UNITS", "KeeperStatus", "StoreKeeper", "Usage", "instance_state", "plan"]

log = get_logger("riskgate.shared")


class Usage(Protocol):
    """One cap as the gate holds it (supervisor.gate.BudgetUsage)."""

    @property
    def positions_units(self) -> int: ...
    @property
    def reserved_units(self) -> int: ...
    @property
    def refused_units(self) -> int: ...
    @property
    def lease(self) -> LeaseHeld | None: ...
    @property
    def cap(self) -> float | None: ...
    @property
    def wanted(self) -> int: ...


@dataclass(frozen=True, slots=True)
class KeeperStatus:
    """The last round as ops surfaces show it (never read from the database on request)."""

    ok: bool
    confirmed_age_s: float | None
    error: str | None
    last: Round | None
    held: Mapping[CapKey, LeaseHeld]


# The database holds amounts as BIGINT micro-USD: a cap (or positions) beyond this many
# units counts as this many (a cap of 1e15 USD, "no cap" in practice, is 4.6e12 USD here:
# stricter, never looser).
MAX_UNITS = 2**62
_MAX_UNSENT = 1_000_000  # order ids kept for the store while it does not answer
_CATCH_UP_ROUNDS = 20  # reads of 100,000 ids each before a round gives up confirming


def plan(
    caps: Mapping[CapKey, float],
    usage: Mapping[CapKey, Usage],
    demand: Mapping[CapKey, int],
    slice_pct: float,
) -> tuple[list[LeaseAsk], dict[CapKey, LeaseHeld]]:
    """The leases to ask for, and the leases to hold while asking (each held one
    shrunk to what is asked, never grown: growth waits for the database's word)."""
    asks: list[LeaseAsk] = []
    meanwhile: dict[CapKey, LeaseHeld] = {}
    for key, cap_usd in caps.items():
        u = usage.get(key)
        if u is None:
            continue
        cap_units = min(to_units(cap_usd), MAX_UNITS)
        positions = min(u.positions_units, MAX_UNITS)
        reserved = min(u.reserved_units, MAX_UNITS)
        if key[0] == REDUCE:
            # A position's reduction budget: what is in flight and what orders want to close now,
            # no slice ahead (closing is done once; an idle instance holds none of it).
            want = min(cap_units, reserved + min(max(0, u.wanted), MAX_UNITS))
        else:
            slice_units = max(int(cap_units * slice_pct / 100.0), 2 * max(0, demand.get(key, 0)))
            want = min(cap_units, reserved + slice_units)
        old = u.lease
        kept = 0
        if old is not None and key[0] == REDUCE:
            # A reduction budget: what the position shrank since the grant was closed already.
            shrunk = old.base_units - cap_units
            kept = min(max(0, old.units - (shrunk if shrunk > 0 else 0)), want)
            meanwhile[key] = LeaseHeld(kept, cap_units, old.valid_until)
        elif old is not None:
            # What the old lease still allows, counted from the positions now (their growth since
            # its grant was spent): never more, whatever the database answers, or whether it does.
            # (Keeping the old lease's units on a new base gave that growth back: found by
            # tests/supervisor/shared/test_invariant.py.)
            grown = positions - old.base_units
            kept = min(max(0, old.units - (grown if grown > 0 else 0)), want)
            meanwhile[key] = LeaseHeld(kept, positions, old.valid_until)
        asks.append(LeaseAsk(cap_name(key), cap_units, positions, min(max(reserved, kept), cap_units), want))
    return asks, meanwhile


class StoreKeeper:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        store: SharedStore,
        usage: Callable[[float, Callable[[Mapping[CapKey, Usage], list[tuple[str, str, str, int]]], Any]], Any],
        tell: Callable[[object], None],
        adopt: Callable[[Round, int | None], None],
        ready: Callable[[], bool],
        event: Callable[..., None],
        ticket: Callable[[], int | None] = lambda: None,
    ) -> None:
        """`usage(timeout, planner)` runs `planner` on the gate's caps under its lock and holds
        the leases it returns at once (Gate.budget_round; None: the lock was busy); `tell` posts to
        the gate (the gate link);
        `adopt(found, ticket)` takes up what the round read that the operator controls hold (the
        shared halt: on the ESS board; the overrides), with the `ticket()` the controls gave before
        the round read anything (which of their own writes the read cannot have missed); `ready`
        says whether this instance is ready; `event` journals."""
        self._config = config
        self._clock = clock
        self._store = store
        self._usage = usage
        self._tell = tell
        self._adopt = adopt
        self._ticket = ticket
        self._ready = ready
        self._event = event
        self._lock = threading.Lock()  # one round at a time
        self._last_counts: dict[CapKey, int] = {}
        self._held: dict[CapKey, LeaseHeld] = {}
        self._confirmed: float | None = None
        self._last: Round | None = None
        self._error: str | None = None
        self._failing = False
        self.woken = False  # a wake-up is on its way (set by whoever asks for it)
        # Order ids approved here not yet in the store (kept until a round takes them), and how
        # far this instance has seen the others' (the store's sequence).
        self._unsent: list[tuple[str, str]] = []
        self._seen = 0.0  # the store's clock, epoch seconds: the others' ids read up to then

    def reconfigure(self, config: Config) -> None:
        self._config = config

    def round(self) -> bool:
        """One round; False if it failed (said once per outage, journaled)."""
        with self._lock:
            self.woken = False
            return self._round()

    def _round(self) -> bool:
        config = self._config
        store_cfg = config.store
        started = self._clock.monotonic()
        caps = cap_keys(config)

        def planner(
            usage: Mapping[CapKey, Usage], approved: list[tuple[str, str, str, int]]
        ) -> tuple[tuple[list[LeaseAsk], dict[CapKey, int]], Any]:
            for key, u in usage.items():
                if u.cap is not None:  # a position's reduction budget: |position| as its cap
                    caps[key] = u.cap
            spent: dict[CapKey, int] = {}
            for account, order_id, exchange, units in approved:
                if len(self._unsent) < _MAX_UNSENT:
                    self._unsent.append((account, order_id))
                for key in (("exchange", exchange), ("account", account)):
                    spent[key] = spent.get(key, 0) + units
            counts = {k: u.refused_units for k, u in usage.items()}
            demand = {k: spent.get(k, 0) + n - self._last_counts.get(k, n) for k, n in counts.items()}
            asks, meanwhile = plan(caps, usage, demand, store_cfg.lease_slice_pct)
            self._held = dict(meanwhile)
            return (asks, counts), meanwhile  # held by the gate before it decides anything else

        planned = self._usage(store_cfg.timeout_s, planner)
        if planned is None:
            return self._failed("the gate's lock was busy: no usage read")
        asks, counts = planned
        ticket = self._ticket()  # before the read: the controls' writes made up to now are in it
        try:
            result = self._store.round(asks, self._ready(), self._unsent, self._seen, config.gate.duplicate_window_s)
        except SharedStoreError as exc:
            return self._failed(str(exc))
        self._unsent = []
        for _ in range(_CATCH_UP_ROUNDS):
            self._seen = result.decided_upto  # the store's clock: never a row's (a row far ahead would blind)
            if result.decided:  # before the leases: a replay through this instance blocks from now on
                self._tell(DecidedElsewhere(tuple(result.decided)))
            if not result.decided_more:
                break
            try:  # more ids waiting than one round reads: read on before confirming anything
                result = self._store.round(asks, self._ready(), (), self._seen, config.gate.duplicate_window_s, 0.0)
            except SharedStoreError as exc:
                return self._failed(str(exc))
        else:
            return self._failed("still reading the other instances' order ids: not confirmed yet")
        self._last_counts = counts
        by_name = {cap_name(k): k for k in caps}
        valid_until = started + store_cfg.lease_ttl_s
        held: dict[CapKey, LeaseHeld] = {}
        for ask in asks:
            key = by_name[ask.cap]
            # Never more than was asked for, whatever the database answers (a replaced function).
            granted = max(0, min(result.granted.get(ask.cap, 0), ask.want_units, ask.cap_units))
            base = ask.cap_units if key[0] == REDUCE else ask.positions_units  # a reduction: |position| then
            held[key] = LeaseHeld(granted, base, valid_until)
        self._adopt(result, ticket)  # the halt on the board before the gate hears the state is confirmed
        self._tell(SharedState(started, held, config))
        self._held = held
        self._confirmed = started
        self._last = result
        if self._failing:
            self._failing = False
            log.info("shared_store_recovered")
            self._event("shared_store_recovered", "store")
        self._error = None
        return True

    def _failed(self, why: str) -> bool:
        self._error = why
        if not self._failing:
            self._failing = True
            log.error("shared_store_failed", error=why)
            self._event("shared_store_failed", "store", error=why[:300])
        return False

    def status(self) -> KeeperStatus:
        confirmed = self._confirmed
        age = None if confirmed is None else self._clock.monotonic() - confirmed
        return KeeperStatus(self._error is None and confirmed is not None, age, self._error, self._last,
                            dict(self._held))  # fmt: skip

    def leave(self, in_flight: Mapping[CapKey, int]) -> None:
        """Return every lease but what this instance's orders still hold in flight (it may be
        filled yet: kept for gate.reservation_ttl_s, as the gate itself would have), and mark
        this instance stopped (its stop)."""
        keep = {cap_name(k): max(0, n) for k, n in in_flight.items() if n > 0}
        with self._lock:
            try:
                self._store.leave(keep, self._config.gate.reservation_ttl_s)
            except SharedStoreError as exc:
                log.warning("shared_store_leave_failed", error=str(exc), effect="leases return after their TTL")

    def describe(self) -> dict[str, Any]:
        """For /v1/state and `riskgate instances`: every instance, its heartbeat age,
        its leases and ready state, as of the last round."""
        st = self.status()
        last = st.last
        ttl = self._config.store.lease_ttl_s
        instances: list[dict[str, Any]] = []
        if last is not None:
            leases: dict[str, dict[str, float]] = {}
            for lease in last.leases:
                if not lease.cap.startswith(REDUCE + ":"):  # a reduction budget is a quantity, not USD
                    leases.setdefault(lease.instance, {})[lease.cap] = lease.units / 1_000_000
            for row in last.instances:
                age = row.heartbeat_age_s + (st.confirmed_age_s or 0.0)
                state = instance_state(row.stopped, row.ready, age, self._config.store.max_age_s, ttl)
                instances.append({
                    "name": row.name, "host": row.host, "pid": row.pid, "version": row.version,
                    "heartbeat_age_s": round(age, 3), "state": state, "leases_usd": leases.get(row.name, {}),
                    "this": row.name == self._config.instance.name,
                })  # fmt: skip
        return {
            "backend": "postgresql",
            "instance": self._config.instance.name,
            "confirmed": st.ok,
            "confirmed_age_s": None if st.confirmed_age_s is None else round(st.confirmed_age_s, 3),
            "max_age_s": self._config.store.max_age_s,
            "error": st.error,
            "shared_halt": None if last is None else _halt_doc(last.halt),
            "leases_usd": {cap_name(k): lease.units / 1_000_000 for k, lease in st.held.items() if k[0] != REDUCE},
            # The positions' reduction budgets this instance holds, in quantity.
            "reductions": {k[1]: lease.units / 1_000_000 for k, lease in st.held.items() if k[0] == REDUCE},
            "instances": instances,
        }


def instance_state(stopped: bool, ready: bool, age: float, max_age_s: float, ttl_s: float) -> str:
    """stopped (it said so), gone (silent past the lease TTL: its leases are back), silent (no
    heartbeat within store.max_age_s: its own orders block by now), else ready or not ready."""
    if stopped:
        return "stopped"
    if age > ttl_s:
        return "gone"
    if age > max_age_s:
        return "silent"
    return "ready" if ready else "not ready"


def _halt_doc(halt: HaltRow) -> dict[str, Any]:
    return {"active": halt.active, "by": halt.by, "reason": halt.reason, "since": halt.since,
            "through": halt.instance}  # fmt: skip
