"""Probe 2: a round takes at most 100,000 of the others' decided ids, yet it confirms the
shared state all the same. An instance that (re)starts while more than 100,000 ids are in
the window (1,700 approvals/s over the desk with a 60 s window) opens after its first round
knowing only the oldest 100,000: the most recent ids, the ones a replay is likeliest to
carry, pass as new until further rounds have caught up."""

from __future__ import annotations

import dataclasses

import psycopg

from supervisor.clock import FakeClock
from supervisor.core.messages import AccountState
from supervisor.core.reasons import ReasonCode as RC
from tests.supervisor.shared.test_invariant import RICH, Instance, ask_tiny, config


def test_a_fresh_instance_opens_before_it_has_read_the_window(migrated_dsn):
    with psycopg.connect(migrated_dsn, autocommit=True) as c:  # what the other instances approved lately
        c.execute("INSERT INTO decided_orders (account, order_id, instance, run, decided_at, keep_until)"
                  " SELECT 'tiny', 'z-' || g, 'z', 'rz', clock_timestamp(), clock_timestamp() + interval '1 hour'"
                  " FROM generate_series(1, 100000) AS g")  # fmt: skip
        c.execute(
            "INSERT INTO decided_orders (account, order_id, instance, run, decided_at, keep_until)"
            " VALUES ('tiny', 'dup-latest', 'z', 'rz', clock_timestamp(), clock_timestamp() + interval '1 hour')"
        )
    cfg = config(migrated_dsn)
    cfg = dataclasses.replace(cfg, gate=dataclasses.replace(cfg.gate, duplicate_window_s=600.0))
    clock = FakeClock()
    b = Instance("b", cfg, clock, migrated_dsn)
    for account in ("main", "tiny"):
        b.gate.post(AccountState(account, RICH, (), RICH, RICH), clock.monotonic())
    assert b.keeper.round()  # confirmed: opening orders pass from now on
    assert ask_tiny(b, cfg, "z-1", 0.1).reason_code is RC.DUPLICATE_ORDER
    r = ask_tiny(b, cfg, "dup-latest", 0.1)
    assert r.reason_code is RC.DUPLICATE_ORDER, (r.decision, r.reason_code, r.reason)
