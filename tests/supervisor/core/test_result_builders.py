"""The fast builders of the gate's answer make the same objects as the dataclasses' own
__init__, with every field set, and the objects stay frozen."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from supervisor.core.evaluate import Evaluation, evaluation_of, result_of
from supervisor.core.messages import EvaluateOrder, OrderRequest, RiskGateResult, evaluate_order_message
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import make_config

WALL = datetime(2026, 11, 26, tzinfo=UTC)


def test_result_of_equals_the_generated_init_and_sets_every_field():
    ages = {"ess": 0.1, "risk_v3": None, "account": 2.0}
    fast = result_of("scale_down", "why", RC.SINGLE_TRADE_RISK, 0.5, 0.02, "WARNING", False, WALL, "o-1", ages)
    plain = RiskGateResult(
        decision="scale_down",
        reason="why",
        reason_code=RC.SINGLE_TRADE_RISK,
        scale_factor=0.5,
        adjusted_quantity=0.02,
        risk_level="WARNING",
        ess_active=False,
        timestamp=WALL,
        order_id="o-1",
        state_age_s=ages,
    )
    assert fast == plain and repr(fast) == repr(plain) and hash(fast.reason_code) == hash(plain.reason_code)
    assert [f.name for f in dataclasses.fields(RiskGateResult)] == [
        "decision", "reason", "reason_code", "scale_factor", "adjusted_quantity", "risk_level", "ess_active",
        "timestamp", "order_id", "state_age_s",
    ]  # fmt: skip  # a new field must be added to result_of too
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.decision = "allow"  # type: ignore[misc]


def test_evaluation_of_equals_the_generated_init_and_sets_every_field():
    order = OrderRequest("main", "binance", "trend_v2", "BTCUSDT", "buy", 0.01, 65_000.0)
    r = result_of("allow", "ok", RC.ALL_CHECKS_PASSED, 1.0, 0.01, "INFO", False, WALL, "o-1", {})
    assert evaluation_of(r, order, 650.0, True, 0.0) == Evaluation(r, order, 650.0, True, 0.0)
    assert evaluation_of(r, order, 650.0, True, 0.0, True) == Evaluation(r, order, 650.0, True, 0.0, True)
    assert [f.name for f in dataclasses.fields(Evaluation)] == [
        "result", "order", "reserve_notional", "opens_new", "reducing_qty", "unreferenced",
    ]  # fmt: skip
    with pytest.raises(dataclasses.FrozenInstanceError):
        evaluation_of(r, order, 650.0, True, 0.0).opens_new = False  # type: ignore[misc]


def test_evaluate_order_message_equals_the_generated_init_and_sets_every_field():
    order = OrderRequest("main", "binance", "trend_v2", "BTCUSDT", "buy", 0.01, 65_000.0)
    config = make_config()
    fast = evaluate_order_message(order, print, 12.5, 7.5, config)
    assert fast == EvaluateOrder(order, print, 12.5, 7.5, config) and fast.config is config
    assert [f.name for f in dataclasses.fields(EvaluateOrder)] == [
        "order", "reply", "deadline", "sent", "config",
    ]  # fmt: skip  # a new field must be added to evaluate_order_message too
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.deadline = 99.0  # type: ignore[misc]
