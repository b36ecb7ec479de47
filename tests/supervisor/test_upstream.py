"""The real upstream payloads in ../shared/upstream parse; broken ones are named."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from supervisor.simulator import sample_payload
from supervisor.upstream import UpstreamError, parse_account_snapshot, parse_ess_status, parse_risk_signal

SHARED = Path(__file__).resolve().parents[3] / "shared" / "upstream"
SAMPLES = Path(__file__).resolve().parents[2] / "supervisor" / "upstream_samples"  # shipped copies


def load(name: str):
    return sample_payload(name)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/upstream not beside this checkout")
def test_shipped_samples_are_the_shared_payloads():
    names = sorted(p.name for p in SHARED.glob("*.json"))
    assert names == sorted(p.name for p in SAMPLES.glob("*.json"))
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
    a = parse_risk_signal({"risk_level": "INFO", "timestamp": "2026-01-01T02:00:00+02:00"}).timestamp
    b = parse_risk_signal({"risk_level": "INFO", "timestamp": "2026-01-01T00:00:00Z"}).timestamp
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
