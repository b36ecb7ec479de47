"""Probe: the lease floor (`kept`, the old lease) survives positions growing, so after a
fill both instances keep their full leases re-based on the new positions."""

from __future__ import annotations

from supervisor.clock import FakeClock
from supervisor.core.messages import AccountState, Fill, OrderOutcome, Position
from tests.supervisor.shared.test_invariant import PRICE, RICH, Instance, approved_usd, ask_tiny, config


def _snap(inst, clock, qty):
    held = (Position("SOLUSDT", "binance", qty, PRICE),) if qty else ()
    for acct in ("main", "tiny"):
        inst.gate.post(AccountState(acct, RICH, held if acct == "tiny" else (), RICH, RICH), clock.monotonic())


_ask = ask_tiny


def test_exchange_cap_exceeded_after_fill_and_rounds(migrated_dsn):
    clock = FakeClock()
    cfg = config(migrated_dsn)  # exchange cap 1000, slice 50 %
    a = Instance("a", cfg, clock, migrated_dsn)
    b = Instance("b", cfg, clock, migrated_dsn)
    for i in (a, b):
        _snap(i, clock, 0)
    assert a.keeper.round() and b.keeper.round()  # 500 each
    r = _ask(b, cfg, "b1", 5.0)  # 500 USD
    assert r.decision == "allow", r.reason
    # b's order fills: positions 500 USD, seen by both
    b.gate.post(Fill("tiny", "binance", "SOLUSDT", "buy", 5.0, PRICE, "b1"), clock.monotonic())
    b.gate.post(OrderOutcome("b1", "filled", 5.0, "tiny"), clock.monotonic())
    for i in (a, b):
        _snap(i, clock, 5.0)
    assert b.keeper.round() and a.keeper.round()
    approved = approved_usd((a, b), cfg, "x", 5.0)
    total = 500.0 + approved
    a.store.close()
    b.store.close()
    assert total <= 1000.0 + 1e-6, f"positions 500 + in flight {approved} = {total} > exchange cap 1000"
