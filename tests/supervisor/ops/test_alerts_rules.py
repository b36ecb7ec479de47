"""The alert rules and the book: one firing per episode, one resolved when it clears, boundaries, hostile input."""

from __future__ import annotations

import ast
import math
from dataclasses import replace
from pathlib import Path

import pytest

from supervisor.alerts.book import AlertBook
from supervisor.alerts.rules import AccountFigures, Observation, SourceReading, Transition
from supervisor.clock import FakeClock
from supervisor.config import AlertsConfig

ROOT = Path(__file__).resolve().parents[3]
CFG = AlertsConfig(
    enabled=True,
    startup_grace_s=10.0,
    block_rate_per_account_per_min=30,
    block_rate_per_reason_per_min=60,
    source_stale_s=5.0,
    actor_restarts=3,
)


def fresh_sources() -> tuple[SourceReading, ...]:
    return (
        SourceReading("risk_v3", 1.0, 10.0),
        SourceReading("ess", 0.2, 3.0),
        SourceReading("account:acct1", 5.0, 60.0),
    )


def look(clock: FakeClock, **fields) -> Observation:
    base = {
        "monotonic": clock.monotonic(),
        "wall": clock.now(),
        "sources": fresh_sources(),
        "ess_active": False,
        "gate_alive": True,
    }
    base.update(fields)
    return Observation(**base)


def source(name: str, age: float | None, max_age: float = 10.0) -> tuple[SourceReading, ...]:
    return tuple(SourceReading(name, age, max_age) if s.name == name else s for s in fresh_sources())


def changes(ts: list[Transition]) -> list[tuple[str, str]]:
    return [(t.state, t.alert.key) for t in ts]


@pytest.fixture
def book(clock) -> AlertBook:
    return AlertBook(CFG, clock.monotonic())


def test_a_healthy_gate_raises_nothing(book, clock):
    for _ in range(30):
        clock.advance(1)
        assert book.update(look(clock)) == []


def test_halt_fires_once_per_episode_and_resolves_once(book, clock):
    assert book.update(look(clock)) == []
    halted = {"ess_active": True, "ess_reason": "http: desk halt", "ess_halting": ("http",)}
    clock.advance(1)
    fired = book.update(look(clock, **halted))
    assert changes(fired) == [("firing", "halt")]
    assert fired[0].alert.detail["halted_by"] == "http" and fired[0].alert.severity == "critical"
    for _ in range(5):
        clock.advance(1)
        assert book.update(look(clock, **halted)) == []
    clock.advance(1)
    resolved = book.update(look(clock))
    assert changes(resolved) == [("resolved", "halt")]
    assert resolved[0].duration_s == pytest.approx(6.0)
    assert resolved[0].resolved_at == clock.now()
    clock.advance(1)
    assert book.update(look(clock)) == []
    clock.advance(1)
    assert changes(book.update(look(clock, **halted))) == [("firing", "halt")]  # a new episode


def test_a_stale_source_fails_closed_at_once_and_alerts_on_its_own_after_source_stale_s(book, clock):
    clock.advance(20)  # past the startup grace
    assert book.update(look(clock)) == []
    clock.advance(1)
    assert changes(book.update(look(clock, sources=source("risk_v3", 12.0)))) == [("firing", "fail_closed")]
    clock.advance(1)
    assert book.update(look(clock, sources=source("risk_v3", 14.9))) == []  # stale 4.9 s < 5
    clock.advance(1)
    assert changes(book.update(look(clock, sources=source("risk_v3", 15.0)))) == [("firing", "source_stale:risk_v3")]
    clock.advance(1)
    assert sorted(changes(book.update(look(clock)))) == [
        ("resolved", "fail_closed"),
        ("resolved", "source_stale:risk_v3"),
    ]


