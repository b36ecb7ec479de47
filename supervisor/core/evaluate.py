"""One order through every check: a pure function of (order, state, config, time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from supervisor.config import Config
from supervisor.core.checks import (
    CHECKS,
    Check,
    Denial,
    EvalContext,
    Note,
    Scale,
    check_account_fresh,
    check_baseline_known,
    check_daily_loss,
    check_drawdown,
    check_reduction_budget,
    check_shared_state,
    check_weekly_loss,
    floor_to_lot,
)
from supervisor.core.gate_state import GateState
from supervisor.core.messages import Decision, OrderRequest, RiskGateResult, RiskLevel
from supervisor.core.orders import account_of, order_id_of, validate_order
from supervisor.core.reasons import ReasonCode as RC
from supervisor.core.values import slot_setters
from supervisor.core.verdicts import account_passes, market_passes

__all__ = [
    "COMPILED",
    "Evaluation",
    "block_result",
    "decide",
    "decide_every_check",
    "evaluate_order",
    "invalid_order",
]

#: True when this module runs compiled by mypyc (`RISKGATE_COMPILE=1`, see setup.py).
COMPILED: bool = not __file__.endswith(".py")

# What an order runs when the order-independent checks already passed for this
# state (core.verdicts): the same list, in the same order, less those checks.
_MARKET_CHECKS = 6  # checks 0-5 lead the list
_ACCOUNT_STATE_CHECKS = frozenset(
    (check_account_fresh, check_baseline_known, check_daily_loss, check_weekly_loss, check_drawdown)
)
AFTER_MARKET: tuple[Check, ...] = CHECKS[_MARKET_CHECKS:]
ORDER_ONLY: tuple[Check, ...] = tuple(c for c in AFTER_MARKET if c not in _ACCOUNT_STATE_CHECKS)
# One instance (store.backend = "sqlite"): the checks of several instances' shared state and budgets
# return None before they read anything, so the lists run without them (the same answers, sooner).
_SEVERAL_ONLY = frozenset((check_shared_state, check_reduction_budget))
_ONE_INSTANCE: tuple[tuple[Check, ...], ...] = tuple(
    tuple(c for c in checks if c not in _SEVERAL_ONLY) for checks in (CHECKS, AFTER_MARKET, ORDER_ONLY)
)
_SEVERAL_INSTANCES: tuple[tuple[Check, ...], ...] = (CHECKS, AFTER_MARKET, ORDER_ONLY)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A decision plus what the gate must book if it stands."""

    result: RiskGateResult
    order: OrderRequest | None = None
    reserve_notional: float = 0.0
    opens_new: bool = False
    reducing_qty: float = 0.0  # how much of an opposite position it closes
    unreferenced: bool = False  # let through the collar with no reference price at all (the metric)


# Building the answer: a frozen dataclass's generated __init__ sets each field through
# object.__setattr__ (the price of frozen), which made building a result and an
# Evaluation a third of a decision. These set the slots straight through their
# descriptors, all fields given, positionally: the same objects, about twice as fast.
# (tests/supervisor/core/test_result_builders.py compares them with the generated __init__.)
_new = object.__new__
_R = RiskGateResult
_r_decision, _r_reason, _r_code, _r_factor, _r_qty, _r_level, _r_ess, _r_time, _r_oid, _r_ages = slot_setters(
    _R,
    "decision",
    "reason",
    "reason_code",
    "scale_factor",
    "adjusted_quantity",
    "risk_level",
    "ess_active",
    "timestamp",
    "order_id",
    "state_age_s",
)


def result_of(
    decision: Decision,
    reason: str,
    code: RC,
    factor: float,
    quantity: float,
    level: RiskLevel,
    ess_active: bool,
    wall: datetime,
    order_id: str,
    ages: dict[str, float | None],
) -> RiskGateResult:
    """`RiskGateResult(...)` with every field, built without its generated __init__."""
    r: RiskGateResult = _new(_R)
    _r_decision(r, decision)
    _r_reason(r, reason)
    _r_code(r, code)
    _r_factor(r, factor)
    _r_qty(r, quantity)
    _r_level(r, level)
    _r_ess(r, ess_active)
    _r_time(r, wall)
    _r_oid(r, order_id)
    _r_ages(r, ages)
    return r


_E = Evaluation
_e_result, _e_order, _e_reserve, _e_opens, _e_reducing, _e_unref = slot_setters(
    _E, "result", "order", "reserve_notional", "opens_new", "reducing_qty", "unreferenced"
)


def evaluation_of(
    result: RiskGateResult,
    order: OrderRequest | None,
    reserve: float,
    opens_new: bool,
    reducing: float,
    unreferenced: bool = False,
) -> Evaluation:
    """`Evaluation(...)` with every field, built without its generated __init__
    (compiled, Evaluation is a native class whose own __init__ is the fast one)."""
    if COMPILED:
        return Evaluation(result, order, reserve, opens_new, reducing, unreferenced)
    e: Evaluation = _new(_E)
    _e_result(e, result)
    _e_order(e, order)
    _e_reserve(e, reserve)
    _e_opens(e, opens_new)
    _e_reducing(e, reducing)
    _e_unref(e, unreferenced)
    return e


