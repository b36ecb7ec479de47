"""Probe 2: riskgate_round prunes decided_orders with the *calling* instance's
gate.duplicate_window_s, for every instance's rows. One instance with a shorter window (0:
"no duplicate memory", or one not yet reloaded in a rolling config change) deletes the ids
the others have not read yet: a replay through b of an order approved through a is allowed."""

from __future__ import annotations

from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, started


def test_one_instance_with_window_0_wipes_the_others_duplicate_memory(migrated_dsn, tmp_path, clock):
    three = [*started(migrated_dsn, tmp_path, clock, "a", "b", window_s=600.0),
             *started(migrated_dsn, tmp_path, clock, "c", window_s=0.0)]  # fmt: skip
    for sup in three:
        feed(sup, equity=RICH)
    a, b, c = three
    try:
        for sup in three:
            assert sup.shared.keeper.round()
        assert a.evaluate(order(order_id="dup-1", quantity=0.1)).decision == "allow"
        assert a.shared.keeper.round()  # dup-1 in the store
        assert c.shared.keeper.round()  # c's round prunes with its window: 0 s
        assert b.shared.keeper.round()
        r = b.evaluate(order(order_id="dup-1", quantity=0.1))
        assert r.reason_code is RC.DUPLICATE_ORDER, (r.decision, r.reason_code, r.reason)
    finally:
        for sup in three:
            sup.stop()
