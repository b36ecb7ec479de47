"""Probe: a round that read the shared halt before an operator's halt committed is
applied after it: the instance adopts the stale "not halted" row and lets orders through."""

from __future__ import annotations

from supervisor.facade import RiskSupervisor
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, instance_config


def test_halt_landing_during_a_round_is_undone_by_the_round(migrated_dsn, tmp_path, clock):
    a = RiskSupervisor(instance_config(migrated_dsn, "a", tmp_path), clock=clock, poll_upstreams=False)
    a.start()
    try:
        feed(a, equity=RICH)
        assert a.shared.keeper.round()
        store = a.shared.store
        real = store.round

        def round_then_halt(*args):
            result = real(*args)  # read: not halted
            a.halt("venue outage", by="alice")  # the operator's halt commits meanwhile (API thread)
            return result

        store.round = round_then_halt
        assert a.shared.keeper.round()
        store.round = real
        r = a.evaluate(order(order_id="after-halt", quantity=0.1))
        assert r.decision == "block", (r.decision, r.reason_code, r.reason, a.state()["operator_halt"])
    finally:
        a.stop()
