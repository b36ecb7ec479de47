"""Issue 22, item 4: a client's pushed snapshot overrode the portfolio service.

An account past its daily loss limit got a pushed snapshot stamped 4 s ahead
showing a healthy equity: the next order was allowed, and the real polled
snapshots were then refused as out of order. Where snapshots are polled, pushes
over HTTP are refused (403, journaled) unless the account is configured to take
them (the program embedding riskgate still pushes what it knows in process); a
stamp a little ahead counts as now for the order of snapshots.
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.core.reasons import ReasonCode as RC
from tests.adversarial.conftest import journal_events
from tests.helpers import make_config, order, signal
from tests.supervisor.api.conftest import DESK, clients, operators

POLLED = {"snapshot_url": "http://127.0.0.1:9"}  # polled (nothing answers there: the tests push what they need)


def served_with(clock, **accounts):
    config = make_config(
        accounts={**POLLED, **accounts}, api={"operators": operators(), "clients": clients()}
    )  # fmt: skip
    return RiskSupervisor(config, clock=clock, poll_upstreams=False)


def push(url: str, name: str, body: dict) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/accounts/{name}/snapshot",
        content=json.dumps(body),
        headers={"content-type": "application/json", "Authorization": f"Bearer {DESK}"},
        timeout=10,
    )


def test_a_push_for_a_polled_account_is_refused_and_journaled(clock):
    with served_with(clock) as sup:
        server = sup.serve_api(port=0)
        r = push(server.url, "main", {"equity": 100_000.0})
        assert r.status_code == 403 and "takes_pushes" in r.json()["detail"]
        refused = journal_events(sup, "snapshot_push_refused")
        assert [(e["source"], e["account"]) for e in refused] == [("api", "main")]
        sup.report_ess_active(False)
        sup.report_risk_signal(signal("INFO", clock.now()))
        assert sup.evaluate(order()).reason_code is RC.ACCOUNT_STATE_STALE  # nothing was applied


def test_an_account_configured_to_take_pushes_takes_them(clock):
    main = {"exchange": "binance", "capital_profile": "normal", "max_notional_usd": 50_000.0, "takes_pushes": True}
    with served_with(clock, main=main) as sup:
        server = sup.serve_api(port=0)
        assert push(server.url, "main", {"equity": 100_000.0}).status_code == 200
        assert push(server.url, "tiny", {"equity": 100_000.0}).status_code == 403


@pytest.fixture
def pushed(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        sup.report_ess_active(False)
        sup.report_risk_signal(signal("INFO", clock.now()))
        yield sup


def test_a_stamp_a_little_ahead_never_makes_the_next_honest_snapshot_out_of_order(pushed, clock):
    ahead = pushed.report_account_snapshot(
        AccountSnapshot("main", 100_000.0, timestamp=clock.now() + timedelta(seconds=4))
    )
    assert ahead is not None
    clock.advance(1.0)
    honest = pushed.report_account_snapshot(
        AccountSnapshot("main", 95_000.0, timestamp=clock.now() - timedelta(seconds=0.5))
    )
    assert honest is not None and honest.equity == 95_000.0


def test_a_stamp_beyond_the_skew_bound_is_unusable(pushed, clock):
    state = pushed.report_account_snapshot(
        AccountSnapshot("main", 100_000.0, timestamp=clock.now() + timedelta(seconds=6))
    )
    assert state is not None and "future" in (state.problem or "")
    assert pushed.evaluate(order()).reason_code is RC.ACCOUNT_STATE_STALE
