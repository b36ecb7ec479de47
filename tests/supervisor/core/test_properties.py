"""Properties of the pure evaluation, over generated orders and states."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from supervisor.clock import FakeClock
from supervisor.core.messages import Position
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import account_state, decide, ess, fresh_state, make_config, order

CFG = make_config(
    accounts={"main": {"exchange": "binance", "capital_profile": "aggressive", "max_notional_usd": 50_000.0}}
)
CLOCK = FakeClock()
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
BAD_VALUES = {
    "account": st.one_of(st.just(""), st.integers(), st.none()),
    "exchange": st.one_of(st.just(""), st.floats()),
    "strategy_id": st.one_of(st.just(""), st.booleans()),
    "symbol": st.one_of(st.just("NOPEUSDT"), st.integers()),
    "side": st.one_of(st.text(max_size=5).filter(lambda s: s.lower() not in ("buy", "sell")), st.none()),
    "quantity": st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf), st.text(max_size=3)),
    "price": st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(-math.inf), st.lists(st.integers())),
    "leverage": st.one_of(st.floats(max_value=0.999), st.just(math.nan), st.text(min_size=1, max_size=3)),
    "reduce_only": st.one_of(st.integers(), st.text(max_size=3)),
    "stop_price": st.one_of(st.floats(max_value=0.0), st.just(math.inf), st.text(max_size=3)),
}


@st.composite
def malformed_orders(draw):
    o = order()
    corrupt = draw(st.sets(st.sampled_from(sorted(BAD_VALUES)), min_size=1, max_size=4))
    for key in corrupt:
        o[key] = draw(BAD_VALUES[key])
    if draw(st.booleans()):
        o[draw(st.text(min_size=1, max_size=6).filter(lambda k: k not in o))] = draw(junk)
    return o


@SETTINGS
@given(malformed_orders())
def test_malformed_order_never_raises_and_never_allows(raw):
    r = decide(raw, fresh_state(CLOCK), CFG, CLOCK)
    assert r.decision == "block" and r.adjusted_quantity == 0.0


@SETTINGS
@given(st.one_of(st.dictionaries(st.text(max_size=12), junk, max_size=12), junk))
def test_arbitrary_input_never_raises_and_blocks(raw):
    r = decide(raw, fresh_state(CLOCK), CFG, CLOCK)
    assert r.decision == "block" and r.reason_code is RC.INVALID_ORDER


BOOLS = st.booleans()
LEVERAGES = st.floats(min_value=1.0, max_value=10.0)
DAY_MOVES = st.floats(min_value=0.9, max_value=1.1)
WEEK_MOVES = st.floats(min_value=0.85, max_value=1.15)


def _orders(reduce_only=BOOLS, leverage=LEVERAGES):
    return st.builds(
        lambda side, qty, price, lev, reduce, stop_off: order(
            side=side,
            quantity=qty,
            price=price,
            leverage=lev,
            reduce_only=reduce,
            stop_price=None if stop_off is None else price * (1 - stop_off),
        ),
        st.sampled_from(["buy", "sell", "BUY", "Sell"]),
        st.floats(min_value=0.1, max_value=1_000.0),
        st.floats(min_value=50.0, max_value=500.0),
        leverage,
        reduce_only,
        st.one_of(st.none(), st.floats(min_value=0.001, max_value=0.5)),
    )


def _accounts(day=DAY_MOVES, week=WEEK_MOVES):
    return st.builds(
        lambda equity, pos, day, week: account_state(
            equity=equity,
            positions=(Position("SOLUSDT", "binance", pos, 100.0),) if pos else (),
            day_start=equity * day,
            week_start=equity * week,
        ),
        st.floats(min_value=100.0, max_value=5_000_000.0),
        st.one_of(st.just(0.0), st.floats(min_value=-300.0, max_value=300.0)),
        day,
        week,
    )


valid_orders = _orders()
accounts = _accounts()
# Orders and accounts that pass every check up to the size checks.
sizable_orders = _orders(reduce_only=st.just(False), leverage=st.floats(min_value=1.0, max_value=5.0))
sizable_accounts = _accounts(day=st.just(1.0), week=st.just(1.0))


@SETTINGS
@given(valid_orders, accounts, st.sampled_from(["INFO", "WARNING", "CRITICAL"]), st.booleans())
def test_while_ess_active_nothing_is_allowed(o, acct, level, action):
    state = fresh_state(CLOCK, acct, level=level, ess_action_required=action)
    state.ess = ess(True)
    r = decide(o, state, CFG, CLOCK)
    assert r.decision == "block" and r.adjusted_quantity == 0.0


@SETTINGS
@given(sizable_orders, sizable_accounts)
def test_scaled_order_reevaluated_in_same_state_is_not_scaled_again(o, acct):
    # Size-driven scale-downs fit the order to a limit; re-asking with the fitted
    # quantity passes. (WARNING's factor is a per-order policy and would apply again.)
    state = fresh_state(CLOCK, acct)
    first = decide(o, state, CFG, CLOCK)
    assume(first.decision == "scale_down")
    again = decide({**o, "quantity": first.adjusted_quantity}, state, CFG, CLOCK)
    assert again.decision == "allow", (first, again)
    assert again.adjusted_quantity == first.adjusted_quantity


SIZE_CODES = {RC.SINGLE_TRADE_RISK, RC.ACCOUNT_EXPOSURE_LIMIT, RC.EXCHANGE_EXPOSURE_LIMIT, RC.MAX_OPEN_POSITIONS}
RANK = {"allow": 2, "scale_down": 1, "block": 0}


@SETTINGS
@given(sizable_orders, sizable_accounts, st.floats(min_value=1.0, max_value=50.0), st.sampled_from(["INFO", "WARNING"]))
def test_larger_quantity_is_never_better_treated(o, acct, growth, level):
    state = fresh_state(CLOCK, acct, level=level)
    small = decide(o, state, CFG, CLOCK)
    large = decide({**o, "quantity": o["quantity"] * growth}, state, CFG, CLOCK)
    if small.reason_code in SIZE_CODES:
        # what a limit did to the smaller order, it does at least as hard to the larger
        assert RANK[large.decision] <= RANK[small.decision], (small, large)
