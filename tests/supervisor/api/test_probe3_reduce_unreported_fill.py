"""Probe 25: a reducing order whose end is reported "filled" before (or without) its fill is
forgotten at once: `GateState.ended` releases a reservation with no notional (a pure reduction)
whole, reducing quantity included, while the account's book still shows the position it had
before. The next order of the same size is then judged "reducing" again, and passes a reduce-only
halt (or a loss-limit lockout) although it opens the opposite position.

For an opening order the same report keeps the unreported part reserved for
`gate.reservation_ttl_s` ("no position holds it yet"); a reduction gets no such treatment. The
guarded exchange wrapper sends exactly this report when an exchange answers a closed order with
an unreadable filled quantity (execution.py `update`)."""

from __future__ import annotations

import pytest

from tests.supervisor.api.conftest import ALICE, DESK
from tests.supervisor.api.test_controls import call, decide, serving


@pytest.fixture
def sup(clock, tmp_path):
    with serving(clock, tmp_path) as s:  # main: long 3 SOLUSDT on binance
        yield s


def test_a_reduction_reported_filled_without_its_fill_is_not_reducible_twice_in_reduce_only_mode(sup):
    r = call(sup, "POST", "/v1/halt", ALICE, {"reason": "venue wobbly", "mode": "reduce_only"})
    assert r.status_code == 200 and r.json()["mode"] == "reduce_only"
    first = decide(sup, side="sell", quantity=3.0, order_id="close-1")  # closes the long: passes
    assert first["decision"] == "allow"
    # The exchange says it filled; the execution service reports the end (the fill report lags).
    r = call(sup, "POST", "/v1/outcomes", DESK,
             {"order_id": "close-1", "status": "filled", "filled_quantity": 3.0, "account": "main"})  # fmt: skip
    assert r.status_code == 202
    # The long is gone: another sell of 3 opens a short of 3, which reduce-only mode must block.
    second = decide(sup, side="sell", quantity=3.0, order_id="close-2")
    assert (second["decision"], second["reason_code"]) == ("block", "REDUCE_ONLY_MODE"), second
