"""Hostile orders: whatever a caller hands the gate, it never raises and never
allows an invalid order; a value is judged by what it holds, not what it claims.

Beyond tests/supervisor/test_properties.py (malformed plain values): numbers
that are non-finite or astronomically large, numeric and str subclasses that
lie, objects whose dunder methods raise, 100 kB strings, mappings that change
between reads, and objects that are not orders at all.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from supervisor import OrderRequest, RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.core.messages import AccountSnapshot
from supervisor.core.reasons import ReasonCode as RC
from tests.adversarial.hostile import LyingFloat, LyingStr, RaisingBool, ShiftingMapping
from tests.helpers import decide, fresh_state, make_config, order, signal

CFG = make_config()
CLOCK = FakeClock()
PURE = settings(max_examples=450, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THROUGH_ACTORS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

big_numbers = st.one_of(
    st.just(math.nan),
    st.just(math.inf),
    st.just(-math.inf),
    st.just(1e308),
    st.just(-1e308),
    st.integers(min_value=10**20, max_value=10**400),
    st.floats(min_value=1e13, max_value=1e308),
)
huge_strings = st.sampled_from(["X" * 100_000, "BTCUSDT" * 20_000, "\x00" * 1000, "buy" + " " * 100_000])
not_values = st.one_of(
    st.builds(RaisingBool),
    st.builds(object),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.complex_numbers(allow_nan=True),
)
#: For each field, values that make the order invalid whatever else it holds.
INVALID = {
    "account": st.one_of(huge_strings, not_values, st.just("")),
    "exchange": st.one_of(huge_strings, not_values, st.just("")),
    "strategy_id": st.one_of(huge_strings, not_values, st.just("")),
    "symbol": st.one_of(
        huge_strings, not_values, st.just("NOPEUSDT"), st.builds(LyingStr, st.just("NOPE"), st.just("SOLUSDT"))
    ),
    "side": st.one_of(huge_strings, not_values, st.builds(LyingStr, st.just("hold"), st.just("buy"))),
    "quantity": st.one_of(
        big_numbers,
        not_values,
        st.builds(LyingFloat, st.just(math.nan), st.just(1.0)),
        st.builds(LyingFloat, st.just(-1.0), st.just(1.0)),
        st.just(True),
    ),
    "price": st.one_of(
        big_numbers.filter(lambda v: not (isinstance(v, float) and 0 < v < 1e12)),
        not_values,
        st.builds(LyingFloat, st.just(math.inf), st.just(100.0)),
    ),
    "leverage": st.one_of(
        st.just(math.nan), st.just(-math.inf), not_values, st.builds(LyingFloat, st.just(0.5), st.just(1.0))
    ),
    "reduce_only": st.one_of(not_values, st.just("true"), st.just(1)),
    "stop_price": st.one_of(st.just(math.nan), st.just(-1.0), not_values),
    "order_id": st.one_of(huge_strings, st.integers(), st.just("")),
}


@st.composite
def invalid_orders(draw: st.DrawFn) -> Any:
    fields: dict[Any, Any] = order(order_id=f"h-{draw(st.integers(0, 10**9))}")
    for key in draw(st.sets(st.sampled_from(sorted(INVALID)), min_size=1, max_size=3)):
        fields[key] = draw(INVALID[key])
        event(f"invalid field: {key}")
    shape = draw(st.sampled_from(["dict", "shifting", "request", "unknown_key"]))
    event(f"shape: {shape}")
    if shape == "shifting":
        # the first read sees the invalid order; later reads a clean one
        return ShiftingMapping(
            fields, order(order_id=fields["order_id"] if isinstance(fields["order_id"], str) else "s")
        )
    if shape == "request":
        return OrderRequest(**fields)
    if shape == "unknown_key":
        fields[draw(st.sampled_from(["qty", "X" * 10_000, LyingStr("quantity", claims="qty")]))] = 1.0
    return fields


def _assert_blocked(r: Any) -> None:
    assert r.decision == "block" and r.adjusted_quantity == 0.0
    assert r.reason_code in (RC.INVALID_ORDER, RC.UNKNOWN_ACCOUNT, RC.STRATEGY_NOT_ALLOWED), r.reason
    assert len(r.reason) < 300 and len(r.order_id) <= 128


@PURE
@given(invalid_orders())
def test_pure_evaluation_of_a_hostile_order_never_raises_and_never_allows(raw):
    _assert_blocked(decide(raw, fresh_state(CLOCK), CFG, CLOCK))


lying_but_valid = st.builds(
    lambda qty, price, claims_qty, claims_price: order(
        quantity=LyingFloat(qty, claims=claims_qty),
        price=LyingFloat(price, claims=claims_price),
        side=LyingStr("buy", claims="sell"),
    ),
    st.sampled_from([0.1, 1.0, 5.0, 50.0, 500.0]),
    st.sampled_from([50.0, 100.0, 150.0]),
    st.floats(min_value=0.1, max_value=10.0),
    st.floats(min_value=10.0, max_value=1000.0),
)


@PURE
@given(lying_but_valid)
def test_a_lying_order_is_decided_exactly_as_the_plain_order_it_holds(raw):
    plain = {**raw, "quantity": float.__float__(raw["quantity"]), "price": float.__float__(raw["price"]), "side": "buy"}
    lying, honest = decide(raw, fresh_state(CLOCK), CFG, CLOCK), decide(plain, fresh_state(CLOCK), CFG, CLOCK)
    event(f"decision: {honest.decision}")
    assert (lying.decision, lying.reason_code, lying.adjusted_quantity) == (
        honest.decision,
        honest.reason_code,
        honest.adjusted_quantity,
    )
    assert type(lying.adjusted_quantity) is float


not_orders = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.builds(RaisingBool), st.lists(st.none()))


def test_hostile_orders_through_the_actors_never_raise_and_never_allow(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        sup.report_ess_active(False)
        sup.report_risk_signal(signal("INFO", clock.now()))
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))

        @THROUGH_ACTORS
        @given(st.one_of(invalid_orders(), not_orders), st.booleans())
        def check(raw: Any, use_async: bool) -> None:
            r = asyncio.run(sup.evaluate_async(raw)) if use_async else sup.evaluate(raw)
            _assert_blocked(r)

        check()
        assert sup.health()["gate"]["reservations"] == 0
        assert sup.evaluate(order()).decision == "allow"  # and the gate is still well
