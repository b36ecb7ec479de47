"""What the dashboard reads, over real HTTP: the page and its files, the banner,
decisions filtered to blocks and scale-downs, and the decision rates."""

from __future__ import annotations

import json

import httpx

from supervisor import RiskSupervisor
from supervisor.ops.state import banner
from tests.helpers import make_config, order
from tests.supervisor.api.conftest import clients, feed, operators


def post(http: httpx.Client, path: str, body: object) -> httpx.Response:
    return http.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def test_the_page_and_its_files_are_served_with_a_strict_policy(http):
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/dashboard/dashboard.js" in page.text and "<script>" not in page.text  # no inline script
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-frame-options"] == "DENY"  # its buttons halt trading: never framed
    js = http.get("/dashboard/dashboard.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in js.text  # API text is written as text, never parsed as HTML
    assert http.get("/dashboard/dashboard.css").headers["content-type"].startswith("text/css")
    for bad in ("/dashboard/index.html", "/dashboard/../app.py", "/dashboard/%2e%2e%2fapp.py", "/dashboard/x.js"):
        assert http.get(bad).status_code == 404, bad
    assert "/" not in http.get("/openapi.json").json()["paths"]


def test_the_page_is_open_while_reads_need_a_token(clock):
    config = make_config(api={"operators": operators(), "clients": clients(), "read_access": "token"})
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as sup:
        url = sup.serve_api(port=0).url
        assert httpx.get(url + "/").status_code == 200  # the page holds no data
        for path in ("/v1/state", "/v1/decisions/rates"):
            assert httpx.get(url + path).status_code == 401, path


def test_decisions_filter_to_several_kinds_at_once(sup, http):
    feed(sup)
    post(http, "/v1/evaluate", order(order_id="ok-1"))
    post(http, "/v1/evaluate", order(leverage=4.0, order_id="blocked-1"))
    post(http, "/v1/evaluate", order(order_id="ok-2"))
    sup.flush_journal()
    rows = http.get("/v1/decisions", params={"decision": "block,scale_down"}).json()
    assert [r["order_id"] for r in rows] == ["blocked-1"]
    rows = http.get("/v1/decisions", params={"decision": "allow,allow"}).json()
    assert [r["order_id"] for r in rows] == ["ok-2", "ok-1"]
    for bad in ("block,", ",", "block,nope", "block;allow", "BLOCK"):
        r = http.get("/v1/decisions", params={"decision": bad})
        assert r.status_code == 422 and r.json()["detail"].startswith("decision:"), bad


def test_rates_are_decisions_per_second_per_interval(sup, http, clock):
    feed(sup)
    assert http.get("/v1/decisions/rates").json()["interval_s"] == 5.0
    for i in range(4):  # under the account's 5 orders/s
        post(http, "/v1/evaluate", order(order_id=f"r-{i}"))
    post(http, "/v1/evaluate", order(leverage=4.0, order_id="r-x"))
    clock.advance(5.0)  # the next sample closes that interval
    doc = http.get("/v1/decisions/rates").json()
    closed = [p for p in doc["points"] if p["seconds"] == 5.0]
    assert closed[-1]["per_s"] == {"allow/ALL_CHECKS_PASSED": 0.8, "block/LEVERAGE_EXCEEDS_LIMIT": 0.2}
    assert closed[-1]["end"].endswith("Z") and closed[-1]["start"] < closed[-1]["end"]
    assert http.get("/v1/decisions/rates", params={"x": 1}).status_code == 422
    clock.advance(1000.0)  # older than 15 minutes: gone
    assert all(not p["per_s"] for p in http.get("/v1/decisions/rates").json()["points"])


def test_state_carries_the_banner_and_when_a_halt_began(sup, http, clock):
    assert http.get("/v1/state").json()["banner"]["state"] == "FAIL-CLOSED"  # nothing known yet
    feed(sup)
    doc = http.get("/v1/state").json()
    assert doc["banner"] == {"state": "TRADING", "causes": [], "also": [], "accounts_blocked": []}
    sup.report_ess_active(True, "desk drill")
    began = clock.now()
    clock.advance(2.0)
    sup.report_ess_active(True, "desk drill")  # still halted: the start stays
    doc = http.get("/v1/state").json()
    assert doc["banner"]["state"] == "HALTED"
    assert doc["sources"]["ess"]["active_since"] == began.isoformat().replace("+00:00", "Z")
    assert doc["banner"]["causes"][0]["since"] == doc["sources"]["ess"]["active_since"]
    sup.report_ess_active(False)
    assert http.get("/v1/state").json()["sources"]["ess"]["active_since"] is None


# -- the banner, pure --------------------------------------------------------------------------


def _source(age, max_age=3.0, **extra):
    return {"fresh": age is not None and age <= max_age, "age_s": age, "max_age_s": max_age, **extra}


def _sources(ess_age=1.0, active=False, risk_age=1.0, level="INFO", readings=(), accounts=None):
    return {
        "risk_v3": _source(risk_age, 10.0, risk_level=level),
        "ess": _source(ess_age, active=active, reason="", readings=list(readings), active_since=None),
        **{f"account:{k}": _source(v, 60.0) for k, v in (accounts or {"main": 1.0}).items()},
    }


def test_banner_follows_the_gates_order_of_checks():
    halt = [{"source": "kill_switch", "active": True, "detail": "file present"}]
    assert banner(_sources(), True, None)["state"] == "TRADING"
    assert banner(_sources(), False, None)["causes"][0]["source"] == "gate"
    assert banner(_sources(), True, "queue full")["causes"][0]["detail"] == "journal: queue full"
    stale_ess = banner(_sources(ess_age=4.5), True, None)
    assert stale_ess["state"] == "FAIL-CLOSED" and stale_ess["causes"][0]["stale_for_s"] == 1.5
    unknown = banner(_sources(active=None), True, None)  # fresh but a source cannot be read
    assert unknown["state"] == "FAIL-CLOSED" and unknown["causes"][0]["source"] == "ess"
    halted = banner(_sources(active=True, readings=halt, risk_age=None), True, None)
    assert halted["state"] == "HALTED" and halted["causes"][0]["source"] == "ess/kill_switch"
    assert halted["also"][0]["detail"] == "risk_v3: no state yet"  # what blocks next, still said
    assert banner(_sources(risk_age=12.0), True, None)["causes"][0]["detail"].startswith("risk_v3: stale for 2.0 s")
    critical = banner(_sources(level="CRITICAL"), True, None)
    assert critical["state"] == "HALTED" and critical["causes"][0]["source"] == "risk_v3"
    assert banner(_sources(level="CRITICAL", risk_age=11.0), True, None)["state"] == "FAIL-CLOSED"  # stale first
    one_stale = banner(_sources(accounts={"a": 1.0, "b": 61.0, "c": None}), True, None)
    assert one_stale["state"] == "TRADING" and one_stale["accounts_blocked"] == ["b", "c"]
