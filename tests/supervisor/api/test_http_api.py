"""Every endpoint over real HTTP on loopback (uvicorn on port 0), hostile cases first."""

from __future__ import annotations

import json
import shutil
import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor import RiskSupervisor
from supervisor.api.app import MAX_BATCH, MAX_BODY_BYTES
from tests.helpers import feed, make_config, order
from tests.supervisor.api.conftest import ALICE, DESK, clients, operators


def post(http: httpx.Client, path: str, body: object, **kw) -> httpx.Response:
    return http.post(path, content=json.dumps(body), headers={"content-type": "application/json"}, **kw)


# -- probes ------------------------------------------------------------------------------


def test_healthz_answers_while_nothing_is_known(http):
    r = http.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "alive"})


def test_healthz_from_the_fast_path_is_what_the_fastapi_route_answers(sup, http):
    """The probe is answered in front of FastAPI (the listener's cheapest answer, bench section 9):
    the same status, body and type as its documented route, which HEAD still reaches."""
    from fastapi.testclient import TestClient

    from supervisor.api.app import build_app

    fast = http.get("/healthz")
    with TestClient(build_app(sup._system._service)) as direct:
        routed = direct.get("/healthz")
    assert (fast.status_code, fast.content) == (routed.status_code, routed.content) == (200, b'{"status":"alive"}')
    assert fast.headers["content-type"] == routed.headers["content-type"] == "application/json"
    assert http.head("/healthz").status_code == 200


def test_readyz_is_503_before_state_200_when_fresh_503_again_when_a_source_goes_stale(sup, http, clock):
    r = http.get("/readyz")
    assert r.status_code == 503
    missing = r.json()["missing"]
    assert "risk_v3: no state yet" in missing
    assert "ess: no state yet" in missing
    assert {"account:main: no state yet", "account:tiny: no state yet", "account:bold: no state yet"} <= set(missing)

    assert sup.health()["readiness"]["ready"] is False
    feed(sup)
    assert http.get("/readyz").status_code == 200
    assert http.get("/readyz").json() == {"ready": True, "missing": []}
    assert sup.health()["readiness"] == {"ready": True, "missing": []}

    clock.advance(4.0)  # ESS max_age_s is 3
    r = http.get("/readyz")
    assert r.status_code == 503
    assert r.json()["missing"] == ["ess: stale (4.0 s > max_age_s 3 s)"]
    sup.report_ess_active(False)
    assert http.get("/readyz").status_code == 200


def test_one_account_without_state_keeps_it_not_ready(sup, http):
    feed(sup)
    sup.config.accounts.accounts  # noqa: B018 - the three configured accounts all reported
    assert http.get("/readyz").status_code == 200
    fresh = RiskSupervisor(make_config(), clock=sup.clock, poll_upstreams=False)
    assert fresh.readiness() == ["gate: not running"] + [
        f"{s}: no state yet" for s in ("risk_v3", "ess", "account:main", "account:tiny", "account:bold")
    ]


# -- /v1/evaluate: hostile bodies first ---------------------------------------------------------


