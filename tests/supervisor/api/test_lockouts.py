"""Lockouts, first-class: an account a loss limit, drawdown, cooldown or unknown baseline holds is
shown locked in /v1/state (and its banner), /v1/lockouts and /metrics, with its cause for people,
since and until; an operator clears a cooldown over HTTP (journaled; two operators when the config
says so), and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.config import PeriodsConfig, ProfileConfig
from supervisor.core.lockouts import account_lockouts
from supervisor.core.messages import AccountState
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import make_config
from tests.supervisor.api.conftest import ALICE, BOB, DESK, clients, operators
from tests.supervisor.api.test_controls import call, decide, journal_events

T = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)  # a Wednesday, noon
PROFILE = ProfileConfig(
    name="normal",
    max_daily_loss_pct=-2.0,
    max_weekly_loss_pct=-5.0,
    max_single_trade_risk_pct=1.0,
    max_open_positions=5,
    allowed_leverage=3.0,
    max_drawdown_pct=4.0,
    cooldown_minutes=60.0,
)


def account_state(equity: float, **fields) -> AccountState:
    base = {"day_start_equity": equity, "week_start_equity": equity}
    return AccountState("main", equity, (), **{**base, **fields})


# -- what each lockout says ----------------------------------------------------------------------
def test_each_lockout_says_its_cause_for_people_and_when_it_lifts():
    periods = PeriodsConfig()
    none = account_state(10_000.0)
    assert account_lockouts(none, PROFILE, periods, T) == ()
    day = account_state(9_640.0, day_start_equity=10_000.0, week_start_equity=9_700.0)
    (lock,) = account_lockouts(day, PROFILE, periods, T)
    assert (lock.code, lock.cause) == (RC.DAILY_LOSS_LIMIT, "daily loss -3.6 % of -2 %")
    assert lock.until == datetime(2026, 1, 15, tzinfo=UTC)  # the day's end
    week = account_state(9_400.0, day_start_equity=9_400.0, week_start_equity=10_000.0, peak_equity=10_000.0)
    codes = {lk.code: lk for lk in account_lockouts(week, PROFILE, periods, T)}
    assert codes[RC.WEEKLY_LOSS_LIMIT].cause == "weekly loss -6.0 % of -5 %"
    assert codes[RC.WEEKLY_LOSS_LIMIT].until == datetime(2026, 1, 19, tzinfo=UTC)  # next Monday
    assert codes[RC.DRAWDOWN_LIMIT].cause == "equity 6.0 % below the week's peak of 10,000 (at most 4 %)"
    tripped = T - timedelta(minutes=6)
    cooling = account_state(10_000.0, cooldown_until=tripped + timedelta(hours=1), trips=(("day", tripped),))
    (lock,) = account_lockouts(cooling, PROFILE, periods, T)
    assert (lock.code, lock.since, lock.cause) == (
        RC.LOSS_COOLDOWN,
        tripped,
        "cooldown after the daily loss limit tripped",
    )
    assert account_lockouts(cooling, PROFILE, periods, T + timedelta(hours=1)) == ()  # over by itself
    unknown = account_state(10_000.0, baseline_unknown=("week",))
    (lock,) = account_lockouts(unknown, PROFILE, periods, T)
    assert lock.code is RC.BASELINE_UNKNOWN and "week's start equity is unknown" in lock.cause


# -- over HTTP -------------------------------------------------------------------------------------
def config(tmp_path, **overrides):
    fields = ("max_daily_loss_pct", "max_weekly_loss_pct", "max_single_trade_risk_pct", "max_open_positions",
              "allowed_leverage")  # fmt: skip
    profiles = {n: {f: getattr(p, f) for f in fields} for n, p in make_config().profiles.items()}
    profiles["normal"]["cooldown_minutes"] = 60.0
    return make_config(
        api={"operators": operators(), "clients": clients()},
        state={"dir": str(tmp_path / "state")},
        profiles=profiles,
        overrides=overrides,
    )


def fresh(sup: RiskSupervisor, equity: float) -> None:
    from tests.helpers import signal

    sup.report_ess_active(False, source="ess_http")
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", equity))


@pytest.fixture
def cooling(tmp_path):
    """`main` in its cooldown: the day's loss limit tripped 10 minutes ago, equity back above it."""
    clock = FakeClock(start=T)
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        fresh(sup, 10_000.0)
        fresh(sup, 9_790.0)  # -2.1 %: trips
        clock.advance(600)
        fresh(sup, 9_900.0)
        yield sup


