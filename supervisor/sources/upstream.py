"""Parsers for the upstream contracts (docs/upstream.md).

Each takes decoded JSON and returns a frozen message or raises `UpstreamError`
naming what is wrong. Unknown fields are ignored; a naive timestamp is UTC.
Ambiguity is never read as "all clear": a field that is present but not of
the one unmistakable form, or two fields that contradict each other, make the
answer unusable (the gate then fails closed on that source).
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from supervisor.core.messages import (
    AccountSnapshot,
    EssSourceStatus,
    Fill,
    OrderOutcome,
    OutcomeStatus,
    Position,
    PriceSnapshot,
    RiskSignal,
)
from supervisor.core.orders import MAX_NAME_LENGTH
from supervisor.core.values import plain_float, plain_str, shorten
from supervisor.errors import RiskgateError

__all__ = [
    "DEFAULT_MAX_PLAUSIBLE_USD",
    "ESS_TIERS",
    "MAX_PLAUSIBLE_QUANTITY",
    "MIN_PLAUSIBLE_PRICE",
    "UpstreamError",
    "check_fill",
    "check_outcome",
    "check_signal",
    "check_snapshot",
    "parse_account_snapshot",
    "parse_ess_status",
    "parse_prices",
    "parse_risk_safety_status",
    "parse_risk_signal",
    "parse_timestamp",
]

RISK_LEVELS: dict[str, Literal["INFO", "WARNING", "CRITICAL"]] = {
    "INFO": "INFO",
    "WARNING": "WARNING",
    "CRITICAL": "CRITICAL",
}
#: ESS tiers Global Risk v3 recommends; any other value is unusable.
ESS_TIERS = frozenset(("NORMAL", "REDUCED", "EMERGENCY"))
#: Risk-safety service states: these allow (with can_execute true) ...
RISK_SAFETY_CLEAR = frozenset(("ARMED", "DISABLED", "NORMAL", "CAUTION"))
#: ... and these halt (can_execute must then be false).
RISK_SAFETY_HALT = frozenset(("TRIPPED", "COOLING_DOWN", "CRITICAL"))
#: Equity, mark prices and position notionals above this are implausible.
DEFAULT_MAX_PLAUSIBLE_USD = 1e12
#: A reported quantity above this, or a price below this, is no market's: a report
#: (fill, outcome) carrying one is refused before it reaches the gate.
MAX_PLAUSIBLE_QUANTITY = 1e15
MIN_PLAUSIBLE_PRICE = 1e-12
_MAX_TEXT = 200  # longest upstream text carried into a reason or a log line
_MAX_ITEMS = 20  # most issues/warnings carried


class UpstreamError(RiskgateError, ValueError):
    """An upstream answer that cannot be used."""


def _text(value: Any, limit: int = _MAX_TEXT) -> str:
    text = value if isinstance(value, str) else str(value)
    return text[:limit] + ("..." if len(text) > limit else "")


def parse_timestamp(value: Any, field: str = "timestamp") -> datetime:
    text = plain_str(value)
    if text is None:
        raise UpstreamError(f"{field}: expected an ISO 8601 string, got {shorten(value)}")
    text = text.strip()
    if len(text) > 64:
        raise UpstreamError(f"{field}: not ISO 8601: {shorten(value)}")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        ts = datetime.fromisoformat(text)
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # 0001-01-01T00:00:00+01:00 overflows into year 0
        raise UpstreamError(f"{field}: not a usable ISO 8601 time: {shorten(value)}") from exc


def _mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise UpstreamError(f"{what}: expected a JSON object, got {type(data).__name__}")
    return data


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(_text(v) for v in value[:_MAX_ITEMS])
    return ()


def _finite(value: Any, field: str) -> float:
    f = plain_float(value)
    if f is None:
        raise UpstreamError(f"{field}: expected a finite number, got {shorten(value)}")
    return f


def _plausible(value: float, field: str, bound: float) -> float:
    if abs(value) > bound:
        raise UpstreamError(f"{field}: {value:.6g} is implausible (above {bound:.6g})")
    return value


def parse_risk_signal(data: Any) -> RiskSignal:
    """Global Risk v3's `GlobalRiskSignal` (GET /risk/global).

    `risk_level`, `timestamp` and `ess_action_required` are required; an ESS
    tier, when given, must be one the service knows, and an EMERGENCY tier
    without `ess_action_required: true` contradicts itself.
    """
    d = _mapping(data, "risk signal")
    raw_level = d.get("risk_level")
    if raw_level is None:
        raise UpstreamError("risk_level: missing")
    level = plain_str(raw_level)
    if level is None or level.upper() not in RISK_LEVELS:
        raise UpstreamError(f"risk_level: unknown value {shorten(raw_level)}")
    if "ess_action_required" not in d:
        raise UpstreamError("ess_action_required: missing (cannot tell whether ESS action is required)")
    action = d["ess_action_required"]
    if not isinstance(action, bool):
        raise UpstreamError(f"ess_action_required: expected a boolean, got {shorten(action)}")
    raw_tier = d.get("ess_tier_recommendation")
    tier = None
    if raw_tier is not None:
        tier = plain_str(raw_tier)
        if tier is None or tier.upper() not in ESS_TIERS:
            raise UpstreamError(f"ess_tier_recommendation: unknown value {shorten(raw_tier)}")
        tier = tier.upper()
        if tier == "EMERGENCY" and not action:
            raise UpstreamError("ess_tier_recommendation EMERGENCY with ess_action_required false: ambiguous")
    return RiskSignal(
        risk_level=RISK_LEVELS[level.upper()],
        timestamp=parse_timestamp(d.get("timestamp")),
        ess_action_required=action,
        ess_tier_recommendation=tier,
        overall_risk_score=plain_float(d.get("overall_risk_score")),
        critical_issues=_strings(d.get("critical_issues")),
        warnings=_strings(d.get("warnings")),
    )


def check_signal(signal: RiskSignal) -> RiskSignal:
    """A pushed `RiskSignal` object held to the same rules as a parsed one."""
    if not isinstance(signal, RiskSignal):
        raise UpstreamError(f"risk signal: expected a RiskSignal, got {type(signal).__name__}")
    if not isinstance(signal.timestamp, datetime):
        raise UpstreamError(f"timestamp: expected a datetime, got {shorten(signal.timestamp)}")
    when = signal.timestamp if signal.timestamp.tzinfo is not None else signal.timestamp.replace(tzinfo=UTC)
    return parse_risk_signal(
        {
            "risk_level": signal.risk_level,
            "timestamp": when.isoformat(),
            "ess_action_required": signal.ess_action_required,
            "ess_tier_recommendation": signal.ess_tier_recommendation,
            "overall_risk_score": signal.overall_risk_score,
            "critical_issues": list(signal.critical_issues) if isinstance(signal.critical_issues, tuple) else [],
            "warnings": list(signal.warnings) if isinstance(signal.warnings, tuple) else [],
        }
    )


def parse_ess_status(data: Any, source: str = "http") -> EssSourceStatus:
    """The ESS status endpoint (GET /api/emergency/status). Never raises:
    anything unusable or ambiguous is an unknown reading (the gate: stale).

    `active` must be a boolean; `available`, when present, must be `true`;
    `status`, when present, must say the same as `active`.
    """
    if not isinstance(data, Mapping):
        return EssSourceStatus(source, None, f"not a JSON object: {type(data).__name__}")
    if "available" in data and data["available"] is not True:
        return EssSourceStatus(source, None, f"ESS reports available={shorten(data['available'])}")
    active = data.get("active")
    if not isinstance(active, bool):
        return EssSourceStatus(source, None, f"active: missing or not a boolean ({shorten(active)})")
    if "status" in data:
        status = data["status"]
        expected = "active" if active else "inactive"
        if not isinstance(status, str) or status.lower() != expected:
            return EssSourceStatus(source, None, f"status {shorten(status)} contradicts active={active}: ambiguous")
    reason = data.get("reason")
    detail = _text(reason) if active and reason else ("active" if active else "inactive")
    return EssSourceStatus(source, active, detail)


def parse_risk_safety_status(data: Any, source: str = "http") -> EssSourceStatus:
    """The risk-safety service's ESS (GET /api/risk/ess/status). Never raises.

    `can_execute: false` halts (`trip_reason` is the reason); `true` clears only
    with a `state` that allows trading; a missing or non-boolean `can_execute`,
    an unknown state, or a halting state with `can_execute: true` is unknown.
    """
    if not isinstance(data, Mapping):
        return EssSourceStatus(source, None, f"not a JSON object: {type(data).__name__}")
    can_execute = data.get("can_execute")
    if not isinstance(can_execute, bool):
        return EssSourceStatus(source, None, f"can_execute: missing or not a boolean ({shorten(can_execute)})")
    state = data.get("state")
    state_name = state.upper() if isinstance(state, str) else None
    if not can_execute:
        reason = data.get("trip_reason")
        detail = _text(reason) if isinstance(reason, str) and reason else f"state {shorten(state)}"
        return EssSourceStatus(source, True, detail)
    if state_name in RISK_SAFETY_CLEAR:
        return EssSourceStatus(source, False, state_name.lower())
    if state_name in RISK_SAFETY_HALT:
        return EssSourceStatus(source, None, f"state {state_name} with can_execute true: ambiguous")
    return EssSourceStatus(source, None, f"state: unknown value {shorten(state)}")


_MAX_PRICES = 10_000  # symbols read from one answer


def parse_prices(
    data: Any, symbols: Container[str] | None = None, max_plausible_usd: float = DEFAULT_MAX_PLAUSIBLE_USD
) -> PriceSnapshot:
    """The prices contract (GET {prices.url}/prices): `{"timestamp": ISO 8601, "prices":
    {"BTCUSDT": 65000.0, ...}}`, a price given as a number or as `{"price": 65000.0,
    "timestamp": ISO 8601}` (its own time). The answer's timestamp is required (a price
    without a time cannot be aged); a price that is not a plain finite number in (0,
    max_plausible_usd], or whose own time is unreadable, is dropped, its symbol named in
    `dropped` (then not priced: never a price guessed). Keys are read as orders read symbols
    (BTC/USDT is BTCUSDT); a dated future's or an option's key is ignored, and two keys for one
    symbol leave it unpriced. Only `symbols` (the configured ones) are kept when given; a symbol
    key that is not a short name is ignored."""
    d = _mapping(data, "prices answer")
    timestamp = parse_timestamp(d.get("timestamp"))
    raw = d.get("prices")
    if not isinstance(raw, Mapping):
        raise UpstreamError(f"prices: expected a JSON object of symbol -> price, got {shorten(raw)}")
    if len(raw) > _MAX_PRICES:
        raise UpstreamError(f"prices: {len(raw)} symbols, more than {_MAX_PRICES}: not a price list")
    prices: dict[str, float] = {}
    stamps: dict[str, datetime] = {}
    dropped: list[str] = []
    named: dict[str, int] = {}
    for raw_key, value in raw.items():
        if type(raw_key) is not str or not 0 < len(raw_key) <= MAX_NAME_LENGTH:
            continue
        market, _, settle = raw_key.partition(":")
        if "-" in settle:
            continue  # a dated future or an option (BTC/USDT:USDT-250328-60000-C): never the market's price
        key = market.replace("/", "")  # BTC/USDT, BTC/USDT:USDT: BTCUSDT, as in orders
        if symbols is not None and key not in symbols:
            continue
        named[key] = named.get(key, 0) + 1
        if named[key] > 1:  # two prices for one symbol: which is the market's is not known
            prices.pop(key, None)
            stamps.pop(key, None)
            if key not in dropped:
                dropped.append(key)
            continue
        stamp, given = None, value
        if isinstance(value, Mapping):
            try:
                stamp = parse_timestamp(value.get("timestamp"), f"prices.{key}.timestamp")
            except UpstreamError:
                dropped.append(key)
                continue
            given = value.get("price")
        price = plain_float(given)
        if price is None or not MIN_PLAUSIBLE_PRICE <= price <= max_plausible_usd:
            dropped.append(key)
            continue
        prices[key] = price
        if stamp is not None:
            stamps[key] = stamp
    return PriceSnapshot(timestamp, prices, tuple(dropped), stamps or None)


def parse_account_snapshot(data: Any, max_plausible_usd: float = DEFAULT_MAX_PLAUSIBLE_USD) -> AccountSnapshot:
    """riskgate's account snapshot contract. Equity, marks and position
    notionals above `max_plausible_usd` are implausible and unusable."""
    d = _mapping(data, "account snapshot")
    account = d.get("account")
    if not isinstance(account, str) or not account:
        raise UpstreamError(f"account: expected a non-empty string, got {shorten(account)}")
    equity = _plausible(_finite(d.get("equity"), "equity"), "equity", max_plausible_usd)
    raw_positions = d.get("positions", [])
    if not isinstance(raw_positions, list):
        raise UpstreamError("positions: expected a list")
    positions = []
    for i, raw in enumerate(raw_positions):
        p = _mapping(raw, f"positions[{i}]")
        symbol, exchange = p.get("symbol"), p.get("exchange")
        if not isinstance(symbol, str) or not isinstance(exchange, str):
            raise UpstreamError(f"positions[{i}]: symbol and exchange must be strings")
        quantity = _finite(p.get("quantity"), f"positions[{i}].quantity")
        positions.append(
            Position(symbol, exchange, quantity, _finite(p.get("mark_price"), f"positions[{i}].mark_price"))
        )
    ts = d.get("timestamp")
    snapshot = AccountSnapshot(
        account=account,
        equity=equity,
        positions=tuple(positions),
        timestamp=parse_timestamp(ts) if ts is not None else None,
    )
    return check_snapshot(snapshot, max_plausible_usd)


def check_snapshot(snap: AccountSnapshot, max_plausible_usd: float = DEFAULT_MAX_PLAUSIBLE_USD) -> AccountSnapshot:
    """A snapshot with plain, finite, plausible numbers (subclasses read as
    their true values), or `UpstreamError`. Used for parsed and pushed ones."""
    account = plain_str(snap.account)
    if not account:
        raise UpstreamError(f"account: expected a non-empty string, got {shorten(snap.account)}")
    equity = _plausible(_finite(snap.equity, "equity"), "equity", max_plausible_usd)
    if not isinstance(snap.positions, tuple):
        raise UpstreamError("positions: expected a tuple of Position")
    positions = []
    seen: set[tuple[str, str]] = set()
    for i, p in enumerate(snap.positions):
        symbol = plain_str(p.symbol) if isinstance(p, Position) else None
        exchange = plain_str(p.exchange) if isinstance(p, Position) else None
        if not symbol or not exchange:
            raise UpstreamError(f"positions[{i}]: expected a Position with string symbol and exchange")
        if (symbol, exchange) in seen:
            # Two figures for one position: which is it? (Summing could double count.)
            raise UpstreamError(f"positions[{i}]: {shorten(symbol, 30)} on {shorten(exchange, 30)} appears twice")
        seen.add((symbol, exchange))
        mark = _plausible(_finite(p.mark_price, f"positions[{i}].mark_price"), "mark_price", max_plausible_usd)
        if mark <= 0:
            raise UpstreamError(f"positions[{i}].mark_price: must be > 0, got {mark}")
        qty = _finite(p.quantity, f"positions[{i}].quantity")
        _plausible(abs(qty) * mark, f"positions[{i}] notional", max_plausible_usd)
        positions.append(Position(symbol, exchange, qty, mark))
    when = snap.timestamp
    if when is not None:
        if not isinstance(when, datetime):
            raise UpstreamError("timestamp: expected a datetime")
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when  # naive is UTC, as in the JSON
    return AccountSnapshot(account, equity, tuple(positions), when)


_OUTCOMES: dict[str, OutcomeStatus] = {
    s: s for s in ("open", "partially_filled", "filled", "cancelled", "rejected", "expired", "error")
}


def _name(value: Any, field: str) -> str:
    text = plain_str(value)
    if not text or len(text) > MAX_NAME_LENGTH:
        raise UpstreamError(
            f"{field}: expected a non-empty string of at most {MAX_NAME_LENGTH} characters, got {shorten(value)}"
        )
    return text


def check_fill(fill: Fill, max_plausible_usd: float = DEFAULT_MAX_PLAUSIBLE_USD) -> Fill:
    """A fill with plain, finite, positive, plausible values, or `UpstreamError`:
    a NaN fill would otherwise poison a position and release every reservation."""
    if not isinstance(fill, Fill):
        raise UpstreamError(f"fill: expected a Fill, got {type(fill).__name__}")
    side = plain_str(fill.side)
    side = side.lower() if side is not None else None
    if side not in ("buy", "sell"):
        raise UpstreamError(f"side: expected buy or sell, got {shorten(fill.side)}")
    quantity, price = _finite(fill.quantity, "quantity"), _finite(fill.price, "price")
    if quantity <= 0 or price <= 0:
        raise UpstreamError(f"quantity and price must be > 0, got {quantity} and {price}")
    if quantity > MAX_PLAUSIBLE_QUANTITY:
        raise UpstreamError(f"quantity: {quantity:.6g} is implausible (above {MAX_PLAUSIBLE_QUANTITY:.6g})")
    if price < MIN_PLAUSIBLE_PRICE:
        raise UpstreamError(f"price: {price:.6g} is implausible (below {MIN_PLAUSIBLE_PRICE:.6g})")
    _plausible(quantity * price, "notional", max_plausible_usd)
    return Fill(
        account=_name(fill.account, "account"),
        exchange=_name(fill.exchange, "exchange"),
        symbol=_name(fill.symbol, "symbol"),
        side=side,
        quantity=quantity,
        price=price,
        order_id=None if fill.order_id is None else _name(fill.order_id, "order_id"),
    )


def check_outcome(outcome: OrderOutcome) -> OrderOutcome:
    """An order outcome with a plain id, a known status and (optionally) an account."""
    if not isinstance(outcome, OrderOutcome):
        raise UpstreamError(f"outcome: expected an OrderOutcome, got {type(outcome).__name__}")
    status = plain_str(outcome.status)
    if status not in _OUTCOMES:
        raise UpstreamError(f"status: expected one of {', '.join(sorted(_OUTCOMES))}, got {shorten(outcome.status)}")
    filled = plain_float(outcome.filled_quantity)
    if filled is None or not 0 <= filled <= MAX_PLAUSIBLE_QUANTITY:
        got = shorten(outcome.filled_quantity)
        raise UpstreamError(f"filled_quantity: expected a number in [0, {MAX_PLAUSIBLE_QUANTITY:.6g}], got {got}")
    return OrderOutcome(
        order_id=_name(outcome.order_id, "order_id"),
        status=_OUTCOMES[status],
        filled_quantity=filled,
        account=None if outcome.account is None else _name(outcome.account, "account"),
    )