def _risk_level(state: GateState, now: float, config: Config) -> RiskLevel:
    sig = state.signal
    if sig is None or now - state.signal_received > config.risk_v3.max_age_s:
        return "UNKNOWN"
    return sig.risk_level


def _ages(state: GateState, account: str | None, now: float) -> dict[str, float | None]:
    book = state.books.get(account) if account is not None else None
    return {
        "ess": now - state.ess_received if state.ess is not None else None,
        "risk_v3": now - state.signal_received if state.signal is not None else None,
        "account": now - book.received if book is not None else None,
    }


def block_result(
    code: RC,
    reason: str,
    order_id: str,
    wall: datetime,
    *,
    risk_level: RiskLevel = "UNKNOWN",
    ess_active: bool = False,
    ages: dict[str, float | None] | None = None,
) -> RiskGateResult:
    return result_of("block", reason, code, 0.0, 0.0, risk_level, ess_active, wall, order_id, ages or {})


def evaluate_order(raw: Any, state: GateState, config: Config, now: float, wall: datetime) -> Evaluation:
    """Decide one order. Reads `state`, never changes it; never raises for bad input."""
    order = validate_order(raw, config)
    if isinstance(order, str):
        return invalid_order(order, order_id_of(raw), account_of(raw), state, config, now, wall)
    return decide(order, state, config, now, wall)


def invalid_order(
    why: str, order_id: str, account: str | None, state: GateState, config: Config, now: float, wall: datetime
) -> Evaluation:
    """The INVALID_ORDER answer, with the state the gate has."""
    ages = _ages(state, account, now)
    level = _risk_level(state, now, config)
    ess_active = state.ess is not None and state.ess.active is True
    return Evaluation(
        block_result(RC.INVALID_ORDER, why, order_id, wall, risk_level=level, ess_active=ess_active, ages=ages)
    )


def decide(order: OrderRequest, state: GateState, config: Config, now: float, wall: datetime) -> Evaluation:
    """Run checks 1-17 on an order that `validate_order` returned for this config,
    skipping those that already passed for this state and, with one instance, those
    of several instances' shared state (the same answer as `decide_every_check`, sooner)."""
    lists = _SEVERAL_INSTANCES if config.store.backend == "postgresql" else _ONE_INSTANCE
    which = 0
    if market_passes(state, config, now, wall):
        which = 2 if account_passes(order.account, state, config, now) else 1
    return _decide(order, state, config, now, wall, lists[which])


def decide_every_check(order: OrderRequest, state: GateState, config: Config, now: float, wall: datetime) -> Evaluation:
    """`decide` running every check in the list: the reference it must agree with."""
    return _decide(order, state, config, now, wall, CHECKS)


def _decide(
    order: OrderRequest, state: GateState, config: Config, now: float, wall: datetime, checks: tuple[Check, ...]
) -> Evaluation:
    ess_active = state.ess is not None and state.ess.active is True
    level = _risk_level(state, now, config)
    oid = order.order_id or ""  # validate_order always sets one
    ctx = EvalContext(order, state, config, now, wall)
    ages = _ages(state, order.account, now)
    scale: Scale | None = None
    note: Note | None = None
    for check in checks:
        out = check(order, ctx)
        if out is None:
            continue
        if isinstance(out, Denial):
            blocked = result_of("block", out.reason, out.code, 0.0, 0.0, level, ess_active, wall, oid, ages)
            return evaluation_of(blocked, order, 0.0, False, 0.0)
        if isinstance(out, Scale):
            if out.max_quantity >= order.quantity:
                continue  # fits after all: not a scale-down
            if scale is None or out.max_quantity < scale.max_quantity:
                scale = out
        else:
            note = out

    quantity = order.quantity
    decision: Decision
    if scale is None:
        code, reason, decision, factor = RC.ALL_CHECKS_PASSED, "all checks passed", "allow", 1.0
    else:
        sym = ctx.symbol
        quantity = floor_to_lot(min(scale.max_quantity, order.quantity), sym.lot_step)
        if quantity <= 0 or quantity < sym.min_qty or quantity * order.price < sym.min_notional:
            reason = (
                f"{scale.reason}; scaled quantity {quantity} below"
                f" min_qty={sym.min_qty} or min_notional={sym.min_notional}"
            )
            blocked = result_of("block", reason, scale.code, 0.0, 0.0, level, ess_active, wall, oid, ages)
            return evaluation_of(blocked, order, 0.0, False, 0.0)
        code, reason, decision, factor = scale.code, scale.reason, "scale_down", quantity / order.quantity
    if note is not None:
        code, reason = note.code, f"{note.reason}; {reason}"
    return evaluation_of(
        result_of(decision, reason, code, factor, quantity, level, ess_active, wall, oid, ages),
        order,
        ctx.incremental_notional(quantity, ctx.value_price),
        ctx.opens_new() and not ctx.reduces,
        min(quantity, ctx.reducible_qty()),
        ctx.unreferenced,
    )
