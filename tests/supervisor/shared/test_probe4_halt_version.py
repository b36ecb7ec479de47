"""Probe 26: the shared halt's version is the only order of halts and resumes; a row whose
version went back (a database restored from a backup, the row re-created by hand) makes every
instance that saw a later version ignore the halts made after it."""

from __future__ import annotations

import psycopg

from supervisor.core.reasons import ReasonCode as RC
from supervisor.facade import RiskSupervisor
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, instance_config, started


def test_a_halt_after_the_rows_version_went_back_holds_on_every_instance(migrated_dsn, tmp_path, clock):
    a, b = started(migrated_dsn, tmp_path, clock, "a", "b")
    try:
        for s in (a, b):
            feed(s, equity=RICH)
            assert s.shared.keeper.round()
        for n in range(3):  # a day's drills: the row's version climbs to 6
            a.halt(f"drill {n}", by="alice")
            a.resume(by="alice", reason="drill over")
        for s in (a, b):
            assert s.shared.keeper.round()
        # The database is restored from last night's backup (or the row re-made by hand).
        with psycopg.connect(migrated_dsn, autocommit=True) as conn:
            conn.execute("UPDATE operator_halt SET active = FALSE, halts = '[]', by_name = NULL, version = 0")
        b.halt("exchange is down", by="bob")  # the store takes it: version 1
        for s in (a, b):
            feed(s, equity=RICH)
            assert s.shared.keeper.round()
        r = a.evaluate(order(order_id="after-halt", quantity=0.1))
        assert r.reason_code is RC.ESS_HALT_ACTIVE, f"{r.decision} {r.reason_code} {r.reason}"
    finally:
        a.stop()
        b.stop()


def test_a_restarted_instance_takes_up_a_halt_after_the_rows_version_went_back(migrated_dsn, tmp_path, clock):
    a = RiskSupervisor(instance_config(migrated_dsn, "a", tmp_path), clock=clock, poll_upstreams=False)
    a.start()
    try:
        feed(a, equity=RICH)
        for n in range(3):
            a.halt(f"drill {n}", by="alice")
            a.resume(by="alice", reason="drill over")
    finally:
        a.stop()
    with psycopg.connect(migrated_dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE operator_halt SET active = TRUE, by_name = 'bob', reason = 'down',"
            ' halts = \'[{"by": "bob", "reason": "down", "mode": "all"}]\', version = 1'
        )
    a = RiskSupervisor(instance_config(migrated_dsn, "a", tmp_path), clock=clock, poll_upstreams=False)
    a.start()
    try:
        feed(a, equity=RICH)
        assert a.shared.keeper.round()
        r = a.evaluate(order(order_id="after-restart", quantity=0.1))
        assert r.reason_code is RC.ESS_HALT_ACTIVE, f"{r.decision} {r.reason_code} {r.reason}"
    finally:
        a.stop()
