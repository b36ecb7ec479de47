"""Drawdown from the week's peak and the cooldown after a loss limit: boundaries, restarts, period resets.

Through the facade and the tracker (the peak and the trip are kept with the baselines in the
state folder), on a FakeClock that starts on a Monday at midnight UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from supervisor import AccountSnapshot, Position, RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import make_config, order, signal

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
LONG_SOL = (Position("SOLUSDT", "binance", 5.0, 100.0),)


def config(tmp_path):
    profiles = make_config().profiles
    normal = {
        "max_daily_loss_pct": -2.0,
        "max_weekly_loss_pct": -7.0,
        "max_single_trade_risk_pct": 1.0,
        "max_open_positions": 5,
        "allowed_leverage": 3.0,
        "max_drawdown_pct": 3.0,
        "cooldown_minutes": 30.0,
    }
    others = {
        name: {
            "max_daily_loss_pct": p.max_daily_loss_pct,
            "max_weekly_loss_pct": p.max_weekly_loss_pct,
            "max_single_trade_risk_pct": p.max_single_trade_risk_pct,
            "max_open_positions": p.max_open_positions,
            "allowed_leverage": p.allowed_leverage,
        }
        for name, p in profiles.items()
        if name != "normal"
    }
    return make_config(profiles={**others, "normal": normal}, state={"dir": str(tmp_path / "state")})


def at(sup: RiskSupervisor, equity: float, positions=()) -> str:
    """Every source fresh, the account at `equity`; the decision for a small opening buy."""
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", equity, tuple(positions)))
    return str(sup.evaluate(order(quantity=0.1)).reason_code)


@pytest.fixture
def clock():
    return FakeClock(start=MONDAY)


def run(tmp_path, clock):
    return RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False)


def test_drawdown_from_the_weeks_peak_at_its_boundaries_across_a_restart_and_a_new_week(tmp_path, clock):
    with run(tmp_path, clock) as sup:
        assert at(sup, 10_000.0) == RC.ALL_CHECKS_PASSED  # the week opens at 10,000
        clock.advance(3600)
        assert at(sup, 10_400.0) == RC.ALL_CHECKS_PASSED  # the peak: 10,400
        clock.advance(timedelta(days=1).total_seconds())
        assert at(sup, 10_200.0) == RC.ALL_CHECKS_PASSED  # Tuesday: 1.92% below the peak
        clock.advance(timedelta(days=1).total_seconds())
        # Wednesday (day opens at 10,200: the daily limit stays far): 3% of 10,400 is 312.
        assert at(sup, 10_089.0) == RC.ALL_CHECKS_PASSED  # 2.99%: inside
        assert at(sup, 10_088.0) == RC.ALL_CHECKS_PASSED  # 3.00%: at the limit, inside
        assert at(sup, 10_050.0) == RC.DRAWDOWN_LIMIT  # 3.37%: outside
        reduce = order(side="sell", quantity=1.0)
        sup.report_account_snapshot(AccountSnapshot("main", 10_050.0, LONG_SOL))
        assert sup.evaluate(reduce).decision == "allow"  # a reduction is never stopped by it
    with run(tmp_path, clock) as sup:  # a restart keeps the peak (the week opened at 10,000)
        assert at(sup, 10_050.0) == RC.DRAWDOWN_LIMIT
        clock.set(MONDAY + timedelta(days=7, minutes=1))  # a new week opens at the last equity
        assert at(sup, 10_050.0) == RC.ALL_CHECKS_PASSED


def test_a_cooldown_keeps_new_positions_blocked_after_a_trip_across_a_restart(tmp_path, clock):
    clock.set(MONDAY + timedelta(hours=10))
    with run(tmp_path, clock) as sup:
        assert at(sup, 10_000.0) == RC.ALL_CHECKS_PASSED
        assert at(sup, 9_790.0) == RC.DAILY_LOSS_LIMIT  # -2.1%: the daily limit trips at 10:00
        clock.advance(60)
        assert at(sup, 9_900.0) == RC.LOSS_COOLDOWN  # recovered to -1%, still cooling down
        reduce = order(side="sell", quantity=1.0)
        sup.report_account_snapshot(AccountSnapshot("main", 9_900.0, LONG_SOL))
        assert sup.evaluate(reduce).decision == "allow"  # reductions pass
    with run(tmp_path, clock) as sup:
        clock.advance(28 * 60)  # 10:29
        assert at(sup, 9_900.0) == RC.LOSS_COOLDOWN  # the trip was kept
        clock.advance(2 * 60)  # 10:31: 30 minutes after the trip
        assert at(sup, 9_900.0) == RC.ALL_CHECKS_PASSED


def test_a_cooldown_ends_with_its_period(tmp_path, clock):
    clock.set(MONDAY + timedelta(hours=23, minutes=50))
    with run(tmp_path, clock) as sup:
        assert at(sup, 10_000.0) == RC.ALL_CHECKS_PASSED
        assert at(sup, 9_790.0) == RC.DAILY_LOSS_LIMIT  # trips at 23:50
        clock.advance(60)
        assert at(sup, 9_900.0) == RC.LOSS_COOLDOWN
        clock.set(MONDAY + timedelta(days=1, minutes=5))  # Tuesday 00:05: a new day, its own limit
        assert at(sup, 9_900.0) == RC.ALL_CHECKS_PASSED


def test_drawdown_and_cooldown_codes_over_http(tmp_path, clock):
    import httpx

    from tests.helpers import make_config as _  # noqa: F401 - the same config as above, served

    cfg = config(tmp_path)
    from dataclasses import replace

    cfg = replace(cfg, api=replace(cfg.api, execution_access="open"))
    clock.set(MONDAY + timedelta(hours=10))
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        url = sup.serve_api(port=0).url

        def over_http(equity: float) -> str:
            at(sup, equity)
            return httpx.post(f"{url}/v1/evaluate", json=order(quantity=0.1)).json()["reason_code"]

        assert over_http(10_000.0) == "ALL_CHECKS_PASSED"
        assert over_http(9_790.0) == "DAILY_LOSS_LIMIT"
        clock.advance(60)
        assert over_http(9_900.0) == "LOSS_COOLDOWN"
