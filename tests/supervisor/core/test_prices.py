"""The gate's price reference (supervisor.core.prices) and the checks that read it.

The property the issue asks for: whatever the caller says (order prices, reference
prices, snapshots of its own with marks of its choosing, fills at any price), no order
further than collar_pct from a fresh mark of the prices source is allowed.
"""

from __future__ import annotations

import math
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.clock import FakeClock
from supervisor.core.gate_state import UNITS_PER_USD as USD
from supervisor.core.gate_state import GateState
from supervisor.core.messages import Position, PriceSnapshot
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import account_state, decide, fresh_state, make_config, order

RICH = 1e9
CFG = make_config(
    accounts={"main": {"exchange": "binance", "capital_profile": "aggressive"}},
    prices={"url": "http://127.0.0.1:9", "max_age_s": 5.0, "spike_pct": 10.0, "spike_window_s": 60.0},
)
PCT = CFG.gate.collar_pct
KEY = ("SOLUSDT", "binance")

PRICES = st.floats(min_value=1.0, max_value=1_000.0)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("source"), PRICES, st.none()),
        st.tuples(st.just("snapshot"), PRICES, st.floats(-5.0, 5.0)),
        st.tuples(st.just("fill"), PRICES, st.none()),
        st.tuples(st.just("wait"), st.floats(0.0, 8.0), st.none()),
        st.tuples(st.sampled_from(["buy", "sell"]), PRICES, st.one_of(st.none(), PRICES)),
    ),
    max_size=40,
)


def snap(clock: FakeClock, price: float, age_s: float = 0.0) -> PriceSnapshot:
    return PriceSnapshot(clock.now() - timedelta(seconds=age_s), {"SOLUSDT": price})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
def test_no_caller_supplied_price_gets_an_order_beyond_the_collar_of_a_fresh_mark(steps):
    clock = FakeClock()
    state = fresh_state(clock, account_state(equity=RICH))
    for n, (kind, a, b) in enumerate(steps):
        now = clock.monotonic()
        if kind == "source":
            state.prices.apply(snap(clock, a), now, clock.now(), CFG.prices)
        elif kind == "snapshot":  # the caller's own account snapshot, marks of its choosing
            state.put_account(account_state(equity=RICH, positions=(Position("SOLUSDT", "binance", b or 0.0, a),)), now)
        elif kind == "fill":
            state.record_fill_price(KEY, a, now, CFG.accounts.max_age_s, PCT)
        elif kind == "wait":
            clock.advance(a)
        else:
            fields = {"side": kind, "price": a, "quantity": 0.1, "order_id": f"o{n}"}
            if b is not None:
                fields["reference_price"] = b
            r = decide(order(**fields), state, CFG, clock)
            ref = state.prices.symbols.get("SOLUSDT")
            if r.decision == "block" or ref is None or clock.monotonic() > ref.fresh_until:
                continue
            if kind == "buy":
                assert a <= ref.price * (1 + PCT / 100) * (1 + 1e-12), (steps, r.reason)
            else:
                assert a >= ref.price * (1 - PCT / 100) * (1 - 1e-12), (steps, r.reason)


def ready(clock: FakeClock, *prices: float):
    state = fresh_state(clock, account_state(equity=RICH))
    for price in prices:
        state.prices.apply(snap(clock, price), clock.monotonic(), clock.now(), CFG.prices)
    return state


def test_a_configured_symbol_never_priced_blocks_opening_orders():
    clock = FakeClock()
    cfg = make_config(prices={"url": "http://127.0.0.1:9", "symbols": ["SOLUSDT"]})
    r = decide(order(), fresh_state(clock), cfg, clock)
    assert r.reason_code is RC.PRICE_REFERENCE_STALE and "yet" in r.reason


def test_every_configured_symbol_is_covered_when_prices_symbols_is_empty():
    clock = FakeClock()
    r = decide(order(symbol="BTCUSDT", quantity=0.001, price=65_000.0), fresh_state(clock), CFG, clock)
    assert r.reason_code is RC.PRICE_REFERENCE_STALE and "yet" in r.reason


def test_with_prices_configured_no_reference_at_all_blocks_by_default():
    clock = FakeClock()
    cfg = make_config(prices={"url": "http://127.0.0.1:9", "symbols": ["SOLUSDT"]})  # BTC not covered
    assert cfg.gate.collar_missing_reference == "block"
    btc = order(symbol="BTCUSDT", quantity=0.001, price=65_000.0)
    r = decide(btc, fresh_state(clock), cfg, clock)
    assert r.reason_code is RC.PRICE_OUT_OF_COLLAR and "no reference price" in r.reason
    # The caller's own reference_price is no reference with a prices source (found by a probe).
    r = decide({**btc, "reference_price": 65_000.0}, fresh_state(clock), cfg, clock)
    assert r.reason_code is RC.PRICE_OUT_OF_COLLAR and "no reference price" in r.reason
    # Said explicitly, the operator's word holds.
    cfg = make_config(prices={"url": "http://127.0.0.1:9"}, gate={"collar_missing_reference": "allow"})
    assert cfg.gate.collar_missing_reference == "allow"


