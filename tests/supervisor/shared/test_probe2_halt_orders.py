"""Probe 2 (held): halt via a, resume via b, halt via a again, with rounds read at every point
and adopted late, in every order: a halted instance's last action is never undone by a stale read."""

from __future__ import annotations

import itertools

from supervisor.facade import RiskSupervisor
from tests.helpers import feed
from tests.supervisor.shared.test_instances import RICH, instance_config


def test_stale_rounds_in_every_order(migrated_dsn, tmp_path, clock):
    sups = {}
    for name in ("a", "b"):
        sups[name] = RiskSupervisor(instance_config(migrated_dsn, name, tmp_path), clock=clock, poll_upstreams=False)
        sups[name].start()
        feed(sups[name], equity=RICH)
    a, b = sups["a"], sups["b"]
    try:

        def read(sup):
            return sup.shared.store.round([], True, (), 10**12, 60.0)  # a round's read, adopted later

        steps = [("halt", a), ("resume", b), ("halt", a)]
        reads = []
        for op, sup in steps:
            reads.append(read(a))
            reads.append(read(b))
            if op == "halt":
                sup.halt("x", by="alice")
            else:
                sup.resume(by="bob")
        final = [read(a), read(b)]
        for perm in itertools.permutations(range(len(reads)), 4):
            for i in perm:
                (a if i % 2 == 0 else b).controls.adopt_shared(reads[i])
            for sup in (a, b):
                sup.controls.adopt_shared(final[0])
            assert a.controls.halt_status()["active"] is True
            assert b.controls.halt_status()["active"] is True
    finally:
        for sup in sups.values():
            sup.stop()
