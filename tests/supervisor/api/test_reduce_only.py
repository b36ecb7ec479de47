"""Reduce-only mode and stacked halts over real HTTP: a reduce-only halt blocks every order that
grows a position (REDUCE_ONLY_MODE) and lets reducing ones through; each operator's halt keeps its
own reason and time; resume says what it lifted and answers 409 when nothing holds."""

from __future__ import annotations

import json

import pytest

from supervisor import RiskSupervisor
from tests.supervisor.api.conftest import ALICE, BOB
from tests.supervisor.api.test_controls import REDUCE_MAIN, call, config, decide, feed, journal_events


@pytest.fixture
def sup(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as s:
        s.serve_api(port=0)
        feed(s)
        yield s


@pytest.mark.parametrize("mode", ["", "REDUCE_ONLY", "reduce-only", 1, None, ["all"]])
def test_an_unknown_mode_is_refused_naming_the_field(sup, mode):
    r = call(sup, "POST", "/v1/halt", ALICE, {"reason": "drill", "mode": mode})
    assert r.status_code == 422 and "mode" in r.json()["detail"]
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
