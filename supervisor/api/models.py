"""The JSON the API speaks, as pydantic models: they make the OpenAPI schema at
`/docs` the contract for clients in other languages.

Request bodies are documented with these models but read by riskgate's own
validation (`validate_order`, the upstream parsers): a bad order must come back
as an INVALID_ORDER decision naming the problem, not as a framework's 422.
Answers are likewise made by the code that owns them; the models describe them,
and tests/supervisor/api/test_openapi.py holds each to a real answer's keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BODIES",
    "AccountOut",
    "AccountOverrideOut",
    "AccountStateOut",
    "ActorOut",
    "AlertsOut",
    "BannerOut",
    "CauseOut",
    "ConfigOut",
    "DecisionExplained",
    "DecisionOut",
    "DecisionRow",
    "EssReadingOut",
    "FillIn",
    "GateOut",
    "HaltEntry",
    "HaltIn",
    "HaltOut",
    "JournalEventOut",
    "JournalOut",
    "LockoutClearIn",
    "LockoutClearOut",
    "LockoutOut",
    "MessagesIn",
    "MessagesOut",
    "OrderIn",
    "OutcomeIn",
    "OutcomeOut",
    "OverrideIn",
    "OverrideOut",
    "OverridesOut",
    "PositionIn",
    "PositionOut",
    "PriceOut",
    "Problem",
    "Problems",
    "RatePoint",
    "RatesOut",
    "ReadyOut",
    "ReloadOut",
    "ResumeIn",
    "SeriesMark",
    "SeriesOut",
    "SeriesTotals",
    "ShadowDisagreement",
    "ShadowOut",
    "ShadowPromoteOut",
    "ShadowTransition",
    "SnapshotIn",
    "SourceErrorOut",
    "SourceOut",
    "StateOut",
    "WebhookOut",
]


class OrderIn(BaseModel):
    """An order to decide (the fields of `OrderRequest`)."""

    account: str = Field(max_length=128, description="a configured account")
    exchange: str = Field(max_length=128, description="the account's exchange")
    strategy_id: str = Field(max_length=128)
    symbol: str = Field(max_length=128, examples=["BTCUSDT"])
    side: Literal["buy", "sell"]
    quantity: float = Field(gt=0)
    price: float = Field(gt=0, description="limit price, or the reference price of a market order")
    leverage: float = Field(1.0, ge=1)
    reduce_only: bool = False
    stop_price: float | None = Field(None, gt=0)
    order_id: str | None = Field(None, max_length=128, description="client order id; one is made up when absent")
    reference_price: float | None = Field(
        None, gt=0, description="the market's price, for the collar when no mark is known"
    )


class DecisionOut(BaseModel):
    """The gate's answer (`RiskGateResult`)."""

    decision: Literal["allow", "block", "scale_down"]
    reason: str
    reason_code: str = Field(description="stable code: docs/checks.md")
    scale_factor: float
    adjusted_quantity: float = Field(description="what to send: 0 on block")
    risk_level: Literal["INFO", "WARNING", "CRITICAL", "UNKNOWN"]
    ess_active: bool
    timestamp: str = Field(description="ISO 8601, UTC")
    order_id: str
    state_age_s: dict[str, float | None]


class FillIn(BaseModel):
    account: str
    exchange: str
    symbol: str
    side: Literal["buy", "sell"]
    quantity: float = Field(gt=0)
    price: float = Field(gt=0)
    order_id: str | None = None


class OutcomeIn(BaseModel):
    order_id: str
    status: Literal["open", "partially_filled", "filled", "cancelled", "rejected", "expired", "error"]
    filled_quantity: float = Field(0.0, ge=0)
    account: str | None = None


class MessagesIn(BaseModel):
    account: str
    kind: Literal["cancel", "edit"]
    count: int = Field(1, ge=1, le=1000)


class PositionIn(BaseModel):
    symbol: str
    exchange: str
    quantity: float = Field(description="signed: > 0 long, < 0 short")
    mark_price: float = Field(gt=0)


class SnapshotIn(BaseModel):
    account: str | None = Field(None, description="defaults to the path's name; must match it when given")
    equity: float
    positions: list[PositionIn] = []
    timestamp: str | None = Field(None, description="ISO 8601 with a zone; a future one beyond the skew is refused")


class HaltIn(BaseModel):
    reason: str = Field(description="why: journaled with the operator's name (printable text, at most 500 characters)")
    mode: str = Field(
        "all",
        description='"all" (default): every order blocks; "reduce_only": orders that grow a position block'
        " (REDUCE_ONLY_MODE), reducing ones pass",
    )


