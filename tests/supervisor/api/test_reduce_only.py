"""Reduce-only mode and stacked halts over real HTTP: a reduce-only halt blocks every order that
grows a position (REDUCE_ONLY_MODE) and lets reducing ones through; each operator's halt keeps its
own reason and time; resume says what it lifted and answers 409 when nothing holds."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor import RiskSupervisor
from tests.supervisor.api.conftest import ALICE, BOB
from tests.supervisor.api.test_controls import REDUCE_MAIN, call, config, decide, feed, journal_events, serving


@pytest.fixture
def sup(clock, tmp_path):
    with serving(clock, tmp_path) as s:
        yield s


def test_an_unknown_mode_is_refused_naming_the_field(sup):
    for mode in ("", "REDUCE_ONLY", "reduce-only", 1, None, ["all"]):
        r = call(sup, "POST", "/v1/halt", ALICE, {"reason": "drill", "mode": mode})
        assert r.status_code == 422 and "mode" in r.json()["detail"], mode
    assert decide(sup, quantity=0.5)["decision"] == "allow"


def test_reduce_only_blocks_growing_orders_and_lets_reducing_ones_through(sup):
    r = call(sup, "POST", "/v1/halt", ALICE, {"reason": "venue wobbly", "mode": "reduce_only"})
    assert r.status_code == 200 and r.json()["mode"] == "reduce_only"
    out = decide(sup, quantity=0.5)
    assert (out["decision"], out["reason_code"]) == ("block", "REDUCE_ONLY_MODE")
    assert "venue wobbly" in out["reason"] and out["ess_active"] is False  # not an ESS halt
    assert decide(sup, **REDUCE_MAIN)["decision"] == "allow"  # sells part of the long
    assert decide(sup, side="sell", quantity=5.0)["reason_code"] == "REDUCE_ONLY_MODE"  # flips it: grows
    state = call(sup, "GET", "/v1/state", None).json()
    assert state["operator_halt"]["mode"] == "reduce_only"
    assert state["banner"]["state"] == "REDUCE-ONLY" and "venue wobbly" in state["banner"]["causes"][0]["detail"]


def test_halts_stack_each_keeping_its_reason_and_resume_says_what_it_lifted(sup, clock):
    call(sup, "POST", "/v1/halt", ALICE, {"reason": "exchange outage"})
    clock.advance(5)
    feed(sup)
    call(sup, "POST", "/v1/halt", BOB, {"reason": "funding spike", "mode": "reduce_only"})
    held = call(sup, "GET", "/v1/halt", None).json()
    assert held["mode"] == "all"  # the strictest holds
    assert [(h["by"], h["reason"], h["mode"]) for h in held["halts"]] == [
        ("alice", "exchange outage", "all"),
        ("bob", "funding spike", "reduce_only"),
    ]
    assert held["halts"][0]["since"] != held["halts"][1]["since"]
    out = decide(sup, quantity=0.5)
    assert out["reason_code"] == "ESS_HALT_ACTIVE" and "exchange outage" in out["reason"]
    call(sup, "POST", "/v1/halt", ALICE, {"reason": "exchange outage, day 2"})  # her own: replaced, same time
    hers = [h for h in call(sup, "GET", "/v1/halt", None).json()["halts"] if h["by"] == "alice"]
    assert [(h["since"], h["reason"]) for h in hers] == [(held["halts"][0]["since"], "exchange outage, day 2")]
    r = call(sup, "POST", "/v1/resume", BOB, {"reason": "all clear"})
    assert r.status_code == 200
    assert sorted(h["by"] for h in r.json()["lifted"]) == ["alice", "bob"]
    assert decide(sup, quantity=0.5)["decision"] == "allow"
    nothing = call(sup, "POST", "/v1/resume", BOB, {"reason": "again"})
    assert nothing.status_code == 409 and "nothing to resume" in nothing.json()["detail"]
    resumes = [e for e in journal_events(sup) if e["kind"] == "operator_resume"]
    assert len(resumes) == 1 and sorted(resumes[0]["detail"]["lifted"]) == ["alice (all)", "bob (reduce-only)"]


def test_a_reduce_only_halt_survives_a_restart_and_an_older_halt_file_halts_everything(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        call(sup, "POST", "/v1/halt", ALICE, {"reason": "overnight", "mode": "reduce_only"})
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        assert decide(sup, quantity=0.5)["reason_code"] == "REDUCE_ONLY_MODE"
        assert decide(sup, **REDUCE_MAIN)["decision"] == "allow"
    legacy = {"active": True, "by": "carol", "reason": "from the last release", "since": "2026-01-01T00:00:00Z"}
    (tmp_path / "state" / "operator_halt.json").write_text(json.dumps(legacy))
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        feed(sup)
        assert decide(sup, **REDUCE_MAIN)["reason_code"] == "ESS_HALT_ACTIVE"  # every order: the strictest


def _gauges(sup: RiskSupervisor) -> dict[str, float]:
    """The halt gauges of /metrics, by name and mode label."""
    text = call(sup, "GET", "/metrics", None).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("risk_gate_reduce_only", "risk_gate_ess_active", "risk_gate_operator_halts"):
                out[sample.name + "".join(f":{v}" for v in sample.labels.values())] = sample.value
    return out


def test_metrics_show_reduce_only_and_each_operators_halt_by_mode(sup):
    calm = {"risk_gate_reduce_only": 0.0, "risk_gate_ess_active": 0.0,
            "risk_gate_operator_halts:all": 0.0, "risk_gate_operator_halts:reduce_only": 0.0}  # fmt: skip
    assert _gauges(sup) == calm
    call(sup, "POST", "/v1/halt", ALICE, {"reason": "thin book", "mode": "reduce_only"})
    assert _gauges(sup) == {**calm, "risk_gate_reduce_only": 1.0, "risk_gate_operator_halts:reduce_only": 1.0}
    call(sup, "POST", "/v1/halt", BOB, {"reason": "thin book too", "mode": "reduce_only"})
    call(sup, "POST", "/v1/halt", BOB, {"reason": "outage"})
    assert _gauges(sup) == {
        "risk_gate_reduce_only": 1.0, "risk_gate_ess_active": 1.0,
        "risk_gate_operator_halts:all": 1.0, "risk_gate_operator_halts:reduce_only": 2.0,
    }  # fmt: skip
    call(sup, "POST", "/v1/resume", ALICE, {"reason": "done"})
    assert _gauges(sup) == calm


# -- riskgate status: one verdict, every cause, an exit code per verdict --------------------------
def _status(sup, capsys, *extra) -> tuple[int, dict]:
    from supervisor.cli import main

    capsys.readouterr()
    code = main(["status", "--json", "--url", sup.api_server.url, *extra])
    out = capsys.readouterr().out
    return code, json.loads(out[out.index("{") :])


def test_status_says_one_verdict_with_every_cause_and_exits_by_it(sup, clock, capsys, monkeypatch):
    monkeypatch.delenv("RISKGATE_TOKEN", raising=False)
    code, found = _status(sup, capsys)
    assert (code, found["verdict"], found["causes"]) == (0, "TRADING", [])
    call(sup, "POST", "/v1/halt", ALICE, {"reason": "thin book", "mode": "reduce_only"})
    code, found = _status(sup, capsys)
    assert (code, found["verdict"]) == (1, "REDUCE-ONLY") and "thin book" in found["causes"][0]
    sup.report_ess_active(True, "drawdown tier 2", source="ess_http")  # ESS halts everything
    code, found = _status(sup, capsys)
    assert (code, found["verdict"]) == (1, "HALTED") and "drawdown tier 2" in found["causes"][0]
    call(sup, "POST", "/v1/resume", BOB, {"reason": "done"})
    sup.report_ess_active(False, source="ess_http")
    clock.advance(10)  # Risk v3 and ESS go stale: fail-closed, each named
    code, found = _status(sup, capsys)
    assert (code, found["verdict"]) == (2, "FAIL-CLOSED")
    assert any("stale" in c for c in found["causes"] + found["also"])
    code, found = _status(sup, capsys, "--url", "http://127.0.0.1:9")  # the last --url wins: nobody there
    assert (code, found["verdict"]) == (3, "UNREACHABLE") and "cannot reach" in found["causes"][0]


def test_status_in_words_names_the_cause_once_on_stdout(sup, capsys, monkeypatch):
    from supervisor.cli import main

    monkeypatch.delenv("RISKGATE_TOKEN", raising=False)
    call(sup, "POST", "/v1/halt", ALICE, {"reason": "exchange outage"})
    capsys.readouterr()
    assert main(["status", "--url", sup.api_server.url]) == 1
    out = capsys.readouterr().out
    assert out.startswith("HALTED by operator alice: exchange outage (since 2026-01-05 12:00 UTC)\n")
    assert out.count("exchange outage") == 1 and "T12:00" not in out  # no raw ISO time
    call(sup, "POST", "/v1/halt", BOB, {"reason": "second look"})  # halts stack: each operator said
    capsys.readouterr()
    assert main(["status", "--url", sup.api_server.url]) == 1
    assert "\n  and by operator bob: second look (since 2026-01-05 12:00 UTC)" in capsys.readouterr().out


def test_status_names_the_ess_source_that_halts(sup, capsys, monkeypatch):
    from supervisor.cli import main

    monkeypatch.delenv("RISKGATE_TOKEN", raising=False)
    sup.report_ess_active(True, "drill", source="http")
    capsys.readouterr()
    assert main(["status", "--url", sup.api_server.url]) == 1
    assert capsys.readouterr().out.startswith("HALTED by ESS (http): drill (since 2026-01-05 12:00 UTC)\n")
    sup.report_ess_active(False, source="http")
    sup.report_ess_active(True, "kill switch /srv/riskgate/KILL_SWITCH: desk halt", source="kill_switch_file")
    capsys.readouterr()
    assert main(["status", "--url", sup.api_server.url]) == 1
    said = capsys.readouterr().out
    assert said.startswith("HALTED by kill switch file /srv/riskgate/KILL_SWITCH: desk halt (since ")


def test_status_is_not_ready_while_an_account_has_no_state(clock, tmp_path, capsys, monkeypatch):
    """Nothing halts or fails closed at the gate, but an account never reported: NOT READY, exit 2."""
    from supervisor import AccountSnapshot
    from supervisor.cli import main
    from tests.helpers import signal

    monkeypatch.delenv("RISKGATE_TOKEN", raising=False)
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as fresh:
        fresh.serve_api(port=0)
        fresh.report_ess_active(False, source="ess_http")
        fresh.report_risk_signal(signal("INFO", clock.now()))
        for name in ("main", "bold"):
            fresh.report_account_snapshot(AccountSnapshot(name, 10_000.0))
        code, found = _status(fresh, capsys)
        assert (code, found["verdict"], found["exit"]) == (2, "NOT READY", 2)
        assert found["causes"] == ["account:tiny: no state yet"]
        assert found["accounts_failing_closed"] == ["tiny"]
        capsys.readouterr()
        assert main(["status", "--url", fresh.api_server.url]) == 2
        out = capsys.readouterr().out
        assert out.startswith("NOT READY because account:tiny: no state yet\n")
        fresh.report_account_snapshot(AccountSnapshot("tiny", 10_000.0))
        assert _status(fresh, capsys)[:1] == (0,)
