"""Issue 22, also-close: client tokens were not scoped, and cancels could not be reported.

Any client could report fills and outcomes for any account and release another
desk's reservations. `[api.clients.NAME] accounts = [...]` now limits what a
client may evaluate (CLIENT_NOT_PERMITTED) and report (403); `POST
/v1/messages` counts a client's cancels and edits toward
`gate.max_messages_per_s`.
"""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from supervisor import RiskSupervisor
from supervisor.config import ConfigError
from supervisor.core.reasons import ReasonCode as RC
from tests.adversarial.conftest import journal_events
from tests.helpers import config_dict, feed, make_config, order
from tests.supervisor.api.conftest import DESK, operators

BOLD_DESK = "bold-desk-token-0123456789abcdef"


def clients() -> dict:
    return {
        "desk": {"token_sha256": hashlib.sha256(DESK.encode()).hexdigest()},
        "bold_desk": {"token_sha256": hashlib.sha256(BOLD_DESK.encode()).hexdigest(), "accounts": ["bold"]},
    }


@pytest.fixture
def scoped(clock):
    config = make_config(api={"operators": operators(), "clients": clients()}, gate={"max_messages_per_s": 3})
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as sup:
        server = sup.serve_api(port=0)
        feed(sup, equity=10_000_000.0)
        with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {BOLD_DESK}"}) as http:
            yield sup, http


def post(http: httpx.Client, path: str, body: object) -> httpx.Response:
    return http.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


BOLD_ORDER = order(account="bold", exchange="bybit", order_id="b-1")


def test_a_scoped_client_decides_only_its_own_accounts_orders(scoped):
    sup, http = scoped
    assert post(http, "/v1/evaluate", BOLD_ORDER).json()["decision"] == "allow"
    other = post(http, "/v1/evaluate", order(order_id="m-1")).json()
    assert (other["decision"], other["reason_code"]) == ("block", "CLIENT_NOT_PERMITTED")
    batch = post(http, "/v1/evaluate/batch", [order(order_id="m-2"), {**BOLD_ORDER, "order_id": "b-2"}]).json()
    assert [d["reason_code"] for d in batch] == ["CLIENT_NOT_PERMITTED", "ALL_CHECKS_PASSED"]
    assert sup.health()["gate"]["reservations"] == 2  # main's were never asked of the gate
    sup.flush_journal()
    assert [d["reason_code"] for d in sup.decisions(account="main")] == ["CLIENT_NOT_PERMITTED"] * 2


def test_a_scoped_client_cannot_report_for_or_release_another_desks_orders(scoped):
    sup, http = scoped
    assert sup.evaluate(order(order_id="m-1")).decision == "allow"  # main's order, in flight
    fill = {"account": "main", "exchange": "binance", "symbol": "SOLUSDT", "side": "buy", "quantity": 1.0,
            "price": 100.0, "order_id": "m-1"}  # fmt: skip
    assert post(http, "/v1/fills", fill).status_code == 403
    r = post(http, "/v1/outcomes", {"order_id": "m-1", "status": "cancelled", "account": "main"})
    assert r.status_code == 403 and "bold_desk" in r.json()["detail"]
    assert post(http, "/v1/accounts/main/snapshot", {"equity": 1.0}).status_code == 403
    assert post(http, "/v1/messages", {"account": "main", "kind": "cancel"}).status_code == 403
    assert sup.health()["gate"]["reservations"] == 1  # still held
    assert len(journal_events(sup, "client_not_permitted")) == 4


def test_an_unscoped_client_still_acts_for_every_account(scoped):
    sup, _ = scoped
    with httpx.Client(base_url=sup.api_server.url, timeout=10, headers={"Authorization": f"Bearer {DESK}"}) as http:
        assert post(http, "/v1/evaluate", order(order_id="m-9")).json()["decision"] == "allow"


def test_cancels_reported_over_http_count_toward_the_message_rate(scoped):
    sup, http = scoped
    r = post(http, "/v1/messages", {"account": "bold", "kind": "cancel", "count": 3})
    assert r.status_code == 202 and r.json()["counted"] == 3
    [said] = journal_events(sup, "messages_reported")  # traceable: who said how many
    assert (said["account"], said["detail"]) == ("bold", {"client": "bold_desk", "message": "cancel", "count": 3})
    blocked = post(http, "/v1/evaluate", BOLD_ORDER).json()
    assert blocked["reason_code"] == "ORDER_RATE_EXCEEDED", blocked


@pytest.mark.parametrize(
    "body",
    [{"account": "bold", "kind": "delete"}, {"account": "bold", "kind": "cancel", "count": 0},
     {"account": "bold", "kind": "cancel", "count": 10**6}, {"account": "bold", "kind": "cancel", "count": 1.5},
     {"account": "bold", "kind": "cancel", "count": True}, {"kind": "cancel"}, {"account": "bold"},
     {"account": "bold", "kind": "cancel", "extra": 1}, ["bold"]],
)  # fmt: skip
def test_a_malformed_message_report_is_a_422_and_counts_nothing(scoped, body):
    _, http = scoped
    r = post(http, "/v1/messages", body)
    assert r.status_code == 422, r.text
    assert post(http, "/v1/evaluate", BOLD_ORDER).json()["reason_code"] == "ALL_CHECKS_PASSED"


def test_a_scope_naming_an_unknown_account_is_a_config_error():
    from supervisor.config import parse_config

    bad = clients()
    bad["bold_desk"]["accounts"] = ["bolt"]
    with pytest.raises(ConfigError, match=r"api\.clients\.bold_desk\.accounts: names 'bolt'.*did you mean \"bold\""):
        parse_config(config_dict(api={"clients": bad}))
    bad["bold_desk"]["accounts"] = []
    with pytest.raises(ConfigError, match="at least one account"):
        parse_config(config_dict(api={"clients": bad}))
    ops = {"alice": {**operators()["alice"], "accounts": ["main"]}}
    with pytest.raises(ConfigError, match=r"api\.operators\.alice\.accounts: unknown key"):
        parse_config(config_dict(api={"operators": ops}))


def test_an_in_process_decision_is_never_scoped(scoped):
    sup, _ = scoped
    assert sup.evaluate(order(order_id="m-5")).reason_code is RC.ALL_CHECKS_PASSED


def test_a_scope_with_open_execution_access_is_a_config_error():
    """A second probe: with execution open to anyone, a scoped client just left its token out."""
    from supervisor.config import parse_config

    with pytest.raises(ConfigError, match=r'api\.execution_access: must be "token"'):
        parse_config(config_dict(api={"clients": clients(), "execution_access": "open"}))
