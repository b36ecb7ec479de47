"""Probe 25: GET /v1/decisions/explain lists "the events of the minute before that concern its
account (or every account)", but the journal query takes the 10 latest events of *every* account
first (query.explanations: `reader.events(..., limit=10)`) and only then drops other accounts'
ones. Ten events of another account (here: a client's cancel reports for `bold`) push the
operator halt that decided the order out of its explanation, leaving it empty."""

from __future__ import annotations

import pytest

from supervisor import RiskSupervisor
from tests.supervisor.api.conftest import ALICE, DESK
from tests.supervisor.api.test_controls import call, config, decide, feed


@pytest.fixture
def sup(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as s:
        s.serve_api(port=0)
        feed(s)
        yield s


def test_another_accounts_events_do_not_hide_the_halt_that_decided_an_order(sup, clock):
    assert call(sup, "POST", "/v1/halt", ALICE, {"reason": "venue outage"}).status_code == 200
    clock.advance(1.0)
    for _ in range(10):
        r = call(sup, "POST", "/v1/messages", DESK, {"account": "bold", "kind": "cancel"})
        assert r.status_code == 202
    clock.advance(1.0)
    feed(sup)
    out = decide(sup, order_id="held-1")
    assert out["reason_code"] == "ESS_HALT_ACTIVE"
    sup.flush_journal()
    (row,) = call(sup, "GET", "/v1/decisions/explain?order_id=held-1", None).json()
    kinds = [e["kind"] for e in row["events_in_the_minute_before"]]
    assert "operator_halt" in kinds, f"the halt that decided it is not in its explanation: {kinds}"