class ResumeIn(BaseModel):
    reason: str = Field("resumed", description="why: journaled")


class OverrideIn(BaseModel):
    account: str
    reason: str
    ttl_s: float = Field(description="seconds it lasts once approved, at most overrides.max_ttl_s")


class LockoutClearIn(BaseModel):
    reason: str = Field(description="why: journaled with the operator's name")


class ShadowPromoteIn(BaseModel):
    reason: str = Field(description="why the candidate becomes the live config: journaled with the operator's name")


class HaltEntry(BaseModel):
    by: str
    reason: str
    since: str | None = Field(None, description="ISO 8601, UTC")
    mode: str = Field(description='"all" or "reduce_only"')


class HaltOut(BaseModel):
    active: bool = Field(description="an operator halt holds (of every order, or reduce-only)")
    mode: str | None = Field(None, description='the strictest: "all" or "reduce_only"')
    by: str | None = None
    reason: str | None = None
    since: str | None = None
    halts: list[HaltEntry] = Field([], description="each operator's halt")
    lifted: list[HaltEntry] | None = Field(None, description="resume: the halts it lifted")
    shared_version: int | None = Field(None, description="several instances: the shared halt's version")
    unshared: bool | None = Field(None, description="several instances: made here, not yet in the shared store")


class LockoutOut(BaseModel):
    code: str = Field(description="the reason code orders of the account block with")
    cause: str = Field(description="for people, e.g. daily loss -3.6 % of -3.5 %")
    since: str | None = None
    until: str | None = Field(None, description="when it lifts by itself at the latest; null: by an operator")
    left_s: float | None = None
    lifts: str


class LockoutClearOut(BaseModel):
    account: str
    cleared: bool = Field(description="false while a second operator's confirmation is awaited")
    state: Literal["cleared", "awaiting_second_operator"]
    by: str | None = None
    requested_by: str | None = Field(None, description="awaiting: the operator who asked")
    was_until: str | None = Field(None, description="cleared: when the cooldown would have lifted")
    cooldown_until: str | None = Field(None, description="cleared: the cooldown holding after the clear (null: none)")


class ShadowTransition(BaseModel):
    from_: list[str] = Field(alias="from", description="[decision, reason code] the live config gave")
    to: list[str] = Field(description="[decision, reason code] the shadow config gave")
    count: int


class ShadowDisagreement(BaseModel):
    time: str = Field(description="ISO 8601, UTC: when the live gate decided")
    order_id: str
    account: str
    order: str = Field(description='"buy 0.05 BTCUSDT @65000"')
    notional_usd: float
    live: list[str | float] = Field(description="[decision, reason code, quantity sent]")
    shadow: list[str | float] = Field(description="[decision, reason code, quantity]")
    reason: str = Field(description="the shadow's reason")


class ShadowOut(BaseModel):
    """The shadow config's state (docs/replay.md)."""

    enabled: bool
    candidate: str | None
    candidate_sha256: str | None
    state: Literal["running", "failed", "off"]
    problem: str | None
    decided: int = Field(description="orders decided again under the candidate")
    disagreements: int
    unjournaled: int = Field(description="disagreements counted but not journaled: the live queue had no room to spare")
    journal_seq: int = Field(description="the journal record the shadow has decided up to")
    transitions: list[ShadowTransition] = Field(description="the 20 most frequent")
    latest: list[ShadowDisagreement] = Field(description="the latest 20")


class ShadowPromoteOut(BaseModel):
    promoted: str = Field(description="the candidate file, now the live config")
    sha256: str
    backup: str = Field(description="the live config file as it was, kept beside it")
    changed: list[str]


class OverrideOut(BaseModel):
    """An override's record: proposed by one operator, approved by another, then ended."""

    id: str
    account: str
    reason: str
    ttl_s: float
    proposed_by: str
    proposed_at: str = Field(description="ISO 8601, UTC")
    state: Literal["proposed", "active", "expired", "revoked"]
    approved_by: str | None
    approved_at: str | None
    expires_at: str | None = Field(description="an active one runs out then; a proposal expires unapproved then")
    ended_by: str | None


class PositionOut(BaseModel):
    symbol: str
    exchange: str
    quantity: float = Field(description="signed: > 0 long, < 0 short")
    mark_price: float


class AccountStateOut(BaseModel):
    """The account's state as the tracker holds it after the report (the baselines are its own)."""

    account: str
    equity: float
    day_start_equity: float
    week_start_equity: float
    positions: list[PositionOut]
    problem: str | None
    baseline_unknown: list[str] = Field(description='periods without a baseline: "day", "week"')


