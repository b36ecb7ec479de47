"""Found by a second probe of the one gate: an override the controls expire (the wall clock
set back) is ended at the gate too."""

from __future__ import annotations

from datetime import timedelta

from supervisor import AccountSnapshot, Position, RiskSupervisor
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import feed, make_config, order

LONG_SOL = (Position("SOLUSDT", "binance", 3.0, 100.0),)


def test_an_override_the_controls_expired_is_expired_in_the_gate_too(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0, LONG_SOL))
        sup.report_ess_active(True, "drawdown", source="ess_http")
        rec = sup.propose_override("main", "unwind", 600.0, "alice")
        sup.approve_override(rec.id, "bob")
        clock.set(clock.now() - timedelta(hours=1))  # the wall clock is set back (NTP step)
        states = {r.id: r.state for r in sup.overrides()}
        sup.report_ess_active(True, "drawdown", source="ess_http")
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0, LONG_SOL))
        r = sup.evaluate(order(side="sell", quantity=3.0, reduce_only=True))
        assert states[rec.id] == "expired"
        assert r.reason_code is RC.ESS_HALT_ACTIVE, r