def test_a_cooldown_is_shown_locked_everywhere_an_operator_looks(cooling):
    assert decide(cooling)["reason_code"] == "LOSS_COOLDOWN"
    doc = call(cooling, "GET", "/v1/state", DESK).json()
    row = doc["accounts"]["main"]
    (lock,) = row["lockouts"]
    assert lock["code"] == "LOSS_COOLDOWN" and lock["since"] == "2026-01-14T12:00:00Z"
    assert lock["until"] == "2026-01-14T13:00:00Z" and lock["left_s"] == 3000.0
    assert doc["banner"]["accounts_locked"] == ["main"]
    # The row says what holds it, and does not read as open for new risk (its snapshot is fine).
    assert (row["blocked_by"], row["blocked_kind"], row["new_risk_allowed"]) == ("LOSS_COOLDOWN", "lockout", False)
    assert row["usable"] is True and row["fresh"] is True
    assert "main" not in doc["banner"]["accounts_blocked"]  # locked, not failing closed: reducing orders pass
    assert call(cooling, "GET", "/v1/lockouts", DESK).json() == {"main": row["lockouts"]}
    metrics = call(cooling, "GET", "/metrics", None).text
    assert 'risk_gate_account_lockout{account="main",code="LOSS_COOLDOWN"} 1.0' in metrics
    assert 'risk_gate_account_lockout_seconds_left{account="main",code="LOSS_COOLDOWN"} 3000.0' in metrics


def test_blocked_by_names_the_lockout_that_holds_longest_and_clears_with_it(cooling):
    def row() -> dict:
        return call(cooling, "GET", "/v1/state", DESK).json()["accounts"]["main"]

    fresh(cooling, 9_700.0)  # -3 %: the day's loss limit too, until the day's end (after the cooldown's)
    held = row()
    assert [lk["code"] for lk in held["lockouts"]] == ["DAILY_LOSS_LIMIT", "LOSS_COOLDOWN"]
    assert (held["blocked_by"], held["new_risk_allowed"]) == ("DAILY_LOSS_LIMIT", False)
    fresh(cooling, 9_900.0)
    cooling.clock.advance(3600)  # the cooldown is over, the loss recovered
    fresh(cooling, 9_900.0)
    clear = row()
    assert (clear["lockouts"], clear["blocked_by"], clear["blocked_kind"], clear["new_risk_allowed"]) == (
        [], None, None, True,
    )  # fmt: skip
    cooling.clock.advance(120)  # no snapshot for longer than max_age_s: failing closed, said as before
    stale = call(cooling, "GET", "/v1/state", DESK).json()
    gone = stale["accounts"]["main"]
    assert gone["blocked_kind"] == "fail_closed" and "max_age_s" in gone["blocked_by"]
    assert gone["new_risk_allowed"] is False and "main" in stale["banner"]["accounts_blocked"]


def test_an_operator_clears_a_cooldown_and_only_that(cooling):
    path = "/v1/lockouts/main/clear"
    assert call(cooling, "POST", path, DESK, {"reason": "reviewed"}).status_code in (401, 403)
    assert call(cooling, "POST", path, ALICE, {"reason": ""}).status_code == 422
    assert call(cooling, "POST", "/v1/lockouts/ghost/clear", ALICE, {"reason": "x"}).status_code == 404
    r = call(cooling, "POST", path, ALICE, {"reason": "loss reviewed with the desk"})
    assert r.status_code == 200 and r.json()["state"] == "cleared" and r.json()["by"] == "alice"
    assert decide(cooling, quantity=0.5)["decision"] == "allow"
    assert call(cooling, "GET", "/v1/lockouts", DESK).json() == {}
    again = call(cooling, "POST", path, ALICE, {"reason": "again"})
    assert again.status_code == 409 and "no cooldown holds" in again.json()["detail"]
    cleared = [e for e in journal_events(cooling) if e["kind"] == "lockout_cleared"]
    assert cleared and cleared[0]["detail"]["by"] == "alice" and cleared[0]["account"] == "main"
    fresh(cooling, 9_700.0)  # the loss itself is not cleared: it blocks while it lasts
    assert decide(cooling)["reason_code"] == "DAILY_LOSS_LIMIT"
    r = call(cooling, "POST", path, ALICE, {"reason": "please"})
    assert r.status_code == 409  # only a cooldown is an operator's to lift


