"""The real upstream payloads (shipped in supervisor/sim/samples) parse; broken ones are named.

Where the original payloads sit beside this checkout (../shared/upstream, in the
developers' workspace), the shipped copies are checked to be the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from supervisor.sim.simulator import sample_payload
from supervisor.sources.upstream import (
    UpstreamError,
    parse_account_snapshot,
    parse_ess_status,
    parse_risk_safety_status,
    parse_risk_signal,
)

SHARED = Path(__file__).resolve().parents[4] / "shared" / "upstream"
SAMPLES = Path(__file__).resolve().parents[3] / "supervisor" / "sim" / "samples"  # shipped copies


def load(name: str):
    return sample_payload(name)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/upstream not beside this checkout")
def test_shipped_samples_are_the_shared_payloads():
    names = sorted(str(p.relative_to(SHARED)) for p in SHARED.rglob("*.json"))
    assert names == sorted(str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*.json"))
    for name in names:
        assert (SAMPLES / name).read_bytes() == (SHARED / name).read_bytes(), name


@pytest.mark.parametrize(
    ("name", "level", "action", "tier"),
    [
        ("risk_global_info.json", "INFO", False, "NORMAL"),
        ("risk_global_warning.json", "WARNING", False, "NORMAL"),
        ("risk_global_critical.json", "CRITICAL", True, "EMERGENCY"),
    ],
)
def test_shipped_risk_signals_parse(name, level, action, tier):
    sig = parse_risk_signal(load(name))
    assert (sig.risk_level, sig.ess_action_required, sig.ess_tier_recommendation) == (level, action, tier)
    assert sig.timestamp.tzinfo is UTC and sig.timestamp.year == 2026  # naive time read as UTC


def test_critical_signal_carries_its_issues():
    sig = parse_risk_signal(load("risk_global_critical.json"))
    assert sig.critical_issues[0] == "Leverage 8.1x exceeds limit 5.0x" and sig.overall_risk_score == 0.636


def test_404_body_is_not_a_signal():
    with pytest.raises(UpstreamError, match="risk_level: missing"):
        parse_risk_signal(load("risk_global_404.json"))


@pytest.mark.parametrize(
    "body",
    [
        [],
        "INFO",
        {"risk_level": "PANIC", "timestamp": "2026-01-01T00:00:00"},
        {"risk_level": "INFO"},
        {"risk_level": "INFO", "timestamp": "yesterday"},
        {"risk_level": "INFO", "timestamp": "2026-01-01T00:00:00", "ess_action_required": "no"},
    ],
)
def test_broken_signals_raise_upstream_error(body):
    with pytest.raises(UpstreamError):
        parse_risk_signal(body)


def test_timestamp_with_offset_and_z_are_converted_to_utc():
    flag = {"ess_action_required": False}
    a = parse_risk_signal({"risk_level": "INFO", "timestamp": "2026-01-01T02:00:00+02:00", **flag}).timestamp
    b = parse_risk_signal({"risk_level": "INFO", "timestamp": "2026-01-01T00:00:00Z", **flag}).timestamp
    assert a == b == datetime(2026, 1, 1, tzinfo=UTC)


def test_shipped_ess_statuses_parse():
    active = parse_ess_status(load("ess_status_active.json"))
    inactive = parse_ess_status(load("ess_status_inactive.json"))
    assert (active.active, inactive.active) == (True, False)
    assert "Daily PnL" in active.detail


@pytest.mark.parametrize(
    "body", [{"available": False, "active": False}, {"status": "inactive"}, {"active": "false"}, [], None]
)
def test_unusable_ess_answers_are_unknown(body):
    assert parse_ess_status(body).active is None


def test_account_snapshot_contract():
    snap = parse_account_snapshot(
        {
            "account": "main",
            "equity": 10_000,
            "timestamp": "2026-01-01T00:00:00",
            "positions": [{"symbol": "BTCUSDT", "exchange": "binance", "quantity": -0.5, "mark_price": 65_000}],
        }
    )
    assert snap.positions[0].quantity == -0.5 and snap.equity == 10_000.0
    for bad in (
        {"account": "main"},
        {"account": "main", "equity": float("nan")},
        {
            "account": "main",
            "equity": 1,
            "positions": [{"symbol": "X", "exchange": "y", "quantity": 1, "mark_price": 0}],
        },
    ):
        with pytest.raises(UpstreamError):
            parse_account_snapshot(bad)


INFO = {"risk_level": "INFO", "timestamp": "2026-01-01T00:00:00", "ess_action_required": False}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"ess_action_required": None}, "ess_action_required"),
        ({"ess_tier_recommendation": "EMERGENCY"}, "ambiguous"),
        ({"ess_tier_recommendation": "PANIC"}, "ess_tier_recommendation"),
        ({"ess_tier_recommendation": 3}, "ess_tier_recommendation"),
    ],
)
def test_ambiguous_risk_signals_are_unusable(change, why):
    body = {**INFO, **change}
    if change.get("ess_action_required", 0) is None:
        del body["ess_action_required"]  # missing, not null
    with pytest.raises(UpstreamError, match=why):
        parse_risk_signal(body)


def test_emergency_tier_with_action_required_is_a_usable_signal():
    sig = parse_risk_signal({**INFO, "ess_tier_recommendation": "emergency", "ess_action_required": True})
    assert (sig.ess_tier_recommendation, sig.ess_action_required) == ("EMERGENCY", True)


@pytest.mark.parametrize(
    "body",
    [
        {"available": "false", "active": False},
        {"available": 0, "active": False},
        {"available": None, "active": False},
        {"available": "true", "active": False},
        {"status": "active", "active": False},
        {"status": "inactive", "active": True},
        {"status": None, "active": False},
        {"status": "armed", "active": False},
    ],
)
def test_ambiguous_ess_answers_are_unknown_not_clear(body):
    assert parse_ess_status(body).active is None


def test_ess_with_available_true_and_consistent_status_is_read():
    assert parse_ess_status({"available": True, "status": "INACTIVE", "active": False}).active is False


def test_risk_safety_contract_samples():
    armed = parse_risk_safety_status(load("risk_safety/ess_risk_safety_armed.json"))
    tripped = parse_risk_safety_status(load("risk_safety/ess_risk_safety_tripped.json"))
    uninitialised = parse_risk_safety_status(load("risk_safety/ess_risk_safety_uninitialised.json"))
    assert (armed.active, tripped.active, uninitialised.active) == (False, True, None)
    assert tripped.detail == "Daily drawdown 5.20% exceeds limit 5.00%"


@pytest.mark.parametrize(
    "body",
    [
        {"state": "ARMED"},
        {"state": "ARMED", "can_execute": "true"},
        {"state": "ARMED", "can_execute": 1},
        {"state": "TRIPPED", "can_execute": True},
        {"state": "COOLING_DOWN", "can_execute": True},
        {"state": "WHATEVER", "can_execute": True},
        {"can_execute": True},
        {"detail": "Service not ready"},
    ],
)
def test_risk_safety_ambiguity_is_unknown(body):
    assert parse_risk_safety_status(body).active is None


def test_risk_safety_cannot_execute_halts_whatever_the_state():
    status = parse_risk_safety_status({"state": "ARMED", "can_execute": False, "trip_reason": None})
    assert status.active is True and "ARMED" in status.detail


@pytest.mark.parametrize("field", ["equity", "mark_price", "notional"])
def test_implausible_account_values_are_unusable(field):
    position = {"symbol": "BTCUSDT", "exchange": "binance", "quantity": 1.0, "mark_price": 65_000.0}
    body = {"account": "main", "equity": 10_000.0, "positions": [position]}
    if field == "equity":
        body["equity"] = 1e308
    elif field == "mark_price":
        position["mark_price"] = 1e22
    else:
        position["quantity"] = 1e10  # x 65,000 = 6.5e14 USD
    with pytest.raises(UpstreamError, match="implausible"):
        parse_account_snapshot(body)
    assert parse_account_snapshot(body, max_plausible_usd=1e309).account == "main"


def test_huge_upstream_strings_are_cut():
    sig = parse_risk_signal({**INFO, "critical_issues": ["x" * 10_000_000] * 50})
    assert len(sig.critical_issues) == 20 and all(len(i) <= 203 for i in sig.critical_issues)