def test_a_price_stamped_in_the_future_beyond_the_skew_is_not_taken():
    clock = FakeClock()
    state = ready(clock)
    why, _ = state.prices.apply(snap(clock, 150.0, age_s=-60.0), clock.monotonic(), clock.now(), CFG.prices)
    assert "ahead" in why and "SOLUSDT" not in state.prices.symbols


def test_an_older_snapshot_never_replaces_a_newer_one():
    clock = FakeClock()
    state = ready(clock, 150.0)
    why, _ = state.prices.apply(snap(clock, 10.0, age_s=1.0), clock.monotonic(), clock.now(), CFG.prices)
    assert why and state.prices.symbols["SOLUSDT"].price == 150.0


def test_freshness_counts_from_the_sources_stamp_not_from_arrival():
    clock = FakeClock()
    state = ready(clock)
    state.prices.apply(snap(clock, 150.0, age_s=4.0), clock.monotonic(), clock.now(), CFG.prices)
    clock.advance(1.5)  # 5.5 s after the source priced it: stale, though it arrived 1.5 s ago
    r = decide(order(price=150.0), state, CFG, clock)
    assert r.reason_code is RC.PRICE_REFERENCE_STALE, r.reason


def test_a_dropped_price_unprices_its_symbol_at_once():
    clock = FakeClock()
    state = ready(clock, 150.0)
    drop = PriceSnapshot(clock.now(), {}, ("SOLUSDT",))
    state.prices.apply(drop, clock.monotonic(), clock.now(), CFG.prices)
    assert decide(order(price=150.0), state, CFG, clock).reason_code is RC.PRICE_REFERENCE_STALE


def test_a_spike_pauses_then_the_window_starts_again_from_the_new_level():
    clock = FakeClock()
    cfg = make_config(
        accounts={"main": {"exchange": "binance", "capital_profile": "aggressive"}},
        prices={"url": "http://127.0.0.1:9", "spike_pct": 10.0, "spike_window_s": 60.0, "spike_pause_s": 5.0},
    )
    state = fresh_state(clock, account_state(equity=RICH))
    state.prices.apply(snap(clock, 100.0), clock.monotonic(), clock.now(), cfg.prices)
    clock.advance(1.0)
    _, spikes = state.prices.apply(snap(clock, 89.0), clock.monotonic(), clock.now(), cfg.prices)
    assert [s.symbol for s in spikes] == ["SOLUSDT"] and math.isclose(spikes[0].move_pct, -11.0)
    r = decide(order(price=89.0), state, cfg, clock)
    assert r.reason_code is RC.PRICE_SPIKE_PAUSE and "-11.0%" in r.reason
    clock.advance(5.0)
    _, spikes = state.prices.apply(snap(clock, 90.0), clock.monotonic(), clock.now(), cfg.prices)
    assert spikes == []  # 89 -> 90 within the window: the move counts from the level after the spike
    state.ess_received = state.signal_received = clock.monotonic()
    r = decide(order(price=90.0), state, cfg, clock)
    assert r.decision == "allow", r.reason


def test_no_spike_pause_when_spike_pct_is_switched_off():
    clock = FakeClock()
    cfg = make_config(prices={"url": "http://127.0.0.1:9", "spike_pct": 1000.0})
    state = fresh_state(clock, account_state(equity=RICH))
    for price in (100.0, 150.0):
        state.prices.apply(snap(clock, price), clock.monotonic(), clock.now(), cfg.prices)
        clock.advance(1.0)
    assert decide(order(price=150.0), state, cfg, clock).reason_code is not RC.PRICE_SPIKE_PAUSE


CAPPED = make_config(
    accounts={"main": {"exchange": "binance", "capital_profile": "aggressive", "max_notional_usd": 2_000.0}},
    prices={"url": "http://127.0.0.1:9", "symbols": ["BTCUSDT"]},  # SOL: covered once priced
)


