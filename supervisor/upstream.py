"""Parsers for the upstream contracts of DESIGN.md section 5.

Each takes decoded JSON and returns a frozen message or raises `UpstreamError`
naming what is wrong. Unknown fields are ignored; a naive timestamp is UTC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from supervisor.messages import AccountSnapshot, EssSourceStatus, Position, RiskSignal

__all__ = ["UpstreamError", "parse_account_snapshot", "parse_ess_status", "parse_risk_signal", "parse_timestamp"]

RISK_LEVELS = ("INFO", "WARNING", "CRITICAL")


class UpstreamError(ValueError):
    """An upstream answer that cannot be used."""


def parse_timestamp(value: Any, field: str = "timestamp") -> datetime:
    if not isinstance(value, str):
        raise UpstreamError(f"{field}: expected an ISO 8601 string, got {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UpstreamError(f"{field}: not ISO 8601: {value!r}") from exc
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise UpstreamError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


def _finite(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UpstreamError(f"{field}: expected a finite number, got {value!r}")
    return float(value)


def parse_risk_signal(data: Any) -> RiskSignal:
    """Global Risk v3's `GlobalRiskSignal` (GET /risk/global)."""
    d = _mapping(data, "risk signal")
    level = d.get("risk_level")
    if level is None:
        raise UpstreamError("risk_level: missing")
    if not isinstance(level, str) or level.upper() not in RISK_LEVELS:
        raise UpstreamError(f"risk_level: unknown value {level!r}")
    action = d.get("ess_action_required", False)
    if not isinstance(action, bool):
        raise UpstreamError(f"ess_action_required: expected a boolean, got {action!r}")
    tier = d.get("ess_tier_recommendation")
    score = d.get("overall_risk_score")
    return RiskSignal(
        risk_level=level.upper(),  # type: ignore[arg-type]
        timestamp=parse_timestamp(d.get("timestamp")),
        ess_action_required=action,
        ess_tier_recommendation=tier if isinstance(tier, str) else None,
        overall_risk_score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
        critical_issues=_strings(d.get("critical_issues")),
        warnings=_strings(d.get("warnings")),
    )


def parse_ess_status(data: Any, source: str = "http") -> EssSourceStatus:
    """The ESS status endpoint (GET /api/emergency/status). Never raises:
    anything unusable is an unknown reading, which the gate treats as stale."""
    if not isinstance(data, Mapping):
        return EssSourceStatus(source, None, f"not a JSON object: {type(data).__name__}")
    if data.get("available") is False:
        return EssSourceStatus(source, None, "ESS reports available=false")
    active = data.get("active")
    if not isinstance(active, bool):
        return EssSourceStatus(source, None, f"active: missing or not a boolean ({active!r})")
    reason = data.get("reason")
    detail = str(reason) if active and reason else ("active" if active else "inactive")
    return EssSourceStatus(source, active, detail)


def parse_account_snapshot(data: Any) -> AccountSnapshot:
    """riskgate's account snapshot contract."""
    d = _mapping(data, "account snapshot")
    account = d.get("account")
    if not isinstance(account, str) or not account:
        raise UpstreamError(f"account: expected a non-empty string, got {account!r}")
    equity = _finite(d.get("equity"), "equity")
    raw_positions = d.get("positions", [])
    if not isinstance(raw_positions, list):
        raise UpstreamError("positions: expected a list")
    positions = []
    for i, p in enumerate(raw_positions):
        p = _mapping(p, f"positions[{i}]")
        symbol, exchange = p.get("symbol"), p.get("exchange")
        if not isinstance(symbol, str) or not isinstance(exchange, str):
            raise UpstreamError(f"positions[{i}]: symbol and exchange must be strings")
        mark = _finite(p.get("mark_price"), f"positions[{i}].mark_price")
        if mark <= 0:
            raise UpstreamError(f"positions[{i}].mark_price: must be > 0, got {mark}")
        positions.append(Position(symbol, exchange, _finite(p.get("quantity"), f"positions[{i}].quantity"), mark))
    ts = d.get("timestamp")
    return AccountSnapshot(
        account=account,
        equity=equity,
        positions=tuple(positions),
        timestamp=parse_timestamp(ts) if ts is not None else None,
    )