def test_a_source_with_no_state_is_not_stale_during_the_startup_grace_then_is(book, clock):
    missing = source("account:acct1", None, 60.0)
    for _ in range(9):
        clock.advance(1)
        assert book.update(look(clock, sources=missing)) == []
    clock.advance(1)  # 10 s: the grace is over
    assert changes(book.update(look(clock, sources=missing))) == [("firing", "fail_closed")]
    clock.advance(5)  # stale (missing) for 5 s since the grace ended
    assert changes(book.update(look(clock, sources=missing))) == [("firing", "source_stale:account:acct1")]


def test_a_source_that_had_state_is_stale_even_during_the_grace(book, clock):
    clock.advance(1)
    assert changes(book.update(look(clock, sources=source("ess", 4.0, 3.0)))) == [("firing", "fail_closed")]


@pytest.mark.parametrize("age", [math.nan, -1.0, math.inf, -math.inf, "7", True])
def test_hostile_ages_never_crash_and_never_hide_a_stale_source(book, clock, age):
    clock.advance(1)
    fired = changes(book.update(look(clock, sources=source("risk_v3", age))))
    assert ("firing", "fail_closed") in fired
    assert ("firing", "source_stale:risk_v3") in fired  # an untrustworthy age counts as stale for ever


@pytest.mark.parametrize("max_age", [math.nan, "3", None])
def test_a_max_age_that_is_not_a_number_counts_as_stale(book, clock, max_age):
    clock.advance(1)
    assert ("firing", "source_stale:ess") in changes(book.update(look(clock, sources=source("ess", 1.0, max_age))))


def test_hostile_figures_never_crash(book, clock):
    clock.advance(1)
    hostile = look(
        clock,
        accounts=(AccountFigures("acct1", math.nan, -math.inf, math.inf, -2.0, -7.0, 10.0),),
        restarts={"gate": -5, "x": "many"},  # type: ignore[dict-item]
        decisions={("block", "X", "acct1"): -3, ("block", "Y", "acct1"): math.nan},  # type: ignore[dict-item]
        journal_dropped=-1,
    )
    fired = changes(book.update(hostile))
    # -inf weekly PnL is at or below any limit; NaN figures say nothing (the gate blocks on them anyway)
    assert fired == [("firing", "loss_limit:acct1:weekly")]


def blocks(n_acct1: int, code: str = "DAILY_LOSS_LIMIT") -> dict[tuple[str, str, str], int]:
    return {("block", code, "acct1"): n_acct1, ("allow", "ALL_CHECKS_PASSED", "acct1"): 1000}


def test_exactly_n_blocks_a_minute_for_an_account_do_not_fire_and_n_plus_one_do(book, clock):
    assert book.update(look(clock, decisions=blocks(100))) == []  # counts before the first look do not count
    clock.advance(1)
    assert book.update(look(clock, decisions=blocks(130))) == []  # 30 in the window: not above 30
    clock.advance(1)
    assert changes(book.update(look(clock, decisions=blocks(131)))) == [("firing", "block_rate:account:acct1")]
    for _ in range(58):
        clock.advance(1)
        assert book.update(look(clock, decisions=blocks(131))) == []
    clock.advance(1)  # 60 s after the look that saw 100, the 31 blocks fall out of the window
    assert changes(book.update(look(clock, decisions=blocks(131)))) == [("resolved", "block_rate:account:acct1")]


def test_blocks_per_reason_code_are_summed_over_accounts(clock):
    book = AlertBook(replace(CFG, block_rate_per_account_per_min=1000), clock.monotonic())
    book.update(look(clock, decisions={}))
    clock.advance(1)
    split = {("block", "RISK_CRITICAL", "a"): 30, ("block", "RISK_CRITICAL", "b"): 30}
    assert book.update(look(clock, decisions=split)) == []  # 60: not above 60
    clock.advance(1)
    split[("block", "RISK_CRITICAL", "c")] = 1
    assert changes(book.update(look(clock, decisions=split))) == [("firing", "block_rate:code:RISK_CRITICAL")]


