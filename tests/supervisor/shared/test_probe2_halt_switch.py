"""Probe 2: an instance halted before it shared anything (the sqlite backend, the default; or
a fresh database after `riskgate db migrate`) is resumed by its first round: the halt file is
read at load, but `_halt_changed` is None and `unshared` is not set, so _adopt_halt takes the
database's row, "never halted since the schema was made", older than the halt, as the truth."""

from __future__ import annotations

import dataclasses

from supervisor.facade import RiskSupervisor
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, instance_config


def test_a_halt_made_before_sharing_is_undone_by_the_first_round(migrated_dsn, tmp_path, clock):
    shared = instance_config(migrated_dsn, "a", tmp_path)
    alone = dataclasses.replace(shared, store=dataclasses.replace(shared.store, backend="sqlite"))
    a = RiskSupervisor(alone, clock=clock, poll_upstreams=False)
    a.start()
    feed(a, equity=RICH)
    a.halt("venue outage: do not trade", by="alice")
    a.stop()

    a2 = RiskSupervisor(shared, clock=clock, poll_upstreams=False)  # the desk moves to postgresql
    a2.start()
    try:
        feed(a2, equity=RICH)
        assert a2.evaluate(order(order_id="before-round", quantity=0.1)).decision == "block"
        assert a2.shared.keeper.round()
        r = a2.evaluate(order(order_id="after-round", quantity=0.1))
        assert r.decision == "block", (r.decision, r.reason_code, a2.state()["operator_halt"])
    finally:
        a2.stop()
