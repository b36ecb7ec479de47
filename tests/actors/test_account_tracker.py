"""Period baselines: day and week boundaries, and persistence across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from supervisor import AccountSnapshot, Fill, Position, RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.reasons import ReasonCode as RC
from tests.helpers import make_config, order, signal

SUNDAY_2350 = datetime(2026, 1, 11, 23, 50, tzinfo=UTC)  # 2026-01-12 is a Monday


def push_upstreams(sup: RiskSupervisor) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))


@pytest.fixture
def cfg(tmp_path):
    return make_config(state={"dir": str(tmp_path / "state")})


def test_crossing_midnight_resets_day_only_and_monday_resets_week(cfg):
    clock = FakeClock(start=datetime(2026, 1, 10, 23, 50, tzinfo=UTC))  # Saturday
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        first = sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
        assert (first.day_start_equity, first.week_start_equity) == (10_000.0, 10_000.0)
        sup.report_account_snapshot(AccountSnapshot("main", 9_900.0))
        clock.set(datetime(2026, 1, 11, 0, 5, tzinfo=UTC))  # Sunday: a new day, the same week
        sunday = sup.report_account_snapshot(AccountSnapshot("main", 9_800.0))
        assert (sunday.day_start_equity, sunday.week_start_equity) == (9_900.0, 10_000.0)
        sup.report_account_snapshot(AccountSnapshot("main", 9_700.0))
        clock.set(datetime(2026, 1, 12, 0, 0, tzinfo=UTC))  # Monday 00:00: both reset
        monday = sup.report_account_snapshot(AccountSnapshot("main", 9_650.0))
        assert (monday.day_start_equity, monday.week_start_equity) == (9_700.0, 9_700.0)
        clock.set(datetime(2026, 1, 12, 23, 59, 59, tzinfo=UTC))  # still Monday
        late = sup.report_account_snapshot(AccountSnapshot("main", 9_000.0))
        assert (late.day_start_equity, late.week_start_equity) == (9_700.0, 9_700.0)


def test_configurable_reset_hour_and_weekday(tmp_path):
    cfg = make_config(
        state={"dir": str(tmp_path / "s")}, periods={"daily_reset_hour_utc": 8, "weekly_reset_day": "sunday"}
    )
    clock = FakeClock(start=datetime(2026, 1, 11, 7, 0, tzinfo=UTC))  # Sunday 07:00
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
        clock.advance(3600)  # 08:00: day resets; the week began Sunday 00:00, unchanged
        s = sup.report_account_snapshot(AccountSnapshot("main", 9_000.0))
        assert (s.day_start_equity, s.week_start_equity) == (10_000.0, 10_000.0)
        clock.advance(60)
        s = sup.report_account_snapshot(AccountSnapshot("main", 8_000.0))
        assert s.day_start_equity == 10_000.0  # baseline fixed for the day


def test_daily_loss_limit_survives_a_restart_on_the_same_state_dir(cfg):
    clock = FakeClock(start=SUNDAY_2350 + timedelta(hours=10))  # Monday 09:50
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        push_upstreams(sup)
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
        assert sup.evaluate(order(quantity=0.5)).decision == "allow"
        sup.report_account_snapshot(AccountSnapshot("main", 9_790.0))  # -2.1% <= -2.0%
        assert sup.evaluate(order(quantity=0.5)).reason_code is RC.DAILY_LOSS_LIMIT
    clock.advance(3600)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        push_upstreams(sup)
        assert sup.evaluate(order(quantity=0.5)).reason_code is RC.ACCOUNT_STATE_STALE  # nothing yet
        state = sup.report_account_snapshot(AccountSnapshot("main", 9_795.0))
        assert state.day_start_equity == 10_000.0
        assert sup.evaluate(order(quantity=0.5)).reason_code is RC.DAILY_LOSS_LIMIT


def test_restart_after_midnight_takes_the_last_equity_before_it(cfg):
    clock = FakeClock(start=SUNDAY_2350)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
        sup.report_account_snapshot(AccountSnapshot("main", 9_500.0))
    clock.set(SUNDAY_2350 + timedelta(minutes=20))  # Monday 00:10, new process
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        s = sup.report_account_snapshot(AccountSnapshot("main", 9_400.0))
        assert (s.day_start_equity, s.week_start_equity) == (9_500.0, 9_500.0)


def test_fills_move_positions_without_refreshing_the_account_age(cfg, clock):
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        push_upstreams(sup)
        sup.report_account_snapshot(AccountSnapshot("main", 1_000_000.0, (Position("SOLUSDT", "binance", 1.0, 100.0),)))
        s = sup.report_fill(Fill("main", "binance", "SOLUSDT", "sell", 1.0, 101.0))
        assert s.positions == ()
        s = sup.report_fill(Fill("main", "binance", "ETHUSDT", "buy", 0.3, 3000.0))
        assert [(p.symbol, p.quantity) for p in s.positions] == [("ETHUSDT", 0.3)]
        clock.advance(59)
        push_upstreams(sup)
        sup.report_fill(Fill("main", "binance", "ETHUSDT", "buy", 0.1, 3000.0))
        clock.advance(1.5)  # 60.5 s since the snapshot: fills did not refresh it
        push_upstreams(sup)
        assert sup.evaluate(order()).reason_code is RC.ACCOUNT_STATE_STALE


def test_unusable_state_dir_fails_start_loudly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = make_config(state={"dir": str(blocker / "state")})
    with pytest.raises(Exception):  # noqa: B017 - whichever OSError/pykka error, start must not pretend
        RiskSupervisor(cfg, poll_upstreams=False).start()
