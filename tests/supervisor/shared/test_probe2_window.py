"""Probe 2: riskgate_round prunes decided_orders with the *calling* instance's
gate.duplicate_window_s, for every instance's rows. One instance with a shorter window (0:
"no duplicate memory", or one not yet reloaded in a rolling config change) deletes the ids
the others have not read yet: a replay through b of an order approved through a is allowed."""

from __future__ import annotations

import dataclasses

from supervisor.core.reasons import ReasonCode as RC
from supervisor.facade import RiskSupervisor
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, instance_config


def test_one_instance_with_window_0_wipes_the_others_duplicate_memory(migrated_dsn, tmp_path, clock):
    started = []
    for name, window in (("a", 600.0), ("b", 600.0), ("c", 0.0)):
        cfg = instance_config(migrated_dsn, name, tmp_path)
        cfg = dataclasses.replace(cfg, gate=dataclasses.replace(cfg.gate, duplicate_window_s=window))
        sup = RiskSupervisor(cfg, clock=clock, poll_upstreams=False)
        sup.start()
        feed(sup, equity=RICH)
        started.append(sup)
    a, b, c = started
    try:
        for sup in started:
            assert sup.shared.keeper.round()
        assert a.evaluate(order(order_id="dup-1", quantity=0.1)).decision == "allow"
        assert a.shared.keeper.round()  # dup-1 in the store
        assert c.shared.keeper.round()  # c's round prunes with its window: 0 s
        assert b.shared.keeper.round()
        r = b.evaluate(order(order_id="dup-1", quantity=0.1))
        assert r.reason_code is RC.DUPLICATE_ORDER, (r.decision, r.reason_code, r.reason)
    finally:
        for sup in started:
            sup.stop()
