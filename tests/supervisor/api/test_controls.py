"""Emergency controls over real HTTP: the operator halt and two-person overrides."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import httpx
import pytest

from supervisor import AccountSnapshot, Position, RiskSupervisor
from supervisor.journal.store import JOURNAL_NAME, JournalReader
from tests.helpers import make_config, order, signal
from tests.supervisor.api.conftest import ALICE, BOB, DESK, clients, operators

LONG_SOL = (Position("SOLUSDT", "binance", 3.0, 100.0),)
LONG_ETH = (Position("ETHUSDT", "bybit", 2.0, 3_000.0),)


def config(tmp_path):
    return make_config(api={"operators": operators(), "clients": clients()}, state={"dir": str(tmp_path / "state")})


def feed(sup: RiskSupervisor) -> None:
    sup.report_ess_active(False, source="ess_http")
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", 10_000.0, LONG_SOL))
    sup.report_account_snapshot(AccountSnapshot("bold", 10_000.0, LONG_ETH))
    sup.report_account_snapshot(AccountSnapshot("tiny", 10_000.0))


def call(sup: RiskSupervisor, method: str, path: str, token: str | None, body: object = None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    content = None if body is None else json.dumps(body)
    return httpx.request(method, sup.api_server.url + path, headers=headers, content=content, timeout=10.0)


def decide(sup: RiskSupervisor, **fields) -> dict:
    return call(sup, "POST", "/v1/evaluate", DESK, order(**fields)).json()


REDUCE_MAIN = {"side": "sell", "quantity": 3.0, "reduce_only": True}
REDUCE_BOLD = {"account": "bold", "exchange": "bybit", "symbol": "ETHUSDT", "side": "sell", "quantity": 1.0}


def journal_events(sup: RiskSupervisor) -> list[dict]:
    sup.flush_journal()
    reader = JournalReader(sup.config.state.dir / JOURNAL_NAME)
    try:
        rows = list(reversed(reader.events(limit=1000)))
    finally:
        reader.close()
    return [{**e, "detail": json.loads(e["detail"])} for e in rows]


@contextlib.contextmanager
def serving(clock, tmp_path) -> Iterator[RiskSupervisor]:
    """A supervisor with operators and clients, its API on a free port, every source fed."""
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as s:
        s.serve_api(port=0)
        feed(s)
        yield s


@pytest.fixture
def sup(clock, tmp_path):
    with serving(clock, tmp_path) as s:
        yield s


# -- the operator halt --------------------------------------------------------------------------


def test_only_an_operator_halts_and_a_halt_blocks_the_next_evaluation(sup):
    assert decide(sup)["decision"] == "allow"
    for token in (None, "nope"):
        assert call(sup, "POST", "/v1/halt", token, {"reason": "drill"}).status_code == 401
    assert call(sup, "POST", "/v1/halt", DESK, {"reason": "drill"}).status_code == 403  # valid, not an operator's
    assert decide(sup)["decision"] == "allow"
    r = call(sup, "POST", "/v1/halt", ALICE, {"reason": "exchange outage"})
    assert r.status_code == 200 and r.json()["by"] == "alice" and r.json()["active"] is True
    out = decide(sup)
    assert (out["decision"], out["reason_code"], out["ess_active"]) == ("block", "ESS_HALT_ACTIVE", True)
    assert "operator halt by alice" in out["reason"] and "exchange outage" in out["reason"]


@pytest.mark.parametrize(
    "body", [{}, {"reason": " "}, {"reason": "a\nb"}, {"reason": 5}, {"reason": "x", "why": 1}, []]
)
def test_a_halt_without_a_readable_reason_is_refused_and_changes_nothing(sup, body):
    assert call(sup, "POST", "/v1/halt", ALICE, body).status_code == 422
    assert decide(sup)["decision"] == "allow"


def test_resume_clears_the_operator_halt_but_not_an_ess_halt(sup):
    call(sup, "POST", "/v1/halt", ALICE, {"reason": "drill"})
    sup.report_ess_active(True, "drawdown", source="ess_http")
    assert call(sup, "POST", "/v1/resume", BOB, {"reason": "drill over"}).status_code == 200
    out = decide(sup)
    assert out["reason_code"] == "ESS_HALT_ACTIVE" and "operator" not in out["reason"]
    sup.report_ess_active(False, source="ess_http")
    assert decide(sup)["decision"] == "allow"


def test_the_halt_stays_fresh_and_survives_a_restart(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        call(sup, "POST", "/v1/halt", ALICE, {"reason": "before the restart"})
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        out = decide(sup)
        assert out["reason_code"] == "ESS_HALT_ACTIVE" and "before the restart" in out["reason"]
        for _ in range(10):  # the halt reading is re-published: it never ages into ESS_STATE_STALE
            clock.advance(1.0)
            sup.report_ess_active(False, source="ess_http")
        assert decide(sup)["reason_code"] == "ESS_HALT_ACTIVE"
        assert call(sup, "GET", "/v1/halt", None).json()["reason"] == "before the restart"
        call(sup, "POST", "/v1/resume", BOB, {})
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        assert decide(sup)["decision"] == "allow"


def test_a_halt_file_that_cannot_be_read_halts(clock, tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "operator_halt.json").write_text("{not json")
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        out = decide(sup)
        assert out["reason_code"] == "ESS_HALT_ACTIVE" and "unreadable" in out["reason"]


def test_the_operator_halt_alone_never_makes_ess_known(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        sup.report_risk_signal(signal("INFO", clock.now()))
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
        assert sup.evaluate(order()).reason_code == "ESS_STATE_STALE"  # no real ESS source yet


# -- two-person overrides -----------------------------------------------------------------------


def propose(sup: RiskSupervisor, token: str = ALICE, **fields) -> httpx.Response:
    body = {"account": "main", "reason": "flatten SOL in the outage", "ttl_s": 120.0, **fields}
    return call(sup, "POST", "/v1/overrides", token, body)


def test_the_same_operator_cannot_approve_their_own_proposal(sup):
    r = propose(sup)
    assert r.status_code == 201 and r.json()["state"] == "proposed" and r.json()["proposed_by"] == "alice"
    oid = r.json()["id"]
    r = call(sup, "POST", f"/v1/overrides/{oid}/approve", ALICE)
    assert r.status_code == 403 and "another operator" in r.json()["detail"]
    assert call(sup, "POST", f"/v1/overrides/{oid}/approve", None).status_code == 401
    assert call(sup, "POST", f"/v1/overrides/{oid}/approve", DESK).status_code == 403  # a client is no operator
    assert call(sup, "POST", "/v1/overrides/nope/approve", BOB).status_code == 404
    r = call(sup, "POST", f"/v1/overrides/{oid}/approve", BOB)
    assert r.status_code == 200 and r.json()["state"] == "active" and r.json()["approved_by"] == "bob"
    assert call(sup, "POST", f"/v1/overrides/{oid}/approve", BOB).status_code == 409


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"ttl_s": 901}, 422),  # above overrides.max_ttl_s
        ({"ttl_s": 0}, 422),
        ({"ttl_s": "60"}, 422),
        ({"reason": ""}, 422),
        ({"account": "ghost"}, 404),
        ({"colour": "red"}, 422),
    ],
)
def test_a_proposal_that_cannot_be_read_is_refused(sup, fields, status):
    assert propose(sup, **fields).status_code == status
    assert call(sup, "GET", "/v1/overrides", None).json() == []


def test_an_expired_proposal_cannot_be_approved(sup, clock):
    oid = propose(sup).json()["id"]
    clock.advance(301.0)  # overrides.approval_timeout_s
    sup.report_ess_active(False, source="ess_http")
    r = call(sup, "POST", f"/v1/overrides/{oid}/approve", BOB)
    assert r.status_code == 409 and "expired" in r.json()["detail"]


def approved(sup: RiskSupervisor, ttl_s: float = 120.0) -> str:
    oid = propose(sup, ttl_s=ttl_s).json()["id"]
    assert call(sup, "POST", f"/v1/overrides/{oid}/approve", BOB).status_code == 200
    return oid


def check_override_semantics(sup: RiskSupervisor, oid: str) -> None:
    out = decide(sup, **REDUCE_MAIN)
    assert (out["decision"], out["reason_code"]) == ("allow", "OVERRIDE_APPLIED"), out
    assert oid in out["reason"]
    assert decide(sup, quantity=0.5)["reason_code"] == "ESS_HALT_ACTIVE"  # opening: blocked
    assert decide(sup, **REDUCE_BOLD, reduce_only=True)["reason_code"] == "ESS_HALT_ACTIVE"  # another account


def test_an_approved_override_lets_only_that_accounts_reductions_through_a_halt_until_its_ttl(sup, clock):
    sup.report_ess_active(True, "drawdown", source="ess_http")
    assert decide(sup, **REDUCE_MAIN)["reason_code"] == "ESS_HALT_ACTIVE"
    oid = approved(sup)
    check_override_semantics(sup, oid)
    state = call(sup, "GET", "/v1/state", None).json()
    assert [o["id"] for o in state["overrides"]["active"]] == [oid]
    assert state["accounts"]["main"]["override"]["id"] == oid
    clock.advance(121.0)
    sup.report_ess_active(True, "drawdown", source="ess_http")
    feed_accounts(sup)
    assert decide(sup, **REDUCE_MAIN)["reason_code"] == "ESS_HALT_ACTIVE"
    assert [o["state"] for o in call(sup, "GET", "/v1/overrides", None).json()] == ["expired"]


def feed_accounts(sup: RiskSupervisor) -> None:
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", 10_000.0, LONG_SOL))
    sup.report_account_snapshot(AccountSnapshot("bold", 10_000.0, LONG_ETH))


def test_a_revoked_override_stops_at_once(sup):
    sup.report_ess_active(True, "drawdown", source="ess_http")
    oid = approved(sup)
    assert call(sup, "DELETE", f"/v1/overrides/{oid}", ALICE).status_code == 200
    assert decide(sup, **REDUCE_MAIN)["reason_code"] == "ESS_HALT_ACTIVE"
    assert call(sup, "DELETE", f"/v1/overrides/{oid}", ALICE).status_code == 409


def test_an_override_survives_a_gate_kill_and_a_process_restart(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        sup.report_ess_active(True, "drawdown", source="ess_http")
        oid = approved(sup, ttl_s=300.0)
        sup.gate_ref.stop()  # killed: supervision restarts it, re-fed from the link
        sup.check_actors()
        check_override_semantics(sup, oid)
    clock.advance(100.0)
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        sup.report_ess_active(True, "drawdown", source="ess_http")
        check_override_semantics(sup, oid)
        clock.advance(201.0)  # 300 s after approval in all
        feed(sup)
        sup.report_ess_active(True, "drawdown", source="ess_http")
        assert decide(sup, **REDUCE_MAIN)["reason_code"] == "ESS_HALT_ACTIVE"


def test_every_control_action_is_journaled_with_operator_time_and_reason(sup):
    call(sup, "POST", "/v1/halt", ALICE, {"reason": "outage"})
    call(sup, "POST", "/v1/resume", BOB, {"reason": "back"})
    oid = approved(sup)
    call(sup, "DELETE", f"/v1/overrides/{oid}", BOB)
    sup.report_ess_active(True, "x", source="ess_http")
    events = journal_events(sup)
    kinds = [(e["kind"], e["detail"].get("by")) for e in events if e["kind"].startswith(("operator_", "override_"))]
    assert kinds == [
        ("operator_halt", "alice"),
        ("operator_resume", "bob"),
        ("override_proposed", "alice"),
        ("override_approved", "bob"),
        ("override_revoked", "bob"),
    ]
    for e in events:
        if e["kind"].startswith(("operator_", "override_")):
            assert e["ts_us"] > 0 and e["detail"]["reason"]


# -- the CLI, talking to the running service -----------------------------------------------------


def test_the_cli_halts_resumes_and_runs_the_two_person_workflow(sup, monkeypatch, tmp_path, capsys):
    from supervisor.cli import main

    url = ["--url", sup.api_server.url]
    monkeypatch.delenv("RISKGATE_TOKEN", raising=False)
    assert main(["halt", "--reason", "no token", *url]) == 2
    assert "RISKGATE_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("RISKGATE_TOKEN", "wrong-token-0123456789")
    assert main(["halt", "--reason", "bad token", *url]) == 1
    monkeypatch.setenv("RISKGATE_TOKEN", ALICE)
    assert main(["halt", "--reason", "from the cli", *url]) == 0
    assert decide(sup)["reason_code"] == "ESS_HALT_ACTIVE"
    capsys.readouterr()
    assert main(["status", *url]) == 1  # halted
    said = capsys.readouterr().out
    assert said.startswith("HALTED by operator alice: from the cli (since ")
    assert main(["resume", *url]) == 0
    assert decide(sup)["decision"] == "allow"
    capsys.readouterr()
    assert main(["override", "propose", "main", "--reason", "flatten", "--ttl", "60", *url]) == 0
    (record,) = sup.overrides()  # (stdout also holds this process's server log lines)
    oid = record.id
    assert f"override {oid} for main: proposed (by alice)" in capsys.readouterr().out  # in words
    capsys.readouterr()
    assert main(["override", "approve", oid, *url]) == 1  # alice proposed it
    assert capsys.readouterr().err.startswith("riskgate: refused (403): ")  # one line, not a JSON dump
    bob = tmp_path / "bob.token"
    bob.write_text(BOB + "\n")
    assert main(["override", "approve", oid, "--token-file", str(bob), *url]) == 0
    capsys.readouterr()
    assert main(["override", "list", *url]) == 0
    assert f"override {oid} for main: active (by alice, bob)" in capsys.readouterr().out
    assert main(["override", "list", "--json", *url]) == 0  # for tools
    assert '"state": "active"' in capsys.readouterr().out
    assert main(["override", "revoke", oid, *url]) == 0
    assert main(["halt", "--reason", "x", "--url", "http://127.0.0.1:9"]) == 1  # nothing listens there
