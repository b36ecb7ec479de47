"""Probe 2: a restarted instance reads the store's decided ids from the start (seen = 0) but
riskgate_round filters out its own name's rows (`d.instance <> p_instance`). An instance whose
state folder did not survive (a new host or container under the same [instance] name, the
default being the host name) forgets what it approved itself although the store has it: a
replay through it is allowed within the window, while the same replay through any other
instance blocks."""

from __future__ import annotations

import dataclasses
import shutil

from supervisor.core.reasons import ReasonCode as RC
from supervisor.facade import RiskSupervisor
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, instance_config


def test_own_ids_in_the_store_are_ignored_after_a_restart_on_fresh_state(migrated_dsn, tmp_path, clock):
    cfg = instance_config(migrated_dsn, "a", tmp_path)
    cfg = dataclasses.replace(cfg, gate=dataclasses.replace(cfg.gate, duplicate_window_s=600.0))
    a = RiskSupervisor(cfg, clock=clock, poll_upstreams=False)
    a.start()
    feed(a, equity=RICH)
    assert a.shared.keeper.round()
    assert a.evaluate(order(order_id="dup-1", quantity=0.1)).decision == "allow"
    assert a.shared.keeper.round()  # dup-1 is in the store
    a.stop()
    shutil.rmtree(tmp_path / "a")  # the instance comes back on a new host / container

    a2 = RiskSupervisor(cfg, clock=clock, poll_upstreams=False)
    a2.start()
    try:
        feed(a2, equity=RICH)
        assert a2.shared.keeper.round()
        assert a2.shared.keeper.round()
        r = a2.evaluate(order(order_id="dup-1", quantity=0.1))
        assert r.reason_code is RC.DUPLICATE_ORDER, (r.decision, r.reason_code, r.reason)
    finally:
        a2.stop()