def test_open_exposure_is_valued_at_the_fresh_mark_between_snapshots():
    clock = FakeClock()
    state = fresh_state(clock, account_state(equity=RICH, positions=(Position("SOLUSDT", "binance", 10.0, 100.0),)))
    book = state.books["main"]
    assert state.book_units_at_mark(book, clock.monotonic()) == 1_000 * USD
    r = decide(order(price=105.0, quantity=4.0, order_id="before"), state, CAPPED, clock)
    assert r.decision == "allow", r.reason  # valued at the snapshot's 100: 1,000 + 420 < 2,000
    state.prices.apply(snap(clock, 150.0), clock.monotonic(), clock.now(), CAPPED.prices)
    state.revalue(["binance"], clock.monotonic())
    now = clock.monotonic()
    assert state.book_units_at_mark(book, now) == 1_500 * USD
    assert state.exchange_units_at_mark("binance", now) == 1_500 * USD
    # 4 more at a limit of 140 (a buy below the market) add 4 x 150 at the mark: beyond the cap.
    r = decide(order(price=140.0, quantity=4.0), state, CAPPED, clock)
    assert r.decision == "scale_down" and r.reason_code is RC.ACCOUNT_EXPOSURE_LIMIT, r.reason
    assert r.adjusted_quantity == 3.3  # (2,000 - 1,500) / 150, to the lot
    # A new snapshot with the old mark does not hide the market's: the higher of the two counts.
    state.put_account(account_state(equity=RICH, positions=(Position("SOLUSDT", "binance", 10.0, 100.0),)), now)
    book = state.books["main"]
    assert state.book_units_at_mark(book, now) == 1_500 * USD
    assert state.exchange_units_at_mark("binance", now) == 1_500 * USD
    # A mark below the snapshot's never lowers it.
    clock.advance(1.0)
    state.prices.apply(snap(clock, 90.0), clock.monotonic(), clock.now(), CAPPED.prices)
    state.revalue(["binance"], clock.monotonic())
    assert state.exchange_units_at_mark("binance", clock.monotonic()) == 1_000 * USD
    # The mark goes stale: exposure falls back to the snapshot's mark.
    state.prices.apply(snap(clock, 150.0), clock.monotonic(), clock.now(), CAPPED.prices)
    state.revalue(["binance"], clock.monotonic())
    clock.advance(CAPPED.prices.max_age_s + 1)
    now = clock.monotonic()
    assert state.book_units_at_mark(state.books["main"], now) == 1_000 * USD
    assert state.exchange_units_at_mark("binance", now) == 1_000 * USD


def test_valuation_at_the_mark_is_one_sum_per_symbol_not_one_per_account():
    """10,000 accounts hold the symbol: a price moves their exchange's valuation at once and the
    one account asked about, not every book (a first version revalued all: 40 ms per price)."""
    clock = FakeClock()
    state = GateState()
    for i in range(1_000):
        held = (Position("SOLUSDT", "binance", 1.0, 100.0), Position("BTCUSDT", "bybit", -0.1, 60_000.0))
        state.put_account(account_state(f"a{i}", equity=RICH, positions=held), clock.monotonic())
    prices = PriceSnapshot(clock.now(), {"SOLUSDT": 110.0, "BTCUSDT": 66_000.0})
    state.prices.apply(prices, clock.monotonic(), clock.now(), CFG.prices)
    state.revalue(["binance", "bybit"], clock.monotonic())
    now = clock.monotonic()
    assert state.exchange_units_at_mark("binance", now) == 110_000 * USD
    assert state.exchange_units_at_mark("bybit", now) == 6_600_000 * USD
    assert state.book_units_at_mark(state.books["a7"], now) == (110 + 6_600) * USD
    state.put_account(account_state("a7", equity=RICH), now)  # a7 closes everything
    assert state.exchange_units_at_mark("binance", now) == 109_890 * USD
    assert state.exchange_units_at_mark("bybit", now) == 6_593_400 * USD


def test_a_market_orders_notional_uses_the_mark_not_the_callers_price():
    clock = FakeClock()
    cfg = make_config(
        accounts={"main": {"exchange": "binance", "capital_profile": "aggressive", "max_notional_usd": 1_000.0}},
        prices={"url": "http://127.0.0.1:9"},
        gate={"collar_pct": 50.0},
    )
    state = fresh_state(clock, account_state(equity=RICH))
    state.prices.apply(snap(clock, 150.0), clock.monotonic(), clock.now(), cfg.prices)
    # A buy priced 100 (the caller's guess) of 8 SOL: 800 at its price, 1,200 at the mark.
    r = decide(order(price=100.0, quantity=8.0), state, cfg, clock)
    assert r.decision == "scale_down" and r.reason_code is RC.ACCOUNT_EXPOSURE_LIMIT, r.reason
    assert r.adjusted_quantity == 6.6  # 1,000 / 150, to the lot


def test_a_move_of_exactly_spike_pct_is_no_spike_and_an_ancient_price_is_not_taken():
    clock = FakeClock()
    state = ready(clock, 100.0)
    clock.advance(1.0)
    _, spikes = state.prices.apply(snap(clock, 110.00000000000001), clock.monotonic(), clock.now(), CFG.prices)
    assert spikes == []
    ancient = PriceSnapshot(clock.now().replace(year=1), {"SOLUSDT": 1.0})
    why, spikes = state.prices.apply(ancient, clock.monotonic(), clock.now(), CFG.prices)
    assert "ago" in why and spikes == [] and state.prices.symbols["SOLUSDT"].price == 110.00000000000001
