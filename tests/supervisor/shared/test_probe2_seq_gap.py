"""Probe 2: decided_orders.n is a sequence; a round reads `n > seen` and moves `seen` to the
largest n it saw, its own rows included. A row of another instance whose transaction took a
smaller n but commits later (its round waited on a cap's row lock, like every concurrent
round does) is never seen: the replay of that order id through this instance is allowed
for the whole window, after any number of rounds."""

from __future__ import annotations

import threading

import psycopg

from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, started
from tests.supervisor.shared.test_processes import until


def _waiting_on_lock(dsn: str, n: int) -> bool:
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()
        return row[0] >= n


def test_an_id_committed_late_is_never_seen_by_a_concurrent_round(migrated_dsn, tmp_path, clock):
    both = started(migrated_dsn, tmp_path, clock, "a", "b", window_s=600.0, timeout_s=1.5)
    a, b = both
    for sup in both:
        feed(sup, equity=RICH)
    try:
        for sup in (a, b):
            assert sup.shared.keeper.round()
        assert a.evaluate(order(order_id="dup-a", quantity=0.1)).decision == "allow"
        assert b.evaluate(order(order_id="own-b", quantity=0.1)).decision == "allow"

        # Something holds the exchange cap's row lock for a moment (any other instance's round does).
        blocker = psycopg.connect(migrated_dsn)
        blocker.execute("SELECT * FROM budgets WHERE cap = 'exchange:binance' FOR UPDATE")
        ta = threading.Thread(target=a.shared.keeper.round)
        ta.start()  # a inserts dup-a (n = k), then waits for the lock
        until(lambda: _waiting_on_lock(migrated_dsn, 1), 5.0)  # each ask a round trip, no sleep
        tb = threading.Thread(target=b.shared.keeper.round)
        tb.start()  # b inserts own-b (n = k + 1), reads n > seen: sees its own row only, waits
        until(lambda: _waiting_on_lock(migrated_dsn, 2), 5.0)
        blocker.rollback()
        blocker.close()
        ta.join(10)
        tb.join(10)

        for _ in range(3):  # any number of later rounds: b never hears of dup-a
            assert a.shared.keeper.round()
            assert b.shared.keeper.round()
        with psycopg.connect(migrated_dsn, autocommit=True) as c:
            rows = c.execute("SELECT decided_at, instance, order_id FROM decided_orders ORDER BY decided_at").fetchall()
        assert [(i, o) for _, i, o in rows] == [("a", "dup-a"), ("b", "own-b")], rows  # dup-a is in the store
        assert b.shared.keeper._seen > 0  # b has read past them
        r = b.evaluate(order(order_id="dup-a", quantity=0.1))  # a replay through b, well within 600 s
        assert r.reason_code is RC.DUPLICATE_ORDER, (r.decision, r.reason_code, r.reason)
    finally:
        for sup in both:
            sup.stop()
