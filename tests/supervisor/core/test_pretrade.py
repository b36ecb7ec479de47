"""Pre-trade controls: price collar, order size caps, duplicates, risk-scored sizing, unified symbols.

Each at its boundaries (just inside, at, just outside), in the order of the check list, with
properties: a smaller deviation or size is never treated worse; duplicates never block a first.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor import RiskSupervisor
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import Position, account_state, decide, fresh_state, make_config, order

CFG = make_config(
    gate={"collar_pct": 10.0, "duplicate_window_s": 60.0, "max_repeats": 3},
    symbols={"SOLUSDT": {"lot_step": 0.1, "min_qty": 0.1, "min_notional": 5.0, "max_qty": 50.0}},
)
MARKED = (Position("SOLUSDT", "binance", 1.0, 100.0),)  # a position marks SOL at 100


def rich(clock, positions=MARKED):
    return fresh_state(clock, account_state(equity=10_000_000.0, positions=positions))


# -- price collar ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "price", "code"),
    [
        ("buy", 109.99, RC.ALL_CHECKS_PASSED),
        ("buy", 110.0, RC.ALL_CHECKS_PASSED),  # at the collar: inside
        ("buy", 110.01, RC.PRICE_OUT_OF_COLLAR),
        ("buy", 50.0, RC.ALL_CHECKS_PASSED),  # a buy far below is passive, not a fat finger
        ("sell", 90.01, RC.ALL_CHECKS_PASSED),
        ("sell", 90.0, RC.ALL_CHECKS_PASSED),
        ("sell", 89.99, RC.PRICE_OUT_OF_COLLAR),
        ("sell", 500.0, RC.ALL_CHECKS_PASSED),
    ],
)
def test_collar_boundaries_around_the_accounts_mark(clock, side, price, code):
    assert decide(order(side=side, price=price, quantity=0.1), rich(clock), CFG, clock).reason_code is code


def test_the_collar_reference_is_the_mark_then_the_orders_reference_then_the_last_fill(clock):
    st = rich(clock, positions=())
    # No mark: the order's own reference price.
    assert decide(order(price=120.0, reference_price=100.0, quantity=0.1), st, CFG, clock).reason_code is (
        RC.PRICE_OUT_OF_COLLAR
    )
    assert decide(order(price=105.0, reference_price=100.0, quantity=0.1), st, CFG, clock).decision == "allow"
    # Neither: the last fill's price.
    st.last_price[("SOLUSDT", "binance")] = (100.0, clock.monotonic())
    assert decide(order(price=120.0, quantity=0.1), st, CFG, clock).reason_code is RC.PRICE_OUT_OF_COLLAR
    # The mark wins over a reference the caller got wrong.
    st2 = rich(clock)
    assert decide(order(price=120.0, reference_price=119.0, quantity=0.1), st2, CFG, clock).reason_code is (
        RC.PRICE_OUT_OF_COLLAR
    )


def test_no_reference_at_all_follows_the_policy(clock):
    st = rich(clock, positions=())
    assert decide(order(price=1_000.0, quantity=0.1), st, CFG, clock).decision == "allow"  # default: allow
    strict = make_config(gate={"collar_missing_reference": "block"})
    assert decide(order(price=100.0, quantity=0.1), st, strict, clock).reason_code is RC.PRICE_OUT_OF_COLLAR
    per_symbol = make_config(
        symbols={"SOLUSDT": {"lot_step": 0.1, "min_qty": 0.1, "collar_missing_reference": "block", "collar_pct": 1.0}}
    )
    assert decide(order(price=100.0, quantity=0.1), st, per_symbol, clock).reason_code is RC.PRICE_OUT_OF_COLLAR
    st.last_price[("SOLUSDT", "binance")] = (100.0, clock.monotonic())
    assert decide(order(price=101.0, quantity=0.1), st, per_symbol, clock).decision == "allow"
    assert decide(order(price=101.01, quantity=0.1), st, per_symbol, clock).reason_code is RC.PRICE_OUT_OF_COLLAR


def test_the_new_users_fat_fingers_are_blocked(clock):
    # A buy of 0.01 BTC priced at 650,000 and at 6,500 with BTC marked at 65,000; and 1e9 BTC.
    cfg = make_config(
        symbols={"BTCUSDT": {"lot_step": 0.001, "min_qty": 0.001, "min_notional": 5.0, "max_qty": 10.0}},
    )
    st = rich(clock, positions=(Position("BTCUSDT", "binance", 0.1, 65_000.0),))
    assert decide(order(symbol="BTCUSDT", price=650_000.0, quantity=0.01), st, cfg, clock).reason_code is (
        RC.PRICE_OUT_OF_COLLAR
    )
    low_sell = order(symbol="BTCUSDT", side="sell", price=6_500.0, quantity=0.01)
    assert decide(low_sell, st, cfg, clock).reason_code is RC.PRICE_OUT_OF_COLLAR
    huge = order(symbol="BTCUSDT", price=65_000.0, quantity=1e9)
    assert decide(huge, st, cfg, clock).reason_code in (RC.INVALID_ORDER, RC.MAX_ORDER_QUANTITY)  # never scaled
    big = order(symbol="BTCUSDT", price=65_000.0, quantity=10.001)
    assert decide(big, st, cfg, clock).reason_code is RC.MAX_ORDER_QUANTITY


# -- size caps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "code"),
    [(49.9, RC.ALL_CHECKS_PASSED), (50.0, RC.ALL_CHECKS_PASSED), (50.1, RC.MAX_ORDER_QUANTITY)],
)
def test_max_qty_boundaries(clock, quantity, code):
    assert decide(order(quantity=quantity), rich(clock), CFG, clock).reason_code is code


@pytest.mark.parametrize(
    ("quantity", "code"),
    [(9_999.9, RC.ALL_CHECKS_PASSED), (10_000.0, RC.ALL_CHECKS_PASSED), (10_000.1, RC.MAX_ORDER_NOTIONAL)],
)
def test_max_order_notional_boundaries(clock, quantity, code):
    # profile normal: max_order_notional_usd 1,000,000 = 10,000 SOL at 100 (no max_qty on SOL here)
    result = decide(order(quantity=quantity), rich(clock), make_config(), clock)
    assert result.reason_code is code or (code is RC.ALL_CHECKS_PASSED and result.decision != "block")


def test_size_caps_come_before_scaling(clock):
    # Far above every cap: a fat finger to stop, not an order to shrink (even under WARNING).
    st = fresh_state(clock, account_state(equity=10_000.0, positions=MARKED), level="WARNING")
    result = decide(order(quantity=1_000.0), st, CFG, clock)
    assert (result.decision, result.reason_code) == ("block", RC.MAX_ORDER_QUANTITY)


@settings(max_examples=60, deadline=None)
@given(
    quantity=st.floats(min_value=0.1, max_value=200.0),
    smaller=st.floats(min_value=0.0, max_value=1.0),
    price=st.floats(min_value=50.0, max_value=200.0),
    side=st.sampled_from(["buy", "sell"]),
)
def test_a_smaller_size_or_deviation_is_never_treated_worse(quantity, smaller, price, side):
    from supervisor.clock import FakeClock

    clock = FakeClock()
    sizes = {RC.MAX_ORDER_QUANTITY, RC.MAX_ORDER_NOTIONAL}
    qty = round(quantity, 1)
    first = decide(order(side=side, price=price, quantity=qty), rich(clock), CFG, clock).reason_code
    # Closer to the mark (100): if that is outside the collar, so is the original (or a size cap stops it first).
    closer = decide(order(side=side, price=100.0 + (price - 100.0) * smaller, quantity=qty), rich(clock), CFG, clock)
    if closer.reason_code is RC.PRICE_OUT_OF_COLLAR:
        assert first in sizes | {RC.PRICE_OUT_OF_COLLAR}
    # Smaller: if that is above a size cap, so is the original (size caps come first).
    less = decide(order(side=side, price=price, quantity=max(0.1, round(qty * smaller, 1))), rich(clock), CFG, clock)
    if less.reason_code in sizes:
        assert first in sizes


# -- duplicates ----------------------------------------------------------------------------------


def test_an_order_id_decided_within_the_window_blocks_and_is_free_after(clock):
    st = rich(clock)
    first = decide(order(order_id="c-1", quantity=0.1), st, CFG, clock)
    assert first.decision == "allow"
    st.record_decided(_valid(order(order_id="c-1", quantity=0.1)), clock.monotonic(), 60.0)
    clock.advance(59.9)
    assert decide(order(order_id="c-1", quantity=0.2), rich_like(st, clock), CFG, clock).reason_code is (
        RC.DUPLICATE_ORDER
    )
    clock.advance(0.2)
    assert decide(order(order_id="c-1", quantity=0.2), rich_like(st, clock), CFG, clock).decision == "allow"


def rich_like(st, clock):
    fresh = rich(clock)
    fresh.decided, fresh._decided_order, fresh.repeats = st.decided, st._decided_order, st.repeats
    return fresh


def _valid(raw):
    from supervisor.core.orders import validate_order

    out = validate_order(raw, CFG)
    assert not isinstance(out, str), out
    return out


def test_the_same_terms_repeated_past_max_repeats_block_and_never_the_first(clock):
    st = rich(clock)
    for i in range(3):  # max_repeats 3: three pass
        raw = order(quantity=0.1, order_id=f"r-{i}")
        assert decide(raw, st, CFG, clock).decision == "allow", i
        st.record_decided(_valid(raw), clock.monotonic(), 60.0)
        clock.advance(1.0)
        st = rich_like(st, clock)
    assert decide(order(quantity=0.1, order_id="r-3"), st, CFG, clock).reason_code is RC.DUPLICATE_ORDER
    assert decide(order(quantity=0.2, order_id="r-4"), st, CFG, clock).decision == "allow"  # other terms
    clock.advance(60.0)
    assert decide(order(quantity=0.1, order_id="r-5"), rich_like(st, clock), CFG, clock).decision == "allow"


@settings(max_examples=40, deadline=None)
@given(ids=st.lists(st.text(alphabet="abc", min_size=1, max_size=3), min_size=1, max_size=12))
def test_duplicates_never_block_a_first_occurrence(ids):
    from supervisor.clock import FakeClock

    clock = FakeClock()
    st_ = rich(clock)
    seen: set[str] = set()
    for n, oid in enumerate(ids):
        raw = order(quantity=round(0.1 * (n + 1), 1), order_id=oid)  # distinct terms: only ids can repeat
        result = decide(raw, st_, CFG, clock)
        if oid not in seen:
            assert result.reason_code is not RC.DUPLICATE_ORDER
        else:
            assert result.reason_code is RC.DUPLICATE_ORDER
        st_.record_decided(_valid(raw), clock.monotonic(), 60.0)
        seen.add(oid)


def test_duplicates_through_the_facade_and_across_a_gate_restart(clock):
    cfg = make_config(gate={"duplicate_window_s": 60.0, "max_repeats": 100})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        from tests.supervisor.test_facade import feed

        feed(sup)
        assert sup.evaluate(order(order_id="x-1", quantity=0.1)).decision == "allow"
        sup.report_order_outcome(_outcome("x-1"))
        assert sup.evaluate(order(order_id="x-1", quantity=0.1)).reason_code is RC.DUPLICATE_ORDER  # a replay
        sup.gate_ref.stop()
        sup.check_actors()
        assert sup.evaluate(order(order_id="x-1", quantity=0.1)).reason_code is RC.DUPLICATE_ORDER


def _outcome(oid):
    from supervisor import OrderOutcome

    return OrderOutcome(oid, "cancelled", account="main")


# -- risk-scored sizing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "tier", "expected"),
    [
        (0.2, None, 0.8),  # 1 - score
        (0.7, None, 0.5),  # bounded below by warning_scale_factor
        (None, None, 0.5),  # no score: the fixed factor
        (-1.0, None, 0.5),  # a score outside [0, 1] is not trusted: the fixed factor
        (float("nan"), None, 0.5),
        (3.0, None, 0.5),
        (0.1, "REDUCED", 0.75),  # the tier's own factor when smaller
    ],
)
def test_risk_scored_warning_sizing(clock, score, tier, expected):
    cfg = make_config(gate={"warning_scaling": "risk_score", "warning_scale_factor": 0.5})
    st_ = fresh_state(
        clock,
        account_state(equity=10_000_000.0, positions=MARKED),
        level="WARNING",
        overall_risk_score=score,
        ess_tier_recommendation=tier,
    )
    result = decide(order(quantity=10.0), st_, cfg, clock)
    assert (result.decision, result.reason_code) == ("scale_down", RC.RISK_WARNING_SCALE)
    assert result.adjusted_quantity == pytest.approx(10.0 * expected)


# -- unified symbols ------------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["SOL/USDT", "SOL/USDT:USDT", "SOLUSDT"])
def test_exchange_unified_symbols_are_one_configured_symbol(clock, symbol):
    result = decide(order(symbol=symbol, quantity=0.1), rich(clock), CFG, clock)
    assert result.decision == "allow", result.reason


# -- what a hostile probe found --------------------------------------------------------------------


def test_a_reference_price_far_from_the_market_is_refused_both_ways(clock):
    # A market buy judged at a reference of 1 would pass every size cap: refused against the mark.
    st_ = rich(clock)
    low = order(price=10.0, reference_price=10.0, quantity=1.0)
    assert decide(low, st_, CFG, clock).reason_code is RC.PRICE_OUT_OF_COLLAR
    high = order(side="sell", price=150.0, reference_price=150.0, quantity=1.0)
    assert decide(high, st_, CFG, clock).reason_code is RC.PRICE_OUT_OF_COLLAR
    near = order(price=95.0, reference_price=95.0, quantity=1.0)
    assert decide(near, st_, CFG, clock).decision == "allow"


def test_the_last_fill_outranks_the_callers_reference(clock):
    st_ = rich(clock, positions=())
    st_.last_price[("SOLUSDT", "binance")] = (100.0, clock.monotonic())
    fat = order(price=1_000.0, reference_price=1_000.0, quantity=0.1)
    assert decide(fat, st_, CFG, clock).reason_code is RC.PRICE_OUT_OF_COLLAR


def test_a_market_buy_with_a_low_reference_never_reaches_the_exchange(clock):
    from supervisor import AccountSnapshot, GuardedExchange, OrderBlocked
    from tests.supervisor.integrations.test_cancels import PaperExchange

    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        from tests.helpers import signal

        sup.report_ess_active(False)
        sup.report_risk_signal(signal("INFO", clock.now()))
        sup.report_account_snapshot(
            AccountSnapshot("main", 1_000_000.0, (Position("BTC/USDT", "binance", 0.1, 65_000.0),))  # a unified name
        )
        paper = PaperExchange()
        ex = GuardedExchange(paper, sup, account="main", exchange="binance", strategy_id="trend_v2")
        with pytest.raises(OrderBlocked) as info:
            ex.create_market_buy_order("BTC/USDT", 5.0, reference_price=1.0)
        assert info.value.result.reason_code is RC.PRICE_OUT_OF_COLLAR and paper.calls == []
        with pytest.raises(OrderBlocked) as info:
            ex.create_limit_buy_order("BTC/USDT", 0.01, 650_000.0)  # the snapshot's mark, under its unified name
        assert info.value.result.reason_code is RC.PRICE_OUT_OF_COLLAR


def test_an_odd_fill_price_never_repaints_the_snapshots_mark(clock):
    from supervisor import AccountSnapshot, Fill
    from tests.helpers import signal

    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        sup.report_ess_active(False)
        sup.report_risk_signal(signal("INFO", clock.now()))
        sup.report_account_snapshot(
            AccountSnapshot("main", 1_000_000.0, (Position("BTCUSDT", "binance", 0.1, 65_000.0),))
        )
        state = sup.report_fill(Fill("main", "binance", "BTCUSDT", "buy", 1e-9, 6.5e11))
        assert [p.mark_price for p in state.positions] == [65_000.0]
        exit_ = order(symbol="BTCUSDT", side="sell", quantity=0.1, price=64_000.0, reduce_only=True)
        assert sup.evaluate(exit_).decision == "allow"


def test_symbols_are_named_as_the_gate_reads_them_in_the_config():
    from supervisor.config import ConfigError, parse_config
    from tests.helpers import config_dict

    data = config_dict()
    data["symbols"]["BTC/USDT"] = {"lot_step": 0.001, "min_qty": 0.001}
    data["symbols"]["SOLUSDT"] = {"lot_step": 0.1, "min_qty": 1.0, "max_qty": 0.5}
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    text = "\n".join(exc.value.problems)
    assert "symbols.BTC/USDT: name the symbol as the gate does (BTCUSDT)" in text
    assert "symbols.SOLUSDT.max_qty: must be >= min_qty" in text