def test_daily_weekly_and_drawdown_limits_fire_at_the_limit_as_the_gate_blocks(book, clock):
    def acct(day: float, week: float, dd: float | None) -> tuple[AccountFigures, ...]:
        return (AccountFigures("acct1", day, week, dd, -2.0, -7.0, 10.0),)

    assert book.update(look(clock, accounts=acct(-1.99, -6.99, 10.0))) == []
    clock.advance(1)
    fired = changes(book.update(look(clock, accounts=acct(-2.0, -7.0, 10.01))))
    assert sorted(fired) == [
        ("firing", "loss_limit:acct1:daily"),
        ("firing", "loss_limit:acct1:drawdown"),
        ("firing", "loss_limit:acct1:weekly"),
    ]
    clock.advance(1)
    assert changes(book.update(look(clock, accounts=acct(-2.5, -6.0, None)))) == [
        ("resolved", "loss_limit:acct1:weekly"),
        ("resolved", "loss_limit:acct1:drawdown"),
    ]


def test_an_actor_restarting_more_than_n_times_in_ten_minutes_fires_and_resolves_as_the_window_slides(book, clock):
    book.update(look(clock, restarts={"gate": 0}))
    for n in (1, 2, 3):
        clock.advance(60)
        assert book.update(look(clock, restarts={"gate": n})) == []  # 3: not more than 3
    clock.advance(60)
    assert changes(book.update(look(clock, restarts={"gate": 4}))) == [("firing", "actor_restarts:gate")]
    clock.advance(359)
    assert book.update(look(clock, restarts={"gate": 4})) == []
    clock.advance(61)  # 10 min after the look that saw the first restart: it leaves the window
    assert changes(book.update(look(clock, restarts={"gate": 4}))) == [("resolved", "actor_restarts:gate")]


def test_journal_failing_fires_on_a_problem_and_on_drops_and_resolves(book, clock):
    book.update(look(clock, journal_dropped=0))
    clock.advance(1)
    assert changes(book.update(look(clock, journal_problem="disk full"))) == [("firing", "journal_failing")]
    clock.advance(1)
    assert changes(book.update(look(clock))) == [("resolved", "journal_failing")]
    clock.advance(1)
    assert changes(book.update(look(clock, journal_dropped=3))) == [("firing", "journal_failing")]
    clock.advance(299)
    assert book.update(look(clock, journal_dropped=3)) == []
    clock.advance(1)  # 5 minutes without a new drop
    assert changes(book.update(look(clock, journal_dropped=3))) == [("resolved", "journal_failing")]


def test_a_blocking_journal_and_a_dead_gate_fail_closed(book, clock):
    clock.advance(1)
    fired = book.update(look(clock, gate_alive=False, journal_blocking="journal queue full (100 records waiting)"))
    assert sorted(changes(fired)) == [("firing", "fail_closed"), ("firing", "journal_failing")]
    reasons = next(t for t in fired if t.alert.key == "fail_closed").alert.detail["reasons"]
    assert reasons == "the gate is not running; journal queue full (100 records waiting)"  # "journal" once


# -- the summaries: one line, for people, each cause named once ------------------------------
def summary(clock, key: str | None = None, **fields) -> str:
    fired = AlertBook(CFG, clock.monotonic() - 20).update(look(clock, **fields))  # past the startup grace
    (alert,) = [t.alert for t in fired if key in (None, t.alert.key)]
    assert "\n" not in alert.summary
    return alert.summary


def test_an_operator_halt_is_said_once_with_its_time_of_day(clock):
    detail = "operator halt by bob since 2026-12-05T01:34:27.358806Z: drill"
    halted = {"ess_active": True, "ess_reason": f"operator_halt: {detail}", "ess_halting": ("operator_halt",)}
    said = "trading halted by operator bob (since 01:34 UTC): drill"
    assert summary(clock, **halted, ess_readings=(("operator_halt", detail),)) == said
    assert summary(clock, **halted) == said  # read out of the combined reason alike


def test_each_halting_source_is_named_once_for_people(clock):
    two = {
        "ess_active": True,
        "ess_reason": "http: desk halt; kill_switch_file: kill switch /srv/KILL_SWITCH: incident",
        "ess_halting": ("http", "kill_switch_file"),
    }
    said = summary(clock, **two)
    assert said == "trading halted by ESS (http): desk halt; kill switch file /srv/KILL_SWITCH: incident"
    fired = AlertBook(CFG, clock.monotonic()).update(look(clock, **two))
    assert fired[0].alert.recovered == "trading no longer halted by ESS (http), kill switch file"


