"""Probe: an order decided between the keeper's usage read and the shrunk lease reaching
the gate spends the old (larger) lease; the grant's floor is the stale in-flight."""

from __future__ import annotations

from supervisor.clock import FakeClock
from supervisor.shared.keeper import StoreKeeper
from tests.helpers import make_config
from tests.supervisor.shared.test_invariant import PRICE, ask_tiny, two_instances


def cfg_of(dsn):
    return make_config(
        store={"backend": "postgresql", "dsn": dsn, "lease_slice_pct": 10.0},
        gate={"max_orders_per_s": 10**6, "max_messages_per_s": 10**6, "max_repeats": 10**6},
        accounts={
            "main": {"exchange": "binance", "capital_profile": "normal"},
            "tiny": {"exchange": "binance", "capital_profile": "aggressive"},
        },
        exchanges={"binance": {"max_notional_usd": 1000.0}, "bybit": {}},
    )


_ask = ask_tiny


def test_order_between_usage_read_and_shrink(migrated_dsn):
    clock = FakeClock()
    cfg = cfg_of(migrated_dsn)
    a, b = two_instances(cfg, clock, migrated_dsn)
    approved = 0.0
    # a grows its lease: busy rounds (spent, then cancelled)
    from supervisor.core.messages import OrderOutcome

    for n in range(4):
        assert a.keeper.round()
        r = _ask(a, cfg, f"w{n}", 9.0)
        if r.decision != "block":
            a.gate.post(OrderOutcome(f"w{n}", "cancelled", 0.0, "tiny"), clock.monotonic())
    assert a.keeper.round()
    lease = a.gate.budget_usage(5.0)[("exchange", "binance")].lease
    assert lease is not None and lease.units >= 800 * 10**6, lease
    # a is idle now (its next round shrinks to its slice); an order arrives on another thread
    # right after the keeper read the usage
    real = a.gate.budget_round
    hit = []

    def usage_then_order(timeout, planner):
        u = real(timeout, planner)  # the read and the shrink, under the gate's lock (the fix)
        if not hit:
            hit.append(1)
            r = _ask(a, cfg, "race", 8.0)  # the first moment another order can be decided
            hit.append(r)
        return u

    k = StoreKeeper(
        cfg,
        clock,
        a.store,
        usage=usage_then_order,
        tell=lambda m: a.gate.post(m, clock.monotonic()),
        adopt=lambda found, ticket: None,
        ready=lambda: True,
        event=lambda *x, **y: None,
    )
    k._last_counts = dict(a.keeper._last_counts)
    assert k.round()
    r = hit[1]
    if r.decision != "block":
        approved += r.adjusted_quantity * PRICE
    for n in range(3):
        assert b.keeper.round()
        r = _ask(b, cfg, f"b{n}", 9.0)
        if r.decision != "block":
            approved += r.adjusted_quantity * PRICE
    a.store.close()
    b.store.close()
    assert approved <= 1000.0 + 1e-6, f"{approved} USD in flight > exchange cap 1000"
