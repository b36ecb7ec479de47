"""Probe 26: hostile rows in the shared baselines / last_equity tables."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from supervisor.clock import FakeClock
from supervisor.core.reasons import ReasonCode as RC
from supervisor.facade import RiskSupervisor
from tests.helpers import order
from tests.supervisor.shared.test_baselines import MONDAY, T, config, fresh, tick


def sql(dsn, q, *args):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(q, args)


def test_a_future_dated_trip_row_hides_todays_trip_from_an_instance_started_later(migrated_dsn, tmp_path):
    """An instance whose clock ran a day ahead (or a hand-written row) left a day_trip for
    tomorrow: the first read of a newly started instance (DISTINCT ON ... period_start DESC)
    returns only that row, so today's trip is never taken up and the cooldown does not hold."""
    clock = FakeClock(start=T)
    with RiskSupervisor(config(migrated_dsn, "a", tmp_path), clock=clock, poll_upstreams=False) as a:
        fresh(a, 10_000.0)
        fresh(a, 9_790.0)  # trips the day's limit: cooldown 60 min
        clock.advance(600)
        fresh(a, 9_900.0)
        assert a.evaluate(order(order_id="a2", quantity=0.5)).reason_code is RC.LOSS_COOLDOWN
    sql(
        migrated_dsn,
        "INSERT INTO baselines VALUES ('main', 'day_trip', %s, %s, 'tripped', 'skewed', %s)",
        MONDAY + timedelta(days=1),
        (MONDAY + timedelta(days=1, hours=9)).timestamp(),
        T,
    )
    with RiskSupervisor(config(migrated_dsn, "b", tmp_path), clock=clock, poll_upstreams=False) as b:
        fresh(b, 9_900.0)
        r = b.evaluate(order(order_id="b1", quantity=0.5))
        assert r.reason_code is RC.LOSS_COOLDOWN, f"{r.decision} {r.reason_code} {r.reason}"


def test_a_trip_time_of_zero_voids_the_cooldown(migrated_dsn, tmp_path):
    """A day_trip row for today whose trip time is 0 (1970): 'the earlier trip wins', so the
    real trip never replaces it and the cooldown ends in 1970."""
    clock = FakeClock(start=T)
    with RiskSupervisor(config(migrated_dsn, "a", tmp_path), clock=clock, poll_upstreams=False) as a:
        fresh(a, 10_000.0)
        sql(migrated_dsn, "INSERT INTO baselines VALUES ('main', 'day_trip', %s, 0, 'tripped', 'x', %s)", MONDAY, T)
        tick(a, clock)
        fresh(a, 9_790.0)
        assert a.evaluate(order(order_id="a1", quantity=0.5)).reason_code is RC.DAILY_LOSS_LIMIT
        clock.advance(600)
        fresh(a, 9_900.0)
        r = a.evaluate(order(order_id="a2", quantity=0.5))
        assert r.reason_code is RC.LOSS_COOLDOWN, f"{r.decision} {r.reason_code} {r.reason}"


def test_a_future_cooldown_clear_voids_every_cooldown_of_the_week(migrated_dsn, tmp_path):
    clock = FakeClock(start=T)
    with RiskSupervisor(config(migrated_dsn, "a", tmp_path), clock=clock, poll_upstreams=False) as a:
        fresh(a, 10_000.0)
        sql(
            migrated_dsn,
            "INSERT INTO baselines VALUES ('main', 'cooldown_clear', %s, %s, 'operator:x', 'x', %s)",
            MONDAY,
            (T + timedelta(days=3000)).timestamp(),
            T,
        )
        tick(a, clock)
        fresh(a, 9_790.0)
        clock.advance(600)
        fresh(a, 9_900.0)
        r = a.evaluate(order(order_id="a2", quantity=0.5))
        assert r.reason_code is RC.LOSS_COOLDOWN, f"{r.decision} {r.reason_code} {r.reason}"


def test_a_trip_time_beyond_year_9999_does_not_freeze_the_account(migrated_dsn, tmp_path):
    """A day_trip row whose trip time is 1e12 (year 33658): _trips' fromtimestamp raises in every
    _send, so no snapshot of the account is applied again; the gate keeps deciding on the last
    good one (equity 10,000) while the real equity is past the loss limit."""
    clock = FakeClock(start=T)
    with RiskSupervisor(config(migrated_dsn, "a", tmp_path), clock=clock, poll_upstreams=False) as a:
        fresh(a, 10_000.0)
        sql(migrated_dsn, "INSERT INTO baselines VALUES ('main', 'day_trip', %s, 1e12, 'tripped', 'x', %s)", MONDAY, T)
        tick(a, clock)
        try:
            fresh(a, 9_000.0)  # -10 %: far past the day's limit
        except Exception as exc:  # noqa: BLE001 - the push itself raising is part of the finding
            raised = exc
        else:
            raised = None
        r = a.evaluate(order(order_id="a1", quantity=0.5))
        assert r.decision == "block", f"{r.decision} {r.reason_code} {r.reason} (push raised {raised!r})"


def test_rows_that_cannot_be_read_are_refused_by_the_schema(migrated_dsn):
    """A period_start or a last equity stamped 'infinity' (valid timestamptz) once stopped every
    instance's reads of the changes: the schema refuses them now."""
    import psycopg

    with pytest.raises(psycopg.errors.CheckViolation):
        sql(migrated_dsn, "INSERT INTO baselines VALUES ('zzz', 'day', 'infinity', 1, 'last_equity', 'x', %s)", T)
    with pytest.raises(psycopg.errors.CheckViolation):
        sql(migrated_dsn, "INSERT INTO last_equity VALUES ('zzz', 1, 'infinity', 'x')")


def test_a_row_the_reader_cannot_read_is_left_out_and_the_rest_are_read(migrated_dsn):
    from supervisor.shared.baselines import SharedBaselines
    from supervisor.shared.store import SharedStore

    store = SharedStore(migrated_dsn, "r", "r", 2.0, 30.0)
    good = {"account": "main", "period": "day", "period_start": MONDAY.timestamp(), "equity": 1.0,
            "source": "last_equity", "instance": "a"}  # fmt: skip
    bad = {**good, "period_start": 1e300}  # beyond any datetime
    store.baseline_changes = lambda mark, since: ([bad, good], "1")  # the store's answer, as a broken one gives it
    try:
        assert [(a, p) for a, p, _b in SharedBaselines(store).changes(MONDAY)] == [("main", "day")]
    finally:
        store.close()
