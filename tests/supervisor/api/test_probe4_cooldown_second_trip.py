"""Probe 26: a cooldown cleared by an operator once the loss had passed; the loss comes back
past the limit the same day and passes again: no cooldown follows the second trip (a trip is
recorded once per period, and the clear is later than it)."""

from __future__ import annotations

from supervisor.clock import FakeClock
from supervisor.core.messages import AccountSnapshot
from supervisor.core.reasons import ReasonCode as RC
from supervisor.facade import RiskSupervisor
from tests.helpers import make_config, order, signal
from tests.supervisor.shared.test_baselines import T


def cfg(tmp_path):
    fields = ("max_daily_loss_pct", "max_weekly_loss_pct", "max_single_trade_risk_pct", "max_open_positions",
              "allowed_leverage")  # fmt: skip
    profiles = {n: {f: getattr(p, f) for f in fields} for n, p in make_config().profiles.items()}
    profiles["normal"]["cooldown_minutes"] = 60.0
    return make_config(state={"dir": str(tmp_path / "s")}, profiles=profiles)


def fresh(sup, equity):
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", equity))


def test_a_second_trip_after_a_clear_has_its_cooldown(tmp_path):
    clock = FakeClock(start=T)
    with RiskSupervisor(cfg(tmp_path), clock=clock, poll_upstreams=False) as s:
        fresh(s, 10_000.0)
        fresh(s, 9_790.0)  # trips the day's limit at 09:00
        clock.advance(600)
        fresh(s, 9_900.0)
        assert s.evaluate(order(order_id="o1", quantity=0.5)).reason_code is RC.LOSS_COOLDOWN
        s.clear_lockout("main", "checked the book", "alice")
        assert s.evaluate(order(order_id="o2", quantity=0.5)).decision == "allow"
        clock.advance(600)
        fresh(s, 9_700.0)  # past the limit again: trips again
        assert s.evaluate(order(order_id="o3", quantity=0.5)).reason_code is RC.DAILY_LOSS_LIMIT
        clock.advance(60)
        fresh(s, 9_900.0)  # back inside a minute later
        r = s.evaluate(order(order_id="o4", quantity=0.5))
        assert r.reason_code is RC.LOSS_COOLDOWN, f"{r.decision} {r.reason_code} {r.reason}"
