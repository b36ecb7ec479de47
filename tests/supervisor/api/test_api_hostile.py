"""The holes a hostile client found in the first API, each closed and kept closed."""

from __future__ import annotations

import json

import httpx
import pytest

from supervisor import RiskSupervisor
from supervisor.api.server import ApiStartError
from tests.helpers import feed, make_config, order
from tests.supervisor.api.conftest import ALICE, DESK, clients, operators

FILL = {"account": "main", "exchange": "binance", "symbol": "SOLUSDT", "side": "buy", "quantity": 1, "price": 100}
WRITES = [
    ("/v1/evaluate", order()),
    ("/v1/evaluate/batch", [order()]),
    ("/v1/fills", FILL),
    ("/v1/outcomes", {"order_id": "x", "status": "cancelled", "account": "main"}),
    ("/v1/accounts/main/snapshot", {"equity": 1e11}),
]


def raw_post(sup: RiskSupervisor, path: str, body: object, headers: dict | list | None = None) -> httpx.Response:
    return httpx.post(sup.api_server.url + path, content=json.dumps(body), headers=headers, timeout=10.0)


@pytest.mark.parametrize(("path", "body"), WRITES)
def test_every_write_needs_an_execution_clients_token(sup, path, body):
    feed(sup)
    json_type = {"content-type": "application/json"}
    for headers in (
        json_type,  # none
        {**json_type, "Authorization": f"Bearer {DESK}x"},
        {**json_type, "Authorization": DESK},  # no scheme
    ):
        r = raw_post(sup, path, body, headers)
        assert r.status_code == 401, (path, headers)
        assert r.headers["www-authenticate"] == 'Bearer realm="riskgate"'
    # An operator is not an execution client: a valid token of the wrong role is a 403 naming it.
    r = raw_post(sup, path, body, {**json_type, "Authorization": f"Bearer {ALICE}"})
    assert r.status_code == 403 and "alice" in r.json()["detail"] and "execution client" in r.json()["detail"]
    # Two Authorization headers: which one counts? Neither.
    two = [("content-type", "application/json"), ("authorization", f"Bearer {DESK}"), ("authorization", "Bearer x")]
    assert raw_post(sup, path, body, two).status_code == 401
    # Nothing moved: the forged equity never reached the gate.
    assert sup.state()["accounts"]["main"]["equity_usd"] == 10_000.0


@pytest.mark.parametrize(("path", "body"), WRITES)
def test_a_body_not_sent_as_json_is_415_so_a_web_page_cannot_post_one(sup, path, body):
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Authorization": f"Bearer {DESK}"}
        if content_type:
            headers["content-type"] = content_type
        r = raw_post(sup, path, body, headers)
        assert r.status_code == 415, (path, content_type)


def test_execution_access_open_lets_a_loopback_desk_in_without_a_token(clock):
    config = make_config(api={"execution_access": "open"})
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        out = raw_post(sup, "/v1/evaluate", order(), {"content-type": "application/json"}).json()
        assert out["decision"] == "allow"


def test_refused_tokens_are_journaled_but_a_flood_is_counted_not_queued(sup, clock):
    for _ in range(30):
        raw_post(sup, "/v1/evaluate", order(), {"content-type": "application/json", "Authorization": "Bearer nope"})
    clock.advance(1.0)
    raw_post(sup, "/v1/evaluate", order(), {"content-type": "application/json"})
    sup.flush_journal()
    from supervisor.journal.store import JOURNAL_NAME, JournalReader

    reader = JournalReader(sup.config.state.dir / JOURNAL_NAME)
    try:
        refused = [json.loads(e["detail"]) for e in reader.events(limit=1000) if e["kind"] == "auth_failed"]
    finally:
        reader.close()
    assert len(refused) == 21  # 20 in the first second, then one that counts the 10 not journaled
    assert refused[0]["not_journaled_before"] == 10 and refused[0]["why"] == "no bearer token"
    assert all("nope" not in json.dumps(e) for e in refused)