def test_two_operators_clear_a_cooldown_when_the_config_says_so(tmp_path):
    clock = FakeClock(start=T)
    with RiskSupervisor(config(tmp_path, lockout_clear_two_person=True), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        fresh(sup, 10_000.0)
        fresh(sup, 9_790.0)
        clock.advance(600)
        fresh(sup, 9_900.0)
        path = "/v1/lockouts/main/clear"
        first = call(sup, "POST", path, ALICE, {"reason": "reviewed"})
        assert first.status_code == 200 and first.json()["state"] == "awaiting_second_operator"
        assert decide(sup)["reason_code"] == "LOSS_COOLDOWN"
        assert call(sup, "POST", path, ALICE, {"reason": "me again"}).status_code == 403
        second = call(sup, "POST", path, BOB, {"reason": "agreed"})
        assert second.status_code == 200 and second.json()["state"] == "cleared"
        assert decide(sup, quantity=0.5)["decision"] == "allow"


def test_the_cli_lists_and_clears_lockouts_in_words(cooling, capsys, monkeypatch):
    from supervisor.cli import main

    url = ["--url", cooling.api_server.url]
    monkeypatch.delenv("RISKGATE_TOKEN", raising=False)
    capsys.readouterr()
    assert main(["lockouts", "list", *url]) == 0
    said = capsys.readouterr().out
    assert "main: LOSS_COOLDOWN until 2026-01-14 13:00 UTC (50 min left): cooldown after the daily loss" in said
    assert main(["lockouts", "clear", "main", "--reason", "reviewed", *url]) == 2  # no token: said, nothing sent
    monkeypatch.setenv("RISKGATE_TOKEN", ALICE)
    capsys.readouterr()
    assert main(["lockouts", "clear", "main", "--reason", "reviewed", *url]) == 0
    assert "main: cooldown cleared by alice (it ran until 2026-01-14 13:00 UTC)" in capsys.readouterr().out
    assert main(["lockouts", "list", *url]) == 0
    assert "no account is locked" in capsys.readouterr().out
    assert main(["lockouts", "clear", "main", "--reason", "again", *url]) == 1
    assert capsys.readouterr().err.startswith("riskgate: refused (409): main: no cooldown holds")


def test_an_order_repeated_past_max_repeats_is_a_lockout_until_the_window_lets_one_more(tmp_path):
    from tests.helpers import order

    cfg = make_config(
        api={"operators": operators(), "clients": clients()},
        state={"dir": str(tmp_path / "state")},
        gate={"duplicate_window_s": 60.0, "max_repeats": 3, "max_orders_per_s": 1000},
    )
    clock = FakeClock(start=T)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        fresh(sup, 10_000.0)
        for n in range(3):  # a looping strategy: the same order, new ids
            assert sup.evaluate(order(order_id=f"loop{n}", quantity=0.1)).decision == "allow"
            clock.advance(5)
            fresh(sup, 10_000.0)
        assert sup.evaluate(order(order_id="loop3", quantity=0.1)).reason_code is RC.DUPLICATE_ORDER
        (lock,) = call(sup, "GET", "/v1/lockouts", DESK).json()["main"]
        row = call(sup, "GET", "/v1/state", DESK).json()["accounts"]["main"]
        said = (row["blocked_by"], row["blocked_kind"], row["new_risk_allowed"])
        assert said == ("DUPLICATE_ORDER", "lockout", False)
        assert lock["code"] == "DUPLICATE_ORDER" and "the same buy of 0.1 SOLUSDT at 100 came 3 times" in lock["cause"]
        assert lock["left_s"] == 45.0  # the first of the three leaves the 60 s window then
        metrics = call(sup, "GET", "/metrics", None).text
        assert 'risk_gate_account_lockout{account="main",code="DUPLICATE_ORDER"} 1.0' in metrics
        assert sup.evaluate(order(order_id="other", quantity=0.2)).decision == "allow"  # other terms pass
        clock.advance(46)
        fresh(sup, 10_000.0)
        assert call(sup, "GET", "/v1/lockouts", DESK).json() == {}
        assert sup.evaluate(order(order_id="loop4", quantity=0.1)).decision == "allow"