class OutcomeOut(BaseModel):
    delivered: bool
    order_id: str
    status: str


class MessagesOut(BaseModel):
    counted: int
    account: str
    kind: Literal["cancel", "edit"]


# -- the journal's decisions -----------------------------------------------------------------
class DecisionRow(BaseModel):
    """One decision as the journal holds it, with the inputs it was decided on."""

    ts_us: int | None = Field(description="microseconds since the epoch")
    time: str | None = Field(description="ISO 8601 (null: a damaged row)")
    order_id: str | None
    account: str | None
    exchange: str | None
    strategy_id: str | None
    symbol: str | None
    side: str | None
    quantity: float | None
    price: float | None
    stop_price: float | None
    leverage: float | None
    reduce_only: bool | None
    decision: str
    reason_code: str
    reason: str | None
    adjusted_quantity: float | None
    scale_factor: float | None
    risk_level: str | None
    signal_ts_us: int | None
    signal_time: str | None
    ess_active: bool
    ess_age_s: float | None
    risk_v3_age_s: float | None
    account_age_s: float | None
    equity: float | None
    day_pnl_pct: float | None
    week_pnl_pct: float | None
    reserved_usd: float | None
    instance: str | None = Field(None, description="several instances: the instance that decided")


class JournalEventOut(BaseModel):
    """A journal event; the event's own fields follow these four."""

    model_config = ConfigDict(extra="allow")
    time: str | None
    kind: str
    source: str | None
    account: str | None


class DecisionExplained(DecisionRow):
    decided_by: str = Field(description="the check that decided, e.g. 17. every check passed")
    events_in_the_minute_before: list[JournalEventOut] = Field(
        description="of its account or of every account, oldest first"
    )


class RatePoint(BaseModel):
    start: str
    end: str
    seconds: float
    per_s: dict[str, float] = Field(description="decisions per second by decision/REASON_CODE")


class RatesOut(BaseModel):
    interval_s: float | None = Field(description="null: [metrics] enabled = false, no counts")
    points: list[RatePoint]


class SeriesMark(BaseModel):
    at: float = Field(description="seconds since the epoch")
    kind: Literal["halt", "reduce_only", "clear", "unknown"]
    text: str


class SeriesTotals(BaseModel):
    """Decisions in the range (empty before the journal has a file)."""

    allow: int = 0
    scale_down: int = 0
    block: int = 0
    blocks_by_code: dict[str, int] = {}


class SeriesOut(BaseModel):
    range: str = Field(description="15m, 1h or 24h")
    bucket_s: int | None = Field(None, description="absent before the journal has a file")
    times: list[float] = Field(description="each bucket's start, seconds since the epoch")
    per_s: dict[str, list[float]] = Field(description="allow, scale_down, block: per second in each bucket")
    blocks_by_code: dict[str, list[float]] = Field(description="the top block codes, and other")
    totals: SeriesTotals
    marks: list[SeriesMark] = Field(description="halts begun and ended")


# -- GET /v1/state ---------------------------------------------------------------------------
class CauseOut(BaseModel):
    source: str
    kind: Literal["fail_closed", "halt"]
    detail: str
    stale_for_s: float | None
    since: str | None


class BannerOut(BaseModel):
    """The one-line verdict: the first cause decides it, `also` lists what would block next."""

    state: Literal["TRADING", "REDUCE-ONLY", "HALTED", "FAIL-CLOSED"]
    causes: list[CauseOut]
    also: list[CauseOut]
    accounts_blocked: list[str]
    accounts_locked: list[str]
    symbols_paused: list[str]
    symbols_unpriced: list[str]


class SourceErrorOut(BaseModel):
    since: str | None
    cause: str
    detail: str


class EssReadingOut(BaseModel):
    source: str
    active: bool | None = Field(description="null: unknown")
    detail: str


class SourceOut(BaseModel):
    """One source's freshness; risk_v3, ess and prices add their own fields."""

    fresh: bool
    age_s: float | None
    max_age_s: float
    last_error: SourceErrorOut | None
    risk_level: str | None = Field(None, description="risk_v3")
    signal_time: str | None = Field(None, description="risk_v3")
    ess_action_required: bool | None = Field(None, description="risk_v3")
    ess_tier_recommendation: str | None = Field(None, description="risk_v3")
    overall_risk_score: float | None = Field(None, description="risk_v3")
    active: bool | None = Field(None, description="ess: null while unknown")
    reason: str | None = Field(None, description="ess")
    active_since: str | None = Field(None, description="ess")
    readings: list[EssReadingOut] | None = Field(None, description="ess: each ESS source's reading")
    per_symbol: bool | None = Field(None, description="prices: a stale one blocks its symbols, not the gate")