def test_a_lone_surrogate_is_an_invalid_order_and_the_journal_keeps_writing(sup, http):
    feed(sup)
    for field in ("strategy_id", "symbol", "account", "order_id"):
        raw = json.dumps(order(**{field: "\ud800x"}))  # json.dumps escapes it: "\\ud800x"
        out = http.post("/v1/evaluate", content=raw, headers={"content-type": "application/json"}).json()
        assert (out["decision"], out["reason_code"]) in {("block", "INVALID_ORDER"), ("block", "UNKNOWN_ACCOUNT")}, (
            field
        )
    assert http.post("/v1/evaluate", json=order(order_id="after")).json()["decision"] == "allow"
    assert sup.flush_journal() > 0
    assert sup.state()["journal"]["problem"] is None
    rows = http.get("/v1/decisions", params={"limit": 10}).json()
    assert rows[0]["order_id"] == "after"
    assert any("\\ud800" in (r["strategy_id"] or "") + (r["reason"] or "") for r in rows)  # kept, escaped


@pytest.mark.parametrize("strategy", ["Martingale", "MARTINGALE", "martingale ", " martingale", "EXPERIMENTAL_HFT"])
def test_a_blacklisted_strategy_cannot_hide_behind_case_or_spaces(sup, http, strategy):
    feed(sup)
    out = http.post("/v1/evaluate", json=order(strategy_id=strategy)).json()
    assert out["decision"] == "block" and out["reason_code"] in ("STRATEGY_NOT_ALLOWED", "INVALID_ORDER"), out


def test_a_look_alike_strategy_id_is_refused(sup, http):
    feed(sup)
    out = http.post("/v1/evaluate", json=order(strategy_id="m\u0430rtingale")).json()  # Cyrillic a
    assert (out["reason_code"], "ASCII" in out["reason"]) == ("INVALID_ORDER", True)


def test_a_snapshot_with_one_position_twice_is_ambiguous(sup, http):
    feed(sup)
    position = {"symbol": "SOLUSDT", "exchange": "binance", "quantity": 1, "mark_price": 100}
    r = http.post("/v1/accounts/main/snapshot", json={"equity": 10_000, "positions": [position, position]})
    assert r.status_code == 422 and "appears twice" in r.json()["detail"]


def test_a_snapshot_the_tracker_refuses_is_a_422_not_a_503(sup, http):
    feed(sup)
    r = http.post("/v1/accounts/main/snapshot", json={"equity": 10_000, "timestamp": "2020-01-01T00:00:00Z"})
    assert r.status_code == 422 and "refused by the account tracker" in r.json()["detail"]


def test_a_taken_port_fails_the_start_before_any_actor_runs(clock, tmp_path):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as first:
        port = first.serve_api(port=0).port
        config = make_config(api={"port": port}, state={"dir": str(tmp_path / "other")})
        second = RiskSupervisor(config, clock=clock, poll_upstreams=False, api=True)
        with pytest.raises(ApiStartError, match=f"cannot listen on 127.0.0.1:{port}"):
            second.start()
        assert second.gate_ref is None
        # The state folder's lock was released: another supervisor can take the folder.
        third = RiskSupervisor(make_config(state={"dir": str(tmp_path / "other")}), clock=clock, poll_upstreams=False)
        third.start().stop()


def test_probes_answer_on_the_event_loop():
    # /healthz and /readyz must not queue behind slow reads in the thread pool.
    from fastapi.routing import APIRoute

    from supervisor.api.app import build_app

    class Service:  # only what building the app touches
        config = make_config(api={"operators": operators(), "clients": clients()})

    app = build_app(Service())  # type: ignore[arg-type]
    routes = {r.path: r for r in app.routes if isinstance(r, APIRoute)}
    import inspect

    assert inspect.iscoroutinefunction(routes["/healthz"].endpoint)
    assert inspect.iscoroutinefunction(routes["/readyz"].endpoint)
