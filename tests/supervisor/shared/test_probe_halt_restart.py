"""Probe: a halt the store did not take ("shared as soon as the store answers") is kept in
the halt file only; after a restart the first round adopts the database's "not halted"."""

from __future__ import annotations

import pytest

from supervisor.facade import RiskSupervisor
from supervisor.ops.controls import ControlError
from supervisor.shared.db import SharedStoreError
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, instance_config


def test_an_unshared_halt_survives_a_restart(migrated_dsn, tmp_path, clock):
    cfg = instance_config(migrated_dsn, "a", tmp_path)
    a = RiskSupervisor(cfg, clock=clock, poll_upstreams=False)
    a.start()
    feed(a, equity=RICH)
    assert a.shared.keeper.round()

    def down(*_a, **_k):
        raise SharedStoreError("shared store (controls): OperationalError: server closed the connection")

    a.shared.store.set_halt = down  # the store does not answer the halt
    with pytest.raises(ControlError) as err:
        a.halt("venue outage", by="alice")
    assert err.value.status == 503 and "pushed there as soon as this instance reaches it" in str(err.value)
    a.stop()  # a restart (deploy, crash) before a round pushed it

    a2 = RiskSupervisor(cfg, clock=clock, poll_upstreams=False)
    a2.start()
    try:
        feed(a2, equity=RICH)
        assert a2.shared.keeper.round()
        r = a2.evaluate(order(order_id="after-restart", quantity=0.1))
        assert r.decision == "block", (r.decision, r.reason_code, a2.state()["operator_halt"])
    finally:
        a2.stop()
