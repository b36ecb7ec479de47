"""The JSON the API speaks, as pydantic models: they make the OpenAPI schema at
`/docs` the contract for clients in other languages.

Request bodies are documented with these models but read by riskgate's own
validation (`validate_order`, the upstream parsers): a bad order must come back
as an INVALID_ORDER decision naming the problem, not as a framework's 422.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "BODIES",
    "DecisionOut",
    "FillIn",
    "HaltEntry",
    "HaltIn",
    "HaltOut",
    "LockoutClearIn",
    "LockoutClearOut",
    "LockoutOut",
    "MessagesIn",
    "OrderIn",
    "OutcomeIn",
    "OverrideIn",
    "PositionIn",
    "Problem",
    "Problems",
    "ReadyOut",
    "ReloadOut",
    "ResumeIn",
    "SnapshotIn",
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


class LockoutOut(BaseModel):
    code: str = Field(description="the reason code orders of the account block with")
    cause: str = Field(description="for people, e.g. daily loss -3.6 % of -3.5 %")
    since: str | None = None
    until: str | None = Field(None, description="when it lifts by itself at the latest; null: by an operator")
    left_s: float | None = None
    lifts: str


class LockoutClearOut(BaseModel):
    account: str
    state: str = Field(description='"cleared", or "awaiting_second_operator"')
    by: str | None = None
    was_until: str | None = None


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
