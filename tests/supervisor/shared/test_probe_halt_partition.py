"""Probe: the 503 of a halt the store did not take says "every other instance blocks opening
orders meanwhile"; when only this instance cannot reach the store, the others keep allowing."""

from __future__ import annotations

import pytest

from supervisor.ops.controls import ControlError
from supervisor.shared.db import SharedStoreError
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, started


def test_others_keep_allowing_after_an_unshared_halt(migrated_dsn, tmp_path, clock):
    a, b = started(migrated_dsn, tmp_path, clock, "a", "b")
    try:
        feed(a, equity=RICH)
        feed(b, equity=RICH)
        a.shared.keeper.round()
        b.shared.keeper.round()

        def down(*_a, **_k):  # a alone is cut off from the store (its network)
            raise SharedStoreError("shared store (controls): OperationalError: timeout")

        a.shared.store.set_halt = down
        a.shared.store.round = lambda *x, **y: (_ for _ in ()).throw(SharedStoreError("timeout"))
        with pytest.raises(ControlError) as err:
            a.halt("venue outage", by="alice")
        # Found by a probe: the answer claimed every other instance then blocked; with only this
        # one cut off, the others go on (they never heard of the halt). The answer now says so.
        assert "do not know of it: halt them too" in str(err.value)
        assert a.evaluate(order(order_id="a0", quantity=0.1)).decision == "block"
        for step in range(3):
            clock.advance(1.0)
            feed(b, equity=RICH)
            assert b.shared.keeper.round()
            assert b.evaluate(order(order_id=f"b{step}", quantity=0.1)).decision == "allow"  # as said
    finally:
        a.stop()
        b.stop()
