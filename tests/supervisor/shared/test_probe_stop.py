"""Probe: an instance that stops normally returns its leases at once, although what it
approved has not ended: another instance then spends that budget again."""

from __future__ import annotations

from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, started


def test_normal_stop_returns_budget_still_in_flight(migrated_dsn, tmp_path, clock):
    a, b = started(migrated_dsn, tmp_path, clock, "a", "b")
    try:
        feed(a, equity=RICH)
        feed(b, equity=RICH)
        in_flight = 0.0
        for n in range(12):  # a takes what it can of the 1,000 USD exchange cap
            a.shared.keeper.round()
            r = a.evaluate(order(order_id=f"a{n}", quantity=1.0))
            if r.decision != "block":
                in_flight += r.adjusted_quantity * 100.0
        assert in_flight >= 800.0
        a.stop()  # a rolling restart: a's orders are still live at the exchange
        for n in range(12):
            b.shared.keeper.round()
            r = b.evaluate(order(order_id=f"b{n}", quantity=1.0))
            if r.decision != "block":
                in_flight += r.adjusted_quantity * 100.0
        assert in_flight <= 1000.0 + 1e-6, f"{in_flight} USD approved and not ended > exchange cap 1000"
    finally:
        b.stop()