def test_a_body_that_is_not_json_is_a_422_naming_the_problem(sup, http):
    feed(sup)
    r = http.post("/v1/evaluate", content=b'{"account": "main", ', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("body is not JSON")
    r = http.post("/v1/evaluate", content=b"\xff\xfe not utf-8", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_json_that_is_not_a_valid_order_is_an_invalid_order_decision_never_a_5xx(sup, http):
    feed(sup)
    cases = {
        "a list": [1, 2],
        "a number": 7,
        "null": None,
        "missing price": {k: v for k, v in order().items() if k != "price"},
        "NaN quantity": None,  # sent raw below: NaN is not JSON, but Python's parser reads it
        "string quantity": order(quantity="1e9"),
        "negative quantity": order(quantity=-1),
        "unknown field": order(nonsense=1),
        "nested object": order(quantity={"$gt": 0}),
        "too many fields": {f"k{i}": i for i in range(50)},
    }
    for name, body in cases.items():
        if name == "NaN quantity":
            raw = json.dumps(order()).replace('"quantity": 1.0', '"quantity": NaN')
            r = http.post("/v1/evaluate", content=raw, headers={"content-type": "application/json"})
        else:
            r = post(http, "/v1/evaluate", body)
        assert r.status_code == 200, (name, r.text)
        out = r.json()
        assert (out["decision"], out["reason_code"], out["adjusted_quantity"]) == ("block", "INVALID_ORDER", 0.0), name


def test_an_unknown_account_is_named(sup, http):
    feed(sup)
    out = post(http, "/v1/evaluate", order(account="nobody")).json()
    assert (out["decision"], out["reason_code"]) == ("block", "UNKNOWN_ACCOUNT")


def test_a_key_given_twice_is_ambiguous_and_blocked_not_guessed(sup, http):
    feed(sup)
    raw = '{"account":"main","exchange":"binance","strategy_id":"trend_v2","symbol":"SOLUSDT","side":"buy",'
    raw += '"quantity":1,"price":100,"quantity":1000}'
    out = http.post("/v1/evaluate", content=raw, headers={"content-type": "application/json"}).json()
    assert (out["decision"], out["reason_code"]) == ("block", "INVALID_ORDER")
    assert "'quantity' appears twice" in out["reason"]


def test_a_body_over_the_limit_is_a_413_and_deep_nesting_a_422(sup, http):
    json_type = {"content-type": "application/json"}
    r = http.post("/v1/evaluate", content=b"[" + b" " * MAX_BODY_BYTES + b"]", headers=json_type)
    assert r.status_code == 413
    r = http.post("/v1/evaluate", content=b"[" * 100_000 + b"]" * 100_000, headers=json_type)
    assert r.status_code in (413, 422)  # never a 5xx
    r = http.post("/v1/evaluate", content=b"[" * 50_000 + b"]" * 50_000, headers=json_type)
    assert r.status_code == 422


def test_evaluate_answers_like_the_python_api(sup, http):
    feed(sup)
    out = post(http, "/v1/evaluate", order(order_id="http-1")).json()
    assert out["decision"] == "allow" and out["reason_code"] == "ALL_CHECKS_PASSED"
    assert out["order_id"] == "http-1" and out["adjusted_quantity"] == 1.0
    assert out["risk_level"] == "INFO" and out["ess_active"] is False
    assert out["timestamp"].endswith("Z") and set(out["state_age_s"]) == {"ess", "risk_v3", "account"}
    out = post(http, "/v1/evaluate", order(leverage=4.0)).json()
    assert (out["decision"], out["reason_code"]) == ("block", "LEVERAGE_EXCEEDS_LIMIT")
    sup.report_ess_active(True, "drill")
    out = post(http, "/v1/evaluate", order()).json()
    assert (out["reason_code"], out["ess_active"]) == ("ESS_HALT_ACTIVE", True)


def test_batch_decides_in_order_and_refuses_what_is_not_a_list(sup, http):
    feed(sup)
    out = post(http, "/v1/evaluate/batch", [order(order_id="b1"), order(leverage=4.0, order_id="b2"), "junk"]).json()
    assert [(o["order_id"], o["reason_code"]) for o in out][:2] == [
        ("b1", "ALL_CHECKS_PASSED"),
        ("b2", "LEVERAGE_EXCEEDS_LIMIT"),
    ]
    assert out[2]["reason_code"] == "INVALID_ORDER"
    assert post(http, "/v1/evaluate/batch", order()).status_code == 422
    assert post(http, "/v1/evaluate/batch", [order()] * (MAX_BATCH + 1)).status_code == 413


def test_the_order_rate_applies_across_a_batch(sup, http):
    feed(sup)
    out = post(http, "/v1/evaluate/batch", [order(quantity=0.1) for _ in range(7)]).json()
    codes = [o["reason_code"] for o in out]
    assert codes == ["ALL_CHECKS_PASSED"] * 5 + ["ORDER_RATE_EXCEEDED"] * 2  # max_orders_per_s = 5


# -- state from the execution side ---------------------------------------------------------------


def test_fills_move_positions_and_refuse_what_cannot_be_read(sup, http):
    feed(sup)
    fill = {"account": "main", "exchange": "binance", "symbol": "SOLUSDT", "side": "buy", "quantity": 2, "price": 100}
    r = post(http, "/v1/fills", fill)
    assert r.status_code == 200
    assert r.json()["positions"] == [{"symbol": "SOLUSDT", "exchange": "binance", "quantity": 2.0, "mark_price": 100.0}]
    assert post(http, "/v1/fills", {**fill, "account": "nobody"}).status_code == 404
    r = post(http, "/v1/fills", {**fill, "qty": 1})
    assert r.status_code == 422 and "unknown field 'qty'" in r.json()["detail"]
    r = post(http, "/v1/fills", {k: v for k, v in fill.items() if k != "price"})
    assert r.status_code == 422 and "'price' is required" in r.json()["detail"]
    for bad in ({"quantity": "NaN"}, {"quantity": -1}, {"side": "hold"}, {"price": 1e30}):
        r = post(http, "/v1/fills", {**fill, **bad})
        assert r.status_code == 422, bad
    assert post(http, "/v1/fills", [fill]).status_code == 422


def test_outcomes_release_reservations_and_refuse_unknown_statuses(sup, http):
    feed(sup)
    assert post(http, "/v1/evaluate", order(order_id="o-1")).json()["decision"] == "allow"
    assert sup.state()["accounts"]["main"]["reserved_usd"] == 100.0
    r = post(http, "/v1/outcomes", {"order_id": "o-1", "status": "cancelled", "account": "main"})
    assert r.status_code == 202
    sup.health()  # one round trip to the gate: the outcome ahead of it is applied
    assert sup.state()["accounts"]["main"]["reserved_usd"] == 0.0
    r = post(http, "/v1/outcomes", {"order_id": "o-1", "status": "vanished", "account": "main"})
    assert r.status_code == 422 and "status" in r.json()["detail"]
    # Without its account an outcome could release a same-id order of any account: refused.
    r = post(http, "/v1/outcomes", {"order_id": "o-1", "status": "cancelled"})
    assert r.status_code == 422 and "'account' is required" in r.json()["detail"]
    assert post(http, "/v1/outcomes", {"order_id": "o-1", "status": "filled", "account": "x"}).status_code == 404


def test_snapshots_by_path_refuse_unknown_accounts_mismatches_and_implausible_numbers(sup, http):
    feed(sup)
    r = post(http, "/v1/accounts/main/snapshot", {"equity": 9_000.0})
    assert r.status_code == 200 and r.json()["equity"] == 9_000.0
    assert sup.state()["accounts"]["main"]["day_pnl_pct"] == -10.0
    assert post(http, "/v1/accounts/nobody/snapshot", {"equity": 1.0}).status_code == 404
    r = post(http, "/v1/accounts/main/snapshot", {"account": "tiny", "equity": 1.0})
    assert r.status_code == 422 and "not the path's" in r.json()["detail"]
    assert post(http, "/v1/accounts/main/snapshot", {"equity": 1e13}).status_code == 422
    assert post(http, "/v1/accounts/main/snapshot", {"equity": "lots"}).status_code == 422
    assert post(http, "/v1/accounts/main/snapshot", {"equity": 1.0, "margin": 2}).status_code == 422


# -- what the gate knows --------------------------------------------------------------------------


def test_state_shows_sources_and_accounts_against_their_limits(sup, http, clock):
    feed(sup)
    post(http, "/v1/evaluate", order(order_id="s-1"))
    post(http, "/v1/evaluate", order(leverage=4.0))
    state = http.get("/v1/state").json()
    assert state["ready"] is True and state["risk_level"] == "INFO" and state["ess_active"] is False
    assert state["sources"]["risk_v3"]["fresh"] is True and state["sources"]["risk_v3"]["max_age_s"] == 10.0
    main = state["accounts"]["main"]
    assert main["equity_usd"] == 10_000.0 and main["day_pnl_pct"] == 0.0
    assert (main["max_daily_loss_pct"], main["max_weekly_loss_pct"]) == (-2.0, -7.0)
    assert (main["reserved_usd"], main["max_notional_usd"], main["open_positions"], main["max_open_positions"]) == (
        100.0,
        50_000.0,
        0,
        5,
    )
    assert main["decisions_last_minute"] == {"ALL_CHECKS_PASSED": 1, "LEVERAGE_EXCEEDS_LIMIT": 1}
    for _ in range(13):  # decision rates are sampled every 5 s
        clock.advance(5.0)
    later = http.get("/v1/state").json()
    assert later["accounts"]["main"]["decisions_last_minute"] == {}
    assert later["sources"]["account:main"]["fresh"] is False and later["ready"] is False


def test_decisions_come_from_the_journal_with_filters_and_bounded_queries(sup, http):
    feed(sup)
    post(http, "/v1/evaluate", order(order_id="d-1"))
    post(http, "/v1/evaluate", order(leverage=4.0, order_id="d-2"))
    sup.flush_journal()  # the endpoint reads what is written (every journal.flush_interval_s)
    rows = http.get("/v1/decisions").json()
    assert [r["order_id"] for r in rows][:2] == ["d-2", "d-1"]
    rows = http.get("/v1/decisions", params={"code": "LEVERAGE_EXCEEDS_LIMIT"}).json()
    assert [r["order_id"] for r in rows] == ["d-2"]
    assert http.get("/v1/decisions", params={"account": "tiny"}).json() == []
    assert http.get("/v1/decisions", params={"since": "1m", "limit": 1}).json()[0]["order_id"] == "d-2"
    for bad in (
        {"limit": 0},
        {"limit": 5000},
        {"limit": "x"},
        {"code": "NOPE"},
        {"since": "yesterday"},
        {"acount": "main"},
        [("decision", "allow"), ("decision", "block")],
    ):
        assert http.get("/v1/decisions", params=bad).status_code == 422, bad


def test_metrics_parse_and_move_with_decisions(sup, http):
    def families() -> dict:
        text = http.get("/metrics").text
        return {f.name: f for f in text_string_to_metric_families(text)}

    def value(fams: dict, name: str, **labels: str) -> float:
        family_name = name.removesuffix("_total").removesuffix("_count")
        for s in fams[family_name].samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        return 0.0

    feed(sup)
    before = families()
    post(http, "/v1/evaluate", order())
    post(http, "/v1/evaluate", order(leverage=4.0))
    post(http, "/v1/evaluate", order(account="mallory-" + "x" * 50))  # not configured: no series of its own
    after = families()
    assert value(after, "risk_gate_allows_total") == value(before, "risk_gate_allows_total") + 1
    assert value(after, "risk_gate_blocks_total") == value(before, "risk_gate_blocks_total") + 2
    assert (
        value(
            after, "risk_gate_decisions_total", decision="block", reason_code="LEVERAGE_EXCEEDS_LIMIT", account="main"
        )
        == 1
    )
    assert value(after, "risk_gate_decisions_total", reason_code="UNKNOWN_ACCOUNT", account="other") == 1
    assert all("mallory" not in s.labels.get("account", "") for f in after.values() for s in f.samples)
    assert value(after, "risk_gate_evaluate_latency_seconds_count") == 3
    assert value(after, "risk_gate_source_up", source="risk_v3") == 1
    assert value(after, "risk_gate_ess_active") == 0 and value(after, "risk_gate_risk_level") == 0
    assert value(after, "risk_gate_reserved_notional_usd", account="main") == 100.0
    assert value(after, "risk_gate_pnl_pct", account="main", period="day") == 0.0
    assert value(after, "risk_gate_actor_restarts_total", actor="gate") == 0
    assert value(after, "risk_gate_ready") == 1
    # No position marks SOL and the orders name no reference price: let through (the default), counted.
    assert (
        value(after, "risk_gate_collar_unreferenced_total") == value(before, "risk_gate_collar_unreferenced_total") + 1
    )


def test_metrics_off_means_no_counting_and_no_decision_series(clock):
    with RiskSupervisor(make_config(metrics={"enabled": False}), clock=clock, poll_upstreams=False) as sup:
        server = sup.serve_api(port=0)
        feed(sup)
        sup.evaluate(order())
        text = httpx.get(f"{server.url}/metrics").text  # reads are open by default
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "risk_gate_decisions" not in names and "risk_gate_source_up" in names


# -- a client in another language --------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_drives_evaluate(sup, http):
    feed(sup)
    url = f"{sup.api_server.url}/v1/evaluate"
    body = json.dumps(order(order_id="curl-1"))
    headers = ["-H", "Content-Type: application/json", "-H", f"Authorization: Bearer {DESK}"]
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", *headers, "-d", body, url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result = json.loads(out.stdout)
    assert (result["order_id"], result["decision"]) == ("curl-1", "allow")
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *headers, "-d", "{", url],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout == "422"


def test_the_openapi_schema_names_the_bodies_for_other_languages(http):
    schema = http.get("/openapi.json").json()
    body = schema["paths"]["/v1/evaluate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/OrderIn"}
    order_in = schema["components"]["schemas"]["OrderIn"]
    assert set(order_in["required"]) == {"account", "exchange", "strategy_id", "symbol", "side", "quantity", "price"}
    assert "PositionIn" in schema["components"]["schemas"]  # the snapshot's nested model is resolvable
    assert http.get("/docs").status_code == 200
    # The bearer scheme, on every operation that takes a token; the controls' bodies and answers typed.
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "[api.operators] / [api.clients] token",
    }  # fmt: skip
    assert schema["paths"]["/v1/halt"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/healthz"]["get"]
    for path, model in (("/v1/halt", "HaltIn"), ("/v1/resume", "ResumeIn"), ("/v1/overrides", "OverrideIn"),
                        ("/v1/lockouts/{account}/clear", "LockoutClearIn")):  # fmt: skip
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model}"}, path
    answer = schema["paths"]["/v1/halt"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/HaltOut"}


# -- authentication -------------------------------------------------------------------------------------


def test_reads_can_require_a_token(clock):
    config = make_config(api={"operators": operators(), "clients": clients(), "read_access": "token"})
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as sup:
        url = sup.serve_api(port=0).url
        for path in ("/v1/state", "/v1/decisions", "/metrics"):
            r = httpx.get(url + path)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), path
            for token in (ALICE, DESK):  # operators and clients may read
                assert httpx.get(url + path, headers={"Authorization": f"Bearer {token}"}).status_code == 200, path
        assert httpx.get(url + "/readyz").status_code == 503  # probes stay open
        assert httpx.get(url + "/healthz").status_code == 200


def test_the_pre_trade_controls_answer_over_http(clock):
    from tests.supervisor.api.conftest import DESK, clients, operators

    cfg = make_config(
        api={"operators": operators(), "clients": clients()},
        gate={"duplicate_window_s": 60.0, "max_repeats": 100},
    )
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        url = sup.serve_api(port=0).url
        feed(sup, equity=10_000_000.0)
        headers = {"Authorization": f"Bearer {DESK}"}

        def code(**fields) -> str:
            return httpx.post(f"{url}/v1/evaluate", json=order(**fields), headers=headers).json()["reason_code"]

        assert code(price=120.0, reference_price=100.0) == "PRICE_OUT_OF_COLLAR"
        assert code(symbol="ETH/USDT", quantity=100.5, price=3_000.0) == "MAX_ORDER_QUANTITY"  # unified symbol
        assert code(quantity=10_000.1) == "MAX_ORDER_NOTIONAL"
        assert code(order_id="d-1", quantity=0.1) == "ALL_CHECKS_PASSED"
        assert code(order_id="d-1", quantity=0.1) == "DUPLICATE_ORDER"
