"""Period baselines: day and week boundaries, and persistence across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from supervisor import AccountSnapshot, Fill, Position, RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.core.reasons import ReasonCode as RC
from supervisor.sources.baseline_store import operator_set
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
    from supervisor.sources.baseline_store import StoreError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg = make_config(state={"dir": str(blocker / "state")})
    with pytest.raises(StoreError, match=r"state folder .*NotADirectory"):
        RiskSupervisor(cfg, poll_upstreams=False).start()


# -- a lost baseline store, a wall clock that went back ---------------------------------


def _lose_store(cfg, how: str) -> None:
    path = cfg.state.dir / "accounts.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    if how == "truncated":
        path.write_bytes(b"")
    elif how == "deleted":
        path.unlink()
    else:  # corrupt: not a database at all
        path.write_bytes(b"this is not a database" * 100)


def _losing_day(cfg, clock) -> None:
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        push_upstreams(sup)
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0, (Position("SOLUSDT", "binance", 5.0, 100.0),)))
        sup.report_account_snapshot(AccountSnapshot("main", 9_790.0, (Position("SOLUSDT", "binance", 5.0, 100.0),)))
        assert sup.evaluate(order(quantity=0.5)).reason_code is RC.DAILY_LOSS_LIMIT


@pytest.mark.parametrize("how", ["truncated", "deleted", "corrupt"])
def test_a_lost_store_in_an_initialised_state_dir_blocks_opening_orders(cfg, how):
    clock = FakeClock(start=SUNDAY_2350 + timedelta(hours=10))  # Monday 09:50
    _losing_day(cfg, clock)
    _lose_store(cfg, how)
    clock.advance(600)
    with capture_logs() as logs, RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        push_upstreams(sup)
        state = sup.report_account_snapshot(
            AccountSnapshot("main", 9_795.0, (Position("SOLUSDT", "binance", 5.0, 100.0),))
        )
        assert state.baseline_unknown == ("day", "week")
        r = sup.evaluate(order(quantity=0.5))
        assert r.reason_code is RC.BASELINE_UNKNOWN, r.reason
        assert sup.evaluate(order(side="sell", quantity=1.0, reduce_only=True)).decision == "allow"  # reducing
    lost = [e for e in logs if e["event"] == "baseline_store_lost"]
    assert len(lost) == 1 and lost[0]["log_level"] == "error"
    if how == "corrupt":
        assert "not a database" in lost[0]["cause"]
        assert list(cfg.state.dir.glob("accounts.sqlite.lost-*"))  # kept aside for a post-mortem


def test_a_lost_store_stays_lost_across_restarts_until_the_period_ends(cfg):
    clock = FakeClock(start=SUNDAY_2350 + timedelta(hours=10))  # Monday 09:50
    _losing_day(cfg, clock)
    _lose_store(cfg, "truncated")
    for _ in range(2):  # a restart of the restarted process does not forget it was lost
        with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
            push_upstreams(sup)
            sup.report_account_snapshot(AccountSnapshot("main", 9_795.0))
            assert sup.evaluate(order(quantity=0.5)).reason_code is RC.BASELINE_UNKNOWN
    clock.set(SUNDAY_2350 + timedelta(days=1, minutes=20))  # Tuesday 00:10: a new day, the same week
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        push_upstreams(sup)
        state = sup.report_account_snapshot(AccountSnapshot("main", 9_800.0))
        assert state.day_start_equity == 9_795.0 and state.baseline_unknown == ("week",)
        assert sup.evaluate(order(quantity=0.5)).reason_code is RC.BASELINE_UNKNOWN
        operator_set(
            cfg.state.dir,
            "main",
            {"week": 10_000.0},
            {"week": SUNDAY_2350 + timedelta(minutes=10)},
            "cro",
            clock.now(),
        )
        state = sup.report_account_snapshot(AccountSnapshot("main", 9_800.0))
        assert state.baseline_unknown == () and state.week_start_equity == 10_000.0
        assert sup.evaluate(order(quantity=0.5)).decision == "allow"  # -2% week, within -7%


def test_an_operator_baseline_is_taken_up_on_the_trackers_tick_without_a_snapshot(cfg):
    clock = FakeClock(start=SUNDAY_2350 + timedelta(hours=10))
    _losing_day(cfg, clock)
    _lose_store(cfg, "deleted")
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        push_upstreams(sup)
        sup.report_account_snapshot(AccountSnapshot("main", 9_795.0))
        assert sup.evaluate(order(quantity=0.5)).reason_code is RC.BASELINE_UNKNOWN
        starts = {"day": SUNDAY_2350 + timedelta(minutes=10), "week": SUNDAY_2350 + timedelta(minutes=10)}
        operator_set(cfg.state.dir, "main", {"day": 10_000.0, "week": 10_000.0}, starts, "cro", clock.now())
        with capture_logs() as logs:
            clock.advance(5.0)  # accounts.poll_interval_s: the tracker's tick
            sup.actor_ref("account_tracker").proxy().ping().get(timeout=5)
        push_upstreams(sup)
        assert sup.evaluate(order(quantity=0.5)).reason_code is RC.DAILY_LOSS_LIMIT  # -2.05% from 10,000
    taken = [e for e in logs if e["event"] == "baseline_taken_up"]
    assert taken and taken[0]["day_source"] == "operator:cro"


def test_first_start_ever_takes_the_first_equity_and_warns(cfg, clock):
    with capture_logs() as logs, RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        state = sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
    assert state.baseline_unknown == () and state.day_start_equity == 10_000.0
    warned = [e for e in logs if e["event"] == "baseline_started_mid_period"]
    assert {e["period"] for e in warned} == {"day", "week"} and all(e["log_level"] == "warning" for e in warned)
    assert (cfg.state.dir / "riskgate-state.json").is_file()


def test_a_forward_jump_of_the_wall_clock_does_not_lift_the_real_days_limit(cfg):
    monday = SUNDAY_2350 + timedelta(hours=10)
    clock = FakeClock(start=monday)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        push_upstreams(sup)
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
        sup.report_account_snapshot(AccountSnapshot("main", 9_700.0))  # -3%: the day's limit is hit
        assert sup.evaluate(order(quantity=0.5)).reason_code is RC.DAILY_LOSS_LIMIT
        clock.set(monday + timedelta(days=1))  # the wall clock jumps a day ahead
        ahead = sup.report_account_snapshot(AccountSnapshot("main", 9_700.0))
        assert ahead.day_start_equity == 9_700.0  # "tomorrow" began at 9,700
        clock.set(monday + timedelta(minutes=5))  # and comes back
        push_upstreams(sup)
        back = sup.report_account_snapshot(AccountSnapshot("main", 9_700.0))
        assert back.day_start_equity == 10_000.0 and back.baseline_unknown == ()
        assert sup.evaluate(order(quantity=0.5)).reason_code is RC.DAILY_LOSS_LIMIT
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:  # and after a restart
        push_upstreams(sup)
        assert sup.report_account_snapshot(AccountSnapshot("main", 9_700.0)).day_start_equity == 10_000.0


def test_a_baseline_from_the_future_with_no_record_of_the_real_period_is_unknown(cfg):
    monday = SUNDAY_2350 + timedelta(hours=10)
    clock = FakeClock(start=monday + timedelta(days=1))  # starts with the clock a day ahead
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        sup.report_account_snapshot(AccountSnapshot("main", 9_700.0))
        clock.set(monday)
        push_upstreams(sup)
        state = sup.report_account_snapshot(AccountSnapshot("main", 9_700.0))
        assert "day" in state.baseline_unknown
        assert sup.evaluate(order(quantity=0.5)).reason_code is RC.BASELINE_UNKNOWN
