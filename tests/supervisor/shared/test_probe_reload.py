"""Probe: a reload that lowers a cap keeps the leases granted under the old cap."""

from __future__ import annotations

from supervisor.clock import FakeClock
from supervisor.core.messages import ConfigChanged
from tests.supervisor.shared.test_invariant import approved_usd, config, two_instances


def test_lowered_cap_exceeded_in_aggregate(migrated_dsn):
    clock = FakeClock()
    cfg = config(migrated_dsn)  # exchange cap 1000, slice 50 %
    a, b = two_instances(cfg, clock, migrated_dsn)
    assert a.keeper.round() and b.keeper.round()  # 500 each
    low = config(migrated_dsn, exchange_cap=400.0)
    for i in (a, b):  # the reload reaches both gates and keepers
        i.gate.post(ConfigChanged(low), clock.monotonic())
        i.keeper.reconfigure(low)
    approved = approved_usd((a, b), low, "x", 4.0)
    a.store.close()
    b.store.close()
    assert approved <= 400.0 + 1e-6, f"approved {approved} after lowering the exchange cap to 400"


def test_lowered_cap_exceeded_even_after_rounds(migrated_dsn):
    clock = FakeClock()
    cfg = config(migrated_dsn)
    a, b = two_instances(cfg, clock, migrated_dsn)
    assert a.keeper.round() and b.keeper.round()
    low = config(migrated_dsn, exchange_cap=400.0)
    for i in (a, b):
        i.gate.post(ConfigChanged(low), clock.monotonic())
        i.keeper.reconfigure(low)
    assert a.keeper.round() and b.keeper.round()  # both renew under the new cap
    approved = approved_usd((a, b), low, "y", 4.0)
    a.store.close()
    b.store.close()
    assert approved <= 400.0 + 1e-6, f"approved {approved} after lowering the cap to 400 and a round each"
