"""What the dashboard reads, over real HTTP: the page and its files, the banner,
decisions filtered to blocks and scale-downs, and the decision rates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.core.checks import market_blockers
from supervisor.core.messages import EssSourceStatus, EssState, RiskSignal
from supervisor.ops.state import banner
from tests.helpers import feed, make_config, order, signal
from tests.supervisor.api.conftest import clients, operators


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
    assert doc["banner"] == {
        "state": "TRADING",
        "causes": [],
        "also": [],
        "accounts_blocked": [],
        "accounts_locked": [],
        "symbols_paused": [],
        "symbols_unpriced": [],
    }
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


# -- the banner, pure: from the gate's own checks 0-5 -------------------------------------------


def _source(age, max_age=3.0, **extra):
    return {"fresh": age is not None and age <= max_age, "age_s": age, "max_age_s": max_age, **extra}


def _banner(ess=None, ess_age=1.0, signal=None, risk_age=1.0, journal=None, gate_alive=True, accounts=None):
    """The banner for this upstream state: blockers computed as the gate's checks compute them."""
    config = make_config()
    now, wall = 1000.0, WALL
    ess = ess if ess is not None else EssState.combine((EssSourceStatus("http", False),))
    signal = signal if signal is not None else RiskSignal("INFO", wall)
    blockers = market_blockers(
        journal_blocking=journal,
        ess=ess if ess_age is not None else None,
        ess_received=now - (ess_age or 0.0),
        signal=signal if risk_age is not None else None,
        signal_received=now - (risk_age or 0.0),
        config=config,
        now=now,
        wall=wall,
    )
    readings = [{"source": r.source, "active": r.active, "detail": r.detail} for r in ess.sources]
    sources = {
        "risk_v3": _source(risk_age, config.risk_v3.max_age_s, risk_level=signal.risk_level),
        "ess": _source(ess_age, config.ess.max_age_s, active=ess.active, readings=readings, active_since=None),
    }
    return banner(sources, gate_alive, blockers, accounts)


WALL = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_banner_follows_the_gates_order_of_checks():
    kill = EssState.combine((EssSourceStatus("http", False), EssSourceStatus("kill_switch", True, "file present")))
    assert _banner()["state"] == "TRADING"
    assert _banner(gate_alive=False)["causes"][0]["source"] == "gate"
    assert _banner(journal="queue full")["causes"][0]["detail"].startswith("journal: queue full")
    stale_ess = _banner(ess_age=4.5)
    assert stale_ess["state"] == "FAIL-CLOSED" and stale_ess["causes"][0]["stale_for_s"] == 1.5
    unknown = _banner(ess=EssState.combine((EssSourceStatus("http", None, "cannot read"),)))
    assert unknown["state"] == "FAIL-CLOSED" and unknown["causes"][0]["source"] == "ess"
    halted = _banner(ess=kill, risk_age=None)
    assert halted["state"] == "HALTED" and halted["causes"][0]["source"] == "ess/kill_switch"
    assert halted["causes"][0]["kind"] == "halt" and halted["also"][0]["kind"] == "fail_closed"
    assert halted["also"][0]["detail"] == "risk_v3: no state yet"  # what blocks next, still said
    assert _banner(risk_age=12.0)["causes"][0]["detail"].startswith("risk_v3: stale for 2.0 s")
    critical = _banner(signal=RiskSignal("CRITICAL", WALL))
    assert critical["state"] == "HALTED" and critical["causes"][0]["source"] == "risk_v3"
    assert _banner(signal=RiskSignal("CRITICAL", WALL), risk_age=11.0)["state"] == "FAIL-CLOSED"  # stale first
    one = _banner(accounts={"b": "account state age=61s > max_age_s=60", "c": "no state yet"})
    assert one["state"] == "TRADING" and one["accounts_blocked"] == ["b", "c"]


def test_banner_never_says_trading_when_the_signal_itself_blocks():
    """Fetched a moment ago, yet unusable: the gate blocks, so the banner must not be green."""
    old = _banner(signal=RiskSignal("INFO", WALL - timedelta(hours=1)))
    assert old["state"] == "FAIL-CLOSED" and "evaluated 3600s ago" in old["causes"][0]["detail"]
    future = _banner(signal=RiskSignal("INFO", WALL + timedelta(seconds=60)))
    assert future["state"] == "FAIL-CLOSED" and "in the future" in future["causes"][0]["detail"]
    action = _banner(signal=RiskSignal("INFO", WALL, ess_action_required=True, ess_tier_recommendation="EMERGENCY"))
    assert action["state"] == "HALTED" and "tier=EMERGENCY" in action["causes"][0]["detail"]


def test_state_readiness_and_banner_agree_with_the_gate_on_an_old_signal_and_a_future_snapshot(sup, http, clock):
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", clock.now() - timedelta(hours=1)))  # fetched now, evaluated long ago
    for name in sup.config.accounts.accounts:
        sup.report_account_snapshot(AccountSnapshot(name, 10_000.0))
    doc = http.get("/v1/state").json()
    assert post(http, "/v1/evaluate", order()).json()["reason_code"] == "RISK_STATE_STALE"
    assert doc["banner"]["state"] == "FAIL-CLOSED" and not doc["ready"]
    assert any(m.startswith("risk_v3: Risk v3 signal evaluated") for m in doc["not_ready"])
    assert http.get("/readyz").status_code == 503
    sup.report_risk_signal(signal("INFO", clock.now()))
    sup.report_account_snapshot(AccountSnapshot("tiny", 10_000.0, timestamp=clock.now() + timedelta(seconds=60)))
    doc = http.get("/v1/state").json()
    assert doc["banner"]["state"] == "TRADING" and doc["banner"]["accounts_blocked"] == ["tiny"]
    assert "future" in doc["accounts"]["tiny"]["blocked_by"]
    assert post(http, "/v1/evaluate", order(account="tiny")).json()["reason_code"] == "ACCOUNT_STATE_STALE"


def test_a_foreign_host_header_is_refused_on_loopback(http):
    """DNS rebinding: a page on evil.example resolved to 127.0.0.1 must not read or order."""
    for path in ("/v1/state", "/", "/metrics"):
        r = http.get(path, headers={"Host": "evil.example"})
        assert r.status_code == 421 and "Host" in r.json()["detail"], path
    assert post(http, "/v1/evaluate", order()).status_code == 200  # its own name: fine
    r = http.post(
        "/v1/evaluate",
        content=json.dumps(order()),
        headers={"Host": "evil.example:8010", "content-type": "application/json"},
    )
    assert r.status_code == 421
    for host in ("localhost:8010", "127.0.0.1", "[::1]:8010", "LOCALHOST", "127.0.0.2:1", "[::1]", "127.1"):
        assert http.get("/healthz", headers={"Host": host}).status_code == 200, host
    # A loopback name with something after it is another name (each parsed again: none is kept).
    for host in ("[::1].evil", "[::1]x", "[::1", "[::1]:", "[::1]:80x", "127.0.0.1:abc", "localhost:", b"127.0.0.\xb9"):
        for _ in range(2):
            assert http.get("/healthz", headers={"Host": host}).status_code == 421, host
    assert http.head("/").status_code == 200 and http.head("/healthz").status_code == 200
    assert http.get("/v1/state", params={"x": 1}).status_code == 422
