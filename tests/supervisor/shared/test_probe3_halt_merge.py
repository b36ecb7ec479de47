"""Probe 25: stacked halts through the shared store. `set_halt` writes this instance's view of
the stacked halts over the database's whole `halts` column (no merge, no version check), so an
instance that did not see another operator's halt (cut off from the store, or simply before its
next round) replaces it: a halt of every order made through instance A is weakened to a
reduce-only halt made through instance B, on every instance."""

from __future__ import annotations

import pytest

from supervisor import AccountSnapshot, Position
from supervisor.ops.controls import ControlError
from supervisor.shared.db import SharedStoreError
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, started

LONG_SOL = (Position("SOLUSDT", "binance", 3.0, 100.0),)


def _fed(sup):
    feed(sup, equity=RICH)
    sup.report_account_snapshot(AccountSnapshot("main", RICH, LONG_SOL))


def test_a_reduce_only_halt_pushed_after_a_partition_erases_another_operators_full_halt(migrated_dsn, tmp_path, clock):
    a, b = started(migrated_dsn, tmp_path, clock, "a", "b")
    try:
        for s in (a, b):
            _fed(s)
            assert s.shared.keeper.round()

        # b is cut off from the store for a moment; bob halts opening orders there.
        store = b.shared.store
        real_set_halt, real_round = store.set_halt, store.round

        def down(*_a, **_k):
            raise SharedStoreError("shared store (controls): OperationalError: timeout")

        store.set_halt = down
        store.round = down
        with pytest.raises(ControlError):  # 503: kept on b, pushed when b reaches the store
            b.halt("funding spike", by="bob", mode="reduce_only")

        # Meanwhile alice halts every order through a, which reaches the store.
        a.halt("exchange API returning garbage: send nothing", by="alice")
        assert a.evaluate(order(order_id="a1", side="sell", quantity=1.0)).reason_code.value == "ESS_HALT_ACTIVE"

        # b comes back: its round pushes its halt...
        store.set_halt, store.round = real_set_halt, real_round
        clock.advance(1.0)
        _fed(b)
        b.shared.keeper.round()
        b.shared.keeper.round()
        clock.advance(1.0)
        _fed(a)
        a.shared.keeper.round()

        # ... and alice's halt of every order must still hold, on both instances.
        out = a.evaluate(order(order_id="a2", side="sell", quantity=1.0))  # reduces the long
        assert out.decision == "block", f"a reducing order passed a full halt: {out.reason_code} {out.reason}"
        held = a.controls.halt_status()
        assert held.get("mode") == "all", f"alice's full halt was replaced: {held}"
    finally:
        a.stop()
        b.stop()
