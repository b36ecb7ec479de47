"""validate_order's quick reading of a plain dict agrees with the full reading: where
it accepts an order, the full reading makes the same one; everything else it leaves
to the full reading (which names the problem)."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.core.orders import _plain_order, _read_order, validate_order
from tests.helpers import make_config, order

CFG = make_config()

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**310), max_value=10**310),
    st.sampled_from([0.001, 0.01, 0.1, 1, 2, 2.0, 65_000, 65_000.0, 3_500.0, 1e300, 1e301, True, False]),
    st.none(),
    st.text(max_size=4),
)
NAMES = st.one_of(
    st.sampled_from(["main", "binance", "bybit", "trend_v2", "BTCUSDT", "BTC/USDT", "SOLUSDT", "ETHUSDT"]),
    st.sampled_from(["", " main", "main ", "ma\nin", "trend_v2\u0435", "x" * 129, "\ud800"]),
    st.none(),
    st.integers(),
)
VALUES = {
    "account": NAMES,
    "exchange": NAMES,
    "strategy_id": NAMES,
    "symbol": NAMES,
    "side": st.sampled_from(["buy", "sell", "BUY", "Sell", "", None, 1]),
    "quantity": NUMBERS,
    "price": NUMBERS,
    "leverage": NUMBERS,
    "reduce_only": st.sampled_from([None, True, False, 0, 1, "true"]),
    "stop_price": NUMBERS,
    "order_id": st.one_of(NAMES, st.just("c-1")),
    "reference_price": NUMBERS,
}


@st.composite
def orders(draw):
    o = order(symbol=draw(st.sampled_from(["SOLUSDT", "BTCUSDT"])))
    for key in draw(st.sets(st.sampled_from(sorted(VALUES)), max_size=4)):
        o[key] = draw(VALUES[key])
    for key in draw(st.sets(st.sampled_from(sorted(o)), max_size=2)):
        del o[key]
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        o[draw(st.sampled_from(["extra", 1, "Account"]))] = 1
    return o


def _same(a, b, had_id: bool):
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return a == b if had_id else replace(a, order_id=None) == replace(b, order_id=None)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders())
def test_the_quick_reading_agrees_with_the_full_one(raw):
    fast, full = validate_order(dict(raw), CFG), _read_order(dict(raw), CFG)
    assert _same(fast, full, raw.get("order_id") is not None), (raw, fast, full)


def test_the_quick_reading_takes_the_common_orders_and_leaves_the_rest():
    assert _plain_order(order(), CFG) is not None
    assert _plain_order(order(price=100, quantity=1), CFG) is not None  # JSON integers
    for odd in (
        {"side": "BUY"},  # the full reading lower-cases it
        {"symbol": "SOL/USDT"},  # the full reading unifies it
        {"quantity": math.nan},
        {"leverage": True},
        {"reduce_only": 1},
    ):
        assert _plain_order(order(**odd), CFG) is None, odd
    assert validate_order(order(side="BUY"), CFG).side == "buy"  # type: ignore[union-attr]


# Each next to a limit of the full reading: the quick one must agree on every one.
EDGES = [
    {},
    {"quantity": 0.01, "price": 65_000.0},  # below SOLUSDT's min_qty 0.1, notional plenty
    {"quantity": 0.1, "price": 50.0},  # notional 5.0: exactly min_notional
    {"quantity": 0.1, "price": 49.0},  # below min_notional
    {"quantity": 1e12, "price": 1e3},  # above max_plausible_usd
    {"leverage": 0.999},
    {"leverage": 1},
    {"leverage": 1.0},
    {"leverage": math.inf},
    {"quantity": 0},
    {"quantity": -1},
    {"quantity": 10**301},
    {"price": 10**299},
    {"stop_price": 100.0},  # at the price: wrong for a buy
    {"stop_price": 99.0},
    {"side": "sell", "stop_price": 99.0},  # below the price: wrong for a sell
    {"side": "sell", "stop_price": 101.0},
    {"strategy_id": "trend_v2\u0435"},  # a Cyrillic e: not ASCII
    {"account": "ma\ud800in"},
    {"account": "main "},
    {"account": "x" * 128},
    {"account": "x" * 129},
    {"order_id": ""},
    {"order_id": "c-1"},
    {"order_id": "x" * 129},
    {"reference_price": 0},
    {"reference_price": 100},
    {"reduce_only": 0},
    {"reduce_only": True},
    {"symbol": "SOL/USDT"},
    {"symbol": "NOPEUSDT"},
    {"side": "Buy"},
    {"side": None},
]


def test_the_quick_reading_agrees_at_every_edge():
    for edge in EDGES:
        raw = order(**edge)
        fast, full = validate_order(dict(raw), CFG), _read_order(dict(raw), CFG)
        assert _same(fast, full, raw.get("order_id") is not None), (edge, fast, full)


def test_a_key_of_a_str_subclass_is_left_to_the_full_reading():
    """A key whose __eq__ changes its answer must not be read as "price" by one reading only."""

    class Key(str):
        calls = 0

        def __hash__(self):
            return hash("price")

        def __eq__(self, other):
            Key.calls += 1
            return other == "price" and Key.calls <= 2

    raw = order()
    del raw["price"]
    raw[Key("price")] = 100.0
    assert _plain_order(raw, CFG) is None
    assert Key.calls == 0  # not even asked
    assert isinstance(validate_order(raw, CFG), str)