class AccountOverrideOut(BaseModel):
    id: str
    s_left: float


class AccountOut(BaseModel):
    """An account against its limits; the figures from `usable` on only once it has state."""

    exchange: str
    capital_profile: str
    has_state: bool
    fresh: bool
    age_s: float | None
    max_daily_loss_pct: float
    max_weekly_loss_pct: float
    max_notional_usd: float | None
    exchange_max_notional_usd: float | None
    max_open_positions: int
    allowed_leverage: float
    blocked_by: str | None = Field(
        description="what blocks its new risk: why its own state fails closed, or the binding lockout's code"
    )
    blocked_kind: Literal["fail_closed", "lockout"] | None = Field(description="which of the two blocked_by is")
    new_risk_allowed: bool = Field(description="false while anything blocks the account's new orders")
    lockouts: list[LockoutOut]
    usable: bool | None = None
    problem: str | None = None
    baseline_unknown: list[str] | None = None
    equity_usd: float | None = None
    day_start_equity_usd: float | None = None
    week_start_equity_usd: float | None = None
    day_pnl_pct: float | None = None
    week_pnl_pct: float | None = None
    gross_exposure_usd: float | None = None
    reserved_usd: float | None = None
    exposure_with_reservations_usd: float | None = None
    open_positions: int | None = None
    override: AccountOverrideOut | None = Field(None, description="an active override")
    decisions_last_minute: dict[str, int] | None = Field(None, description="by reason code ([metrics] enabled)")


class PriceOut(BaseModel):
    price: float | None
    age_s: float | None
    fresh: bool
    paused_until: str | None
    pause: str | None = Field(description="why it is paused after a spike, while it is")


class ConfigOut(BaseModel):
    origin: str
    sha256: str | None


class GateOut(BaseModel):
    alive: bool
    reservations: int | None


class JournalOut(BaseModel):
    enabled: bool
    queued: int
    written: int
    dropped: int
    problem: str | None
    blocking: str | None


class ActorOut(BaseModel):
    actor: str
    alive: bool
    restarts: int
    last_error: str | None
    state_age_s: float | dict[str, float | None] | None
    polls_skipped: int


class WebhookOut(BaseModel):
    name: str
    format: str
    queued: int
    delivered: int
    dropped: int
    failing: bool


class AlertsOut(BaseModel):
    enabled: bool
    firing: list[str] | None = Field(None, description="the alert keys firing")
    webhooks: list[WebhookOut] | None = None


class OverridesOut(BaseModel):
    active: list[OverrideOut]
    proposed: list[OverrideOut]


class StateOut(BaseModel):
    """What the gate knows now: sources, risk level, ESS, accounts, actors, journal, controls."""

    time: str
    banner: BannerOut
    ready: bool
    not_ready: list[str] = Field(description="what keeps it from being ready, as /readyz says")
    config: ConfigOut
    risk_level: str | None
    ess_active: bool | None
    sources: dict[str, SourceOut] = Field(description="risk_v3, ess, prices, store, account:NAME")
    accounts: dict[str, AccountOut]
    prices: dict[str, PriceOut] = Field(description="by symbol, with [prices]")
    gate: GateOut
    journal: JournalOut
    actors: list[ActorOut]
    alerts: AlertsOut
    operator_halt: HaltOut
    store: dict[str, Any] = Field(description='{"backend": "sqlite"}, or the shared store\'s instances and leases')
    overrides: OverridesOut
    shadow: ShadowOut = Field(description="the shadow config (as GET /v1/shadow)")


class ReadyOut(BaseModel):
    ready: bool
    missing: list[str]


class ReloadOut(BaseModel):
    sha256: str
    origin: str
    changed: list[str]


class Problem(BaseModel):
    detail: str


class Problems(BaseModel):
    detail: str
    problems: list[str]


# Which request body each route documents: (path, method) -> model.
BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("/v1/evaluate", "post"): OrderIn,
    ("/v1/fills", "post"): FillIn,
    ("/v1/outcomes", "post"): OutcomeIn,
    ("/v1/messages", "post"): MessagesIn,
    ("/v1/accounts/{name}/snapshot", "post"): SnapshotIn,
    ("/v1/halt", "post"): HaltIn,
    ("/v1/resume", "post"): ResumeIn,
    ("/v1/overrides", "post"): OverrideIn,
    ("/v1/lockouts/{account}/clear", "post"): LockoutClearIn,
    ("/v1/shadow/promote", "post"): ShadowPromoteIn,
}
