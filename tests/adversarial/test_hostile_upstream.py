"""Hostile upstream payloads: no parser raises anything but its own error, and
no ambiguous answer ever reads as "all clear" (allow).

Two kinds of input: any JSON at all, and the real samples with one field
replaced by any JSON value. The oracles below are written from the contracts
(docs/upstream.md), not from the parsers.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from supervisor import RiskSupervisor
from supervisor.core.reasons import ReasonCode as RC
from supervisor.sim.simulator import UpstreamSimulator, sample_payload
from supervisor.sources.upstream import (
    UpstreamError,
    parse_account_snapshot,
    parse_ess_status,
    parse_risk_safety_status,
    parse_risk_signal,
)
from tests.adversarial.fault_server import FaultServer
from tests.helpers import make_config, order

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "true", "false", "active", "inactive", "ARMED", "TRIPPED", "INFO", "CRITICAL", "EMERGENCY"]),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)

ESS_ACTIVE = sample_payload("ess_status_active.json")
ESS_INACTIVE = sample_payload("ess_status_inactive.json")
SAFETY_ARMED = sample_payload("risk_safety/ess_risk_safety_armed.json")
SAFETY_TRIPPED = sample_payload("risk_safety/ess_risk_safety_tripped.json")
RISK_INFO = sample_payload("risk_global_info.json")
RISK_CRITICAL = sample_payload("risk_global_critical.json")


@st.composite
def mutated(draw: st.DrawFn, *samples: dict[str, Any]) -> Any:
    body = dict(draw(st.sampled_from(samples)))
    key = draw(st.sampled_from([*sorted(body), "available", "status", "can_execute", "state"]))
    if draw(st.booleans()) and key in body:
        del body[key]
        event(f"dropped {key}")
    else:
        body[key] = draw(json_values)
        event(f"replaced {key}")
    return body


def _emergency_clear(data: Any) -> bool:
    """The one unmistakable 'no halt' of GET /api/emergency/status."""
    return (
        isinstance(data, dict)
        and data.get("active") is False
        and ("available" not in data or data["available"] is True)
        and ("status" not in data or (isinstance(data["status"], str) and data["status"].lower() == "inactive"))
    )


def _safety_clear(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and data.get("can_execute") is True
        and isinstance(data.get("state"), str)
        and data["state"].upper() in ("ARMED", "DISABLED", "NORMAL", "CAUTION")
    )


@FUZZ
@given(st.one_of(json_values, mutated(ESS_ACTIVE, ESS_INACTIVE)))
def test_emergency_status_clears_only_on_an_unmistakable_clear(data):
    status = parse_ess_status(data)
    event(f"active={status.active}")
    assert status.active is not False or _emergency_clear(data)
    assert len(status.detail) < 300


@FUZZ
@given(st.one_of(json_values, mutated(SAFETY_ARMED, SAFETY_TRIPPED)))
def test_risk_safety_status_clears_only_on_an_unmistakable_clear(data):
    status = parse_risk_safety_status(data)
    event(f"active={status.active}")
    assert status.active is not False or _safety_clear(data)
    if isinstance(data, dict) and data.get("can_execute") is False:
        assert status.active is True


@FUZZ
@given(st.one_of(json_values, mutated(RISK_INFO, RISK_CRITICAL)))
def test_risk_signal_parses_only_what_is_unambiguous(data):
    try:
        sig = parse_risk_signal(data)
    except UpstreamError:
        event("unusable")
        return
    event(f"usable {sig.risk_level}")
    assert isinstance(data, dict) and isinstance(data["ess_action_required"], bool)
    assert sig.risk_level in ("INFO", "WARNING", "CRITICAL")
    if sig.ess_tier_recommendation == "EMERGENCY":
        assert sig.ess_action_required is True
    assert all(len(i) <= 203 for i in sig.critical_issues)


account_bodies = st.fixed_dictionaries(
    {
        "account": st.one_of(st.just("main"), scalars),
        "equity": st.one_of(scalars, st.floats(min_value=1e11, max_value=1e308)),
    },
    optional={
        "positions": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "symbol": scalars,
                    "exchange": scalars,
                    "quantity": st.one_of(scalars, st.floats(min_value=1e6, max_value=1e308)),
                    "mark_price": st.one_of(scalars, st.floats(min_value=1e6, max_value=1e308)),
                },
            ),
            max_size=3,
        ),
        "timestamp": scalars,
    },
)


@FUZZ
@given(st.one_of(json_values, account_bodies))
def test_account_snapshots_are_plausible_or_refused(data):
    try:
        snap = parse_account_snapshot(data)
    except UpstreamError:
        event("refused")
        return
    event("accepted")
    assert math.isfinite(snap.equity) and abs(snap.equity) <= 1e12
    for p in snap.positions:
        assert p.mark_price > 0 and abs(p.quantity) * p.mark_price <= 1e12


# -- end to end: an ambiguous answer served over HTTP never allows ----------------------

AMBIGUOUS_ESS = [
    {"available": "false", "active": False},
    {"available": 0, "active": False},
    {"available": None, "active": False},
    {"status": "active", "active": False},
    {"active": "false"},
    {"active": 0},
    {},
]
AMBIGUOUS_SAFETY = [
    {"state": "TRIPPED", "can_execute": True},
    {"state": "ARMED", "can_execute": "true"},
    {"can_execute": True},
    {"error": "ESS not initialized", "healthy": False},
]


@pytest.mark.parametrize(
    ("contract", "body"),
    [("emergency_status", b) for b in AMBIGUOUS_ESS] + [("risk_safety", b) for b in AMBIGUOUS_SAFETY],
)
def test_an_ambiguous_ess_answer_over_http_blocks(clock, tmp_path, contract, body):
    with UpstreamSimulator(clock=clock) as sim, FaultServer("ok", body) as ess:
        sim.set_risk("info")
        sim.set_account("main", 10_000.0)
        cfg = make_config(
            risk_v3={"url": sim.url},
            ess={"url": ess.url, "contract": contract, "kill_switch_file": str(tmp_path / "KILL")},
            accounts={"snapshot_url": sim.url},
            state={"dir": str(tmp_path / "state")},
        )
        with RiskSupervisor(cfg, clock=clock) as sup:
            for name in ("ess_watcher", "risk_v3_poller", "account_tracker"):
                sup.actor_ref(name).proxy().ping().get(timeout=10)
            assert sup.evaluate(order()).reason_code is RC.ESS_STATE_STALE
            ess.body = {"active": False, "status": "inactive"} if contract == "emergency_status" else SAFETY_ARMED
            clock.advance(0.5)
            sup.actor_ref("ess_watcher").proxy().ping().get(timeout=10)
            assert sup.evaluate(order()).decision == "allow"  # the same path clears on a clear answer
