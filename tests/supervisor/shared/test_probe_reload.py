"""Probe: a reload that lowers a cap keeps the leases granted under the old cap."""

from __future__ import annotations

from supervisor.clock import FakeClock
from supervisor.core.messages import AccountState, ConfigChanged
from tests.helpers import make_config
from tests.supervisor.shared.test_invariant import PRICE, RICH, Instance, ask_tiny, config

_ask = ask_tiny


def test_lowered_cap_exceeded_in_aggregate(migrated_dsn):
    clock = FakeClock()
    cfg = config(migrated_dsn)  # exchange cap 1000, slice 50 %
    a = Instance("a", cfg, clock, migrated_dsn)
    b = Instance("b", cfg, clock, migrated_dsn)
    for i in (a, b):
        for acct in ("main", "tiny"):
            i.gate.post(AccountState(acct, RICH, (), RICH, RICH), clock.monotonic())
    assert a.keeper.round() and b.keeper.round()  # 500 each
    low = make_config(
        store={"backend": "postgresql", "dsn": migrated_dsn, "lease_slice_pct": 50.0},
        gate={"max_orders_per_s": 10**6, "max_messages_per_s": 10**6, "max_repeats": 10**6},
        accounts={
            "main": {"exchange": "binance", "capital_profile": "normal", "max_notional_usd": 700.0},
            "tiny": {"exchange": "binance", "capital_profile": "aggressive"},
        },
        exchanges={"binance": {"max_notional_usd": 400.0}, "bybit": {}},
    )
    for i in (a, b):  # the reload reaches both gates and keepers
        i.gate.post(ConfigChanged(low), clock.monotonic())
        i.keeper.reconfigure(low)
    approved = 0.0
    for n, inst in enumerate((a, b)):
        r = _ask(inst, low, f"x{n}", 4.0)
        if r.decision != "block":
            approved += r.adjusted_quantity * PRICE
    a.store.close()
    b.store.close()
    assert approved <= 400.0 + 1e-6, f"approved {approved} after lowering the exchange cap to 400"


def test_lowered_cap_exceeded_even_after_rounds(migrated_dsn):
    clock = FakeClock()
    cfg = config(migrated_dsn)
    a = Instance("a", cfg, clock, migrated_dsn)
    b = Instance("b", cfg, clock, migrated_dsn)
    for i in (a, b):
        for acct in ("main", "tiny"):
            i.gate.post(AccountState(acct, RICH, (), RICH, RICH), clock.monotonic())
    assert a.keeper.round() and b.keeper.round()
    low = make_config(
        store={"backend": "postgresql", "dsn": migrated_dsn, "lease_slice_pct": 50.0},
        gate={"max_orders_per_s": 10**6, "max_messages_per_s": 10**6, "max_repeats": 10**6},
        accounts={
            "main": {"exchange": "binance", "capital_profile": "normal", "max_notional_usd": 700.0},
            "tiny": {"exchange": "binance", "capital_profile": "aggressive"},
        },
        exchanges={"binance": {"max_notional_usd": 400.0}, "bybit": {}},
    )
    for i in (a, b):
        i.gate.post(ConfigChanged(low), clock.monotonic())
        i.keeper.reconfigure(low)
    assert a.keeper.round() and b.keeper.round()  # both renew under the new cap
    approved = 0.0
    for n, inst in enumerate((a, b)):
        r = _ask(inst, low, f"y{n}", 4.0)
        if r.decision != "block":
            approved += r.adjusted_quantity * PRICE
    a.store.close()
    b.store.close()
    assert approved <= 400.0 + 1e-6, f"approved {approved} after lowering the cap to 400 and a round each"
