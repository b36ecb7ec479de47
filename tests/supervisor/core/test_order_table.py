"""One table describes an order's fields (supervisor.core.orders.ORDER_TABLE) and one
reader reads every order through it. It agrees with the two readers it replaced (the
full one kept as an oracle in order_oracle.py): the same order where one is valid,
a refusal where not, with the same reason wherever the order has one fault."""

from __future__ import annotations

import math
from dataclasses import replace
from types import MappingProxyType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.core.messages import OrderRequest
from supervisor.core.orders import ORDER_FIELDS, ORDER_TABLE, validate_order
from tests.helpers import make_config, order
from tests.supervisor.core.order_oracle import read_order

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


def _same(a, b, had_id: bool, exact_reason: bool = True):
    if isinstance(a, str) or isinstance(b, str):
        return a == b if exact_reason else isinstance(a, str) and isinstance(b, str)
    return a == b if had_id else replace(a, order_id=None) == replace(b, order_id=None)


def _one_fault_reason(reason: object) -> bool:
    """Reasons the old reader gave before reading any field (so never a second fault's)."""
    return isinstance(reason, str) and reason.startswith(("missing field", "unknown field", "order must be"))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders())
def test_the_table_reader_agrees_with_the_old_full_reader(raw):
    new, old = validate_order(dict(raw), CFG), read_order(dict(raw), CFG)
    # With several faults the first in table order is named; the old reader checked the
    # stop against the price before reading the order id and the reference.
    assert _same(new, old, raw.get("order_id") is not None, exact_reason=_one_fault_reason(old)), (raw, new, old)


@settings(max_examples=300, deadline=None)
@given(orders())
def test_a_dict_a_read_only_mapping_and_an_order_are_read_alike(raw):
    as_dict = validate_order(dict(raw), CFG)
    assert _same(validate_order(MappingProxyType(dict(raw)), CFG), as_dict, raw.get("order_id") is not None)
    if isinstance(as_dict, OrderRequest):
        assert validate_order(as_dict, CFG) == as_dict


def test_the_table_names_every_field_of_an_order_once_with_its_default():
    names = [name for name, _, _ in ORDER_TABLE]
    assert sorted(names) == sorted(OrderRequest.__dataclass_fields__) and len(set(names)) == len(names)
    assert frozenset(names) == ORDER_FIELDS
    for name, _, default in ORDER_TABLE:
        field = OrderRequest.__dataclass_fields__[name]
        if field.default is not field.default_factory:  # has a default: the table's is the message's
            assert default == field.default, name


def test_common_orders_are_read_and_odd_ones_normalised():
    assert isinstance(validate_order(order(), CFG), OrderRequest)
    assert validate_order(order(price=100, quantity=1), CFG).price == 100.0  # type: ignore[union-attr] - JSON integers
    assert validate_order(order(side="BUY"), CFG).side == "buy"  # type: ignore[union-attr]
    assert validate_order(order(symbol="SOL/USDT"), CFG).symbol == "SOLUSDT"  # type: ignore[union-attr]
    for odd in ({"quantity": math.nan}, {"leverage": True}, {"reduce_only": 1}):
        assert isinstance(validate_order(order(**odd), CFG), str), odd


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


def test_the_table_reader_agrees_at_every_edge_to_the_reason():
    for edge in EDGES:
        raw = order(**edge)
        new, old = validate_order(dict(raw), CFG), read_order(dict(raw), CFG)
        assert _same(new, old, raw.get("order_id") is not None), (edge, new, old)


def test_a_key_of_a_str_subclass_is_an_unknown_field_and_never_asked():
    """A key whose __eq__ changes its answer must not be read as "price" at all."""

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
    reason = validate_order(raw, CFG)
    assert isinstance(reason, str) and reason.startswith("unknown field(s)")
    assert Key.calls == 0  # not even asked
