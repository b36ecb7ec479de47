"""Frozen messages: what flows into the gate and what comes out of it.

Every message is a frozen, slotted dataclass. Actors send snapshots, never
mutable state, so a message can be read on any thread without a lock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from supervisor.config import Config
from supervisor.core.reasons import ReasonCode
from supervisor.core.values import slot_setters

__all__ = [
    "AccountSnapshot",
    "AccountState",
    "ConfigChanged",
    "DecidedElsewhere",
    "EssSourceStatus",
    "EssState",
    "EvaluateOrder",
    "Fill",
    "LeaseHeld",
    "MessageSent",
    "OrderOutcome",
    "OrderRequest",
    "Override",
    "Position",
    "PriceSnapshot",
    "ReduceOnlyMode",
    "RejectOrder",
    "RiskGateResult",
    "RiskSignal",
    "SharedState",
    "evaluate_order_message",
]

Decision = Literal["allow", "block", "scale_down"]
RiskLevel = Literal["INFO", "WARNING", "CRITICAL", "UNKNOWN"]


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order the execution side wants to place (docs/api.md)."""

    account: str
    exchange: str
    strategy_id: str
    symbol: str
    side: str
    quantity: float
    price: float
    leverage: float = 1.0
    reduce_only: bool = False
    stop_price: float | None = None
    order_id: str | None = None
    reference_price: float | None = None  # the market's price, for the collar when no mark is known


@dataclass(frozen=True, slots=True)
class RiskGateResult:
    """The gate's answer. `adjusted_quantity` is what may be sent (0 on block)."""

    decision: Decision
    reason: str
    reason_code: ReasonCode
    scale_factor: float
    adjusted_quantity: float
    risk_level: RiskLevel
    ess_active: bool
    timestamp: datetime
    order_id: str
    state_age_s: Mapping[str, float | None] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.decision != "block"


@dataclass(frozen=True, slots=True)
class RiskSignal:
    """The parts of Global Risk v3's GlobalRiskSignal the gate uses."""

    risk_level: Literal["INFO", "WARNING", "CRITICAL"]
    timestamp: datetime  # the service's own evaluation time, UTC
    ess_action_required: bool = False
    ess_tier_recommendation: str | None = None
    overall_risk_score: float | None = None
    critical_issues: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PriceSnapshot:
    """The prices source's answer ([prices]): one mark per symbol, stamped `timestamp` (UTC)
    or its own time in `stamps`. Every price is plain, finite, > 0 and plausible (supervisor.sources.upstream);
    `dropped` names the symbols whose price was not (they count as not priced)."""

    timestamp: datetime
    prices: Mapping[str, float]
    dropped: tuple[str, ...] = ()
    stamps: Mapping[str, datetime] | None = None  # a price's own time where it has one (else `timestamp`)


@dataclass(frozen=True, slots=True)
class EssSourceStatus:
    """One ESS source's reading: active True/False, or None when unknown."""

    source: str  # "http" or "kill_switch_file" or a test's name
    active: bool | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class EssState:
    """The combined ESS reading. `active` is None when any source is unknown
    and none is active: the gate then treats ESS as stale."""

    active: bool | None
    sources: tuple[EssSourceStatus, ...] = ()
    reason: str = ""

    @classmethod
    def combine(cls, sources: tuple[EssSourceStatus, ...]) -> EssState:
        if not sources:
            return cls(active=None, sources=(), reason="no ESS source configured")
        halted = [s for s in sources if s.active is True]
        if halted:
            return cls(True, sources, "; ".join(f"{s.source}: {s.detail}" for s in halted))
        unknown = [s for s in sources if s.active is not False]  # None, or anything not a plain bool
        if unknown:
            return cls(None, sources, "; ".join(f"{s.source}: {s.detail}" for s in unknown))
        return cls(False, sources, "")


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    exchange: str
    quantity: float  # signed: > 0 long, < 0 short
    mark_price: float


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """riskgate's own snapshot contract (docs/upstream.md)."""

    account: str
    equity: float
    positions: tuple[Position, ...] = ()
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class AccountState:
    """What the gate knows of one account: the latest snapshot plus the
    equity at the start of the current day and week."""

    account: str
    equity: float
    positions: tuple[Position, ...]
    day_start_equity: float
    week_start_equity: float
    # False when only positions moved (a fill): the gate keeps the age of the
    # last snapshot, since equity was not refreshed.
    refreshed: bool = True
    # Periods ("day", "week") whose start equity is unknown (a lost baseline
    # store, a wall clock that went back): opening orders block until known.
    baseline_unknown: tuple[str, ...] = ()
    # Why the latest snapshot could not be used (implausible or non-finite
    # values): the account fails closed with this reason until a usable one.
    problem: str | None = None
    # The week's equity peak so far, and until when new positions stay blocked
    # after a loss limit tripped (the tracker keeps both, persisted).
    peak_equity: float | None = None
    cooldown_until: datetime | None = None
    # When the day's or week's loss limit tripped in the current period (("day", when), ...).
    trips: tuple[tuple[str, datetime], ...] = ()


