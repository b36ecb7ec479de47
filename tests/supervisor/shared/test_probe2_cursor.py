"""Probe 2: the cursor `seen` is trusted for good. One row whose n is far ahead of the
sequence (a hostile or hand-made insert; or the sequence set back by a restore/failover of the
database) moves every instance's `seen` past every id the sequence will hand out: from then on
no instance hears of another's approvals, silently (the rounds succeed, nothing fails closed)."""

from __future__ import annotations

import psycopg

from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, started


def test_one_row_far_ahead_blinds_every_instance(migrated_dsn, tmp_path, clock):
    both = started(migrated_dsn, tmp_path, clock, "a", "b", window_s=600.0)
    a, b = both
    for sup in both:
        feed(sup, equity=RICH)
    try:
        with psycopg.connect(migrated_dsn, autocommit=True) as c:
            c.execute("INSERT INTO decided_orders (account, order_id, instance, run, decided_at, keep_until)"
                      " VALUES ('x', 'x', 'x', 'x', '3000-01-01', '3000-01-01')")  # fmt: skip
        for sup in both:
            assert sup.shared.keeper.round()
        assert a.evaluate(order(order_id="dup-1", quantity=0.1)).decision == "allow"
        for _ in range(2):
            assert a.shared.keeper.round()
            assert b.shared.keeper.round()
        r = b.evaluate(order(order_id="dup-1", quantity=0.1))
        assert r.reason_code is RC.DUPLICATE_ORDER, (r.decision, r.reason_code, r.reason)
    finally:
        for sup in both:
            sup.stop()