def test_fail_closed_and_stale_sources_say_how_old_against_the_limit(clock):
    assert summary(clock, sources=source("risk_v3", 10.1)) == (
        "gate failing closed: Risk v3 state is 10.1 s old (limit 10 s)"
    )
    book = AlertBook(CFG, clock.monotonic() - 20)
    fired = {t.alert.key: t.alert for t in book.update(look(clock, sources=source("account:acct1", 70.0, 60.0)))}
    assert fired["source_stale:account:acct1"].summary == (
        "account acct1 state is 70.0 s old (limit 60 s): stale for 5 s or more"
    )
    assert fired["source_stale:account:acct1"].recovered == "account acct1 is fresh again"
    missing = summary(clock, "fail_closed", sources=source("ess", None))
    assert missing == "gate failing closed: ESS has sent no state yet"


def test_loss_limits_and_price_pauses_read_without_field_names(clock):
    from supervisor.alerts.rules import PriceReading

    day = AccountFigures("acct1", -2.1, -2.1, None, -2.0, -5.0, None)
    assert summary(clock, accounts=(day,)) == "account acct1: daily loss limit reached: -2.10 % (limit -2 %)"
    down = AccountFigures("acct1", 0.0, 0.0, 6.0, -2.0, -5.0, 4.0)
    assert summary(clock, accounts=(down,)) == (
        "account acct1: drawdown limit reached: equity 6.00 % below the week's peak (limit 4 %)"
    )
    why = "SOLUSDT moved +15.0% (150 -> 172.5) within 60s > prices.spike_pct=10: opening orders paused for 300s"
    assert summary(clock, prices=(PriceReading("SOLUSDT", True, why),)) == (
        "SOLUSDT paused after a price spike: moved +15.0 % (150 → 172.5) within 60 s (more than 10 %): "
        "opening orders paused for 300 s"
    )


def test_an_unknown_ess_reading_fails_closed(book, clock):
    clock.advance(1)
    fired = book.update(look(clock, ess_active=None, ess_reason="kill_switch_file: unreadable"))
    assert changes(fired) == [("firing", "fail_closed")]
    assert "unreadable" in fired[0].alert.summary


@pytest.mark.parametrize("module", ["rules.py", "book.py"])
def test_the_rules_and_the_book_are_pure(module):
    tree = ast.parse((ROOT / "supervisor" / "alerts" / module).read_text())
    imported = {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in (n.names if isinstance(n, ast.Import) else [n])
    }
    allowed = {"__future__", "math", "re", "collections", "collections.abc", "dataclasses", "datetime", "typing"}
    assert imported - allowed <= {"supervisor.config", "supervisor.core.halts", "supervisor.alerts.rules"}


def test_a_paused_or_unpriced_symbol_alerts_by_name_and_says_so_when_it_ends(book, clock):
    from supervisor.alerts.rules import PriceReading

    clock.advance(20)  # past the startup grace
    ok = (PriceReading("BTCUSDT", True), PriceReading("SOLUSDT", True))
    assert book.update(look(clock, prices=ok)) == []
    clock.advance(1)
    bad = (PriceReading("BTCUSDT", False), PriceReading("SOLUSDT", True, "SOLUSDT moved +15.0%"))
    fired = book.update(look(clock, prices=bad))
    assert sorted(changes(fired)) == [("firing", "price_pause:SOLUSDT"), ("firing", "price_stale:BTCUSDT")]
    clock.advance(1)
    assert book.update(look(clock, prices=bad)) == []  # one firing per episode
    clock.advance(1)
    resolved = book.update(look(clock, prices=ok))
    assert {t.alert.recovered for t in resolved} == {
        "SOLUSDT no longer paused: its opening orders trade again",
        "BTCUSDT priced again: its opening orders trade",
    }