@dataclass(frozen=True, slots=True)
class Fill:
    """A (partial) fill reported by the execution side."""

    account: str
    exchange: str
    symbol: str
    side: str
    quantity: float
    price: float
    order_id: str | None = None


OutcomeStatus = Literal["open", "partially_filled", "filled", "cancelled", "rejected", "expired", "error"]


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """What became of an order at the exchange. `open` / `partially_filled`: it
    rests, and holds its reservation until it ends (no expiry). Any other
    status ends it: what its reported fills explain is released, and a filled
    part whose fill is not reported yet stays reserved for a while (`filled`
    without `filled_quantity` means all of it)."""

    order_id: str
    status: OutcomeStatus
    filled_quantity: float = 0.0
    # Order ids are per account. Without it, the outcome releases the id only
    # when exactly one account holds it.
    account: str | None = None


@dataclass(frozen=True, slots=True)
class ReduceOnlyMode:
    """The operators' reduce-only halt (`POST /v1/halt {"mode": "reduce_only"}`): while `reason`
    is set, every order that opens or grows a position blocks (REDUCE_ONLY_MODE) and reducing
    ones pass; None lifts it. A halt of every order is an ESS source instead."""

    reason: str | None


@dataclass(frozen=True, slots=True)
class Override:
    """An approved emergency override (two operators: `OperatorControls`): lets
    reduce-only orders of `account` through the checks an emergency liquidation
    must pass (ESS and operator halts, Risk v3 stale, CRITICAL, ESS action
    required; loss limits never stop a reduction) for `ttl_s` from when it was
    sent. `ttl_s` 0 ends it. Every use is journaled."""

    account: str
    approved_by: str
    reason: str
    ttl_s: float = 300.0
    override_id: str = ""


@dataclass(frozen=True, slots=True)
class EvaluateOrder:
    """Ask the gate to decide `order`, which `validate_order` returned for the
    gate's config (the facade validates on the caller's thread). `reply`
    (optional) is called with the result on the gate's thread instead of
    answering the ask. Past `deadline` the caller has already been told
    GATE_UNAVAILABLE, so the gate answers the same and reserves nothing."""

    order: OrderRequest
    reply: Callable[[RiskGateResult], None] | None = None
    deadline: float | None = None  # monotonic; an ask answered later books nothing
    sent: float | None = None  # monotonic, when the caller asked (the latency metric counts from it)
    config: Config | None = None  # the config it was validated with: after a reload, validated again


_eo_order, _eo_reply, _eo_deadline, _eo_sent, _eo_config = slot_setters(
    EvaluateOrder, "order", "reply", "deadline", "sent", "config"
)


def evaluate_order_message(
    order: OrderRequest,
    reply: Callable[[RiskGateResult], None] | None,
    deadline: float | None,
    sent: float | None,
    config: Config | None,
) -> EvaluateOrder:
    """`EvaluateOrder(...)` with every field, built without its generated __init__ (one per
    order: a frozen dataclass's __init__ sets each field through object.__setattr__)."""
    m: EvaluateOrder = object.__new__(EvaluateOrder)
    _eo_order(m, order)
    _eo_reply(m, reply)
    _eo_deadline(m, deadline)
    _eo_sent(m, sent)
    _eo_config(m, config)
    return m


@dataclass(frozen=True, slots=True)
class RejectOrder:
    """Ask the gate to answer INVALID_ORDER (with its state: risk level, ESS,
    ages) for an order that failed validation on the caller's thread. It
    carries only what was read there once, never the raw input: a mapping that
    changes between reads must not be read again and judged anew."""

    why: str
    order_id: str
    account: str | None = None
    reply: Callable[[RiskGateResult], None] | None = None
    deadline: float | None = None
    sent: float | None = None


@dataclass(frozen=True, slots=True)
class MessageSent:
    """A cancel or an edit a guarded client sent for `account`: it counts toward
    `gate.max_messages_per_s` (it is never blocked; new orders are)."""

    account: str


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    """A reloaded, validated configuration: the gate and the tracker take it
    up between two messages (restart-only keys are refused before it is sent)."""

    config: Config


@dataclass(frozen=True, slots=True)
class LeaseHeld:
    """A slice of one cap this instance may spend (docs/scale-out.md): `units` (micro-USD)
    granted when the cap's positions were `base_units`, usable until `valid_until`
    (monotonic: counted from when the lease was asked, so it ends here before the
    database gives it back)."""

    units: int
    base_units: int
    valid_until: float


@dataclass(frozen=True, slots=True)
class SharedState:
    """One round with the shared store: the shared halt state was confirmed as of
    `confirmed_at` (monotonic, when the round began) and these leases are held, by
    cap (("exchange", NAME) or ("account", NAME))."""

    confirmed_at: float
    leases: Mapping[tuple[str, str], LeaseHeld]
    config: Config | None = None  # the config the leases were asked under: another one's are not spent


@dataclass(frozen=True, slots=True)
class DecidedElsewhere:
    """Order ids other instances approved since the last round (several instances): each
    blocks here as DUPLICATE_ORDER for gate.duplicate_window_s from when it arrives."""

    orders: tuple[tuple[str, str], ...]  # (account, order id)
