"""Each check of docs/checks.md at its boundaries: just under, at, just over."""

from __future__ import annotations

import pytest

from supervisor.clock import FakeClock
from supervisor.core.gate_state import Reservation
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import Position, account_state, decide, ess, fresh_state, make_config, order, signal

CFG = make_config()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_happy_path_when_all_state_fresh_then_allows(clock):
    r = decide(order(), fresh_state(clock), CFG, clock)
    assert (r.decision, r.reason_code, r.adjusted_quantity, r.scale_factor) == ("allow", RC.ALL_CHECKS_PASSED, 1.0, 1.0)
    assert r.risk_level == "INFO" and r.ess_active is False
    assert r.state_age_s == {"ess": 0.0, "risk_v3": 0.0, "account": 0.0}
    assert r.timestamp == clock.now() and r.order_id


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quantity", 0.0),
        ("quantity", -1.0),
        ("quantity", float("nan")),
        ("quantity", float("inf")),
        ("quantity", "1"),
        ("quantity", True),
        ("price", 0.0),
        ("price", float("-inf")),
        ("side", "hold"),
        ("side", None),
        ("leverage", 0.5),
        ("leverage", float("nan")),
        ("account", ""),
        ("symbol", "DOGEUSDT"),
        ("reduce_only", "yes"),
        ("stop_price", -5.0),
        ("order_id", 7),
        ("quantity", 0.01),  # below min_qty 0.1
    ],
)
def test_malformed_order_then_blocks_invalid(clock, field, value):
    r = decide(order(**{field: value}), fresh_state(clock), CFG, clock)
    assert (r.decision, r.reason_code, r.adjusted_quantity) == ("block", RC.INVALID_ORDER, 0.0)


def test_order_side_any_case_and_order_request_accepted(clock):
    from supervisor.core.messages import OrderRequest

    assert decide(order(side="BUY"), fresh_state(clock), CFG, clock).decision == "allow"
    assert decide(OrderRequest(**order(side="Sell")), fresh_state(clock), CFG, clock).decision == "allow"


def test_missing_field_or_unknown_field_or_not_a_mapping_then_invalid(clock):
    st = fresh_state(clock)
    incomplete = order()
    del incomplete["price"]
    for raw in (incomplete, {**order(), "colour": "red"}, None, 42, ["a"], "order"):
        assert decide(raw, st, CFG, clock).reason_code is RC.INVALID_ORDER


# -- ESS ------------------------------------------------------------------


def test_ess_age_boundary(clock):
    st = fresh_state(clock)
    st.ess_received = clock.monotonic() - 2.999
    assert decide(order(), st, CFG, clock).decision == "allow"
    st.ess_received = clock.monotonic() - 3.0
    assert decide(order(), st, CFG, clock).decision == "allow"
    st.ess_received = clock.monotonic() - 3.001
    assert decide(order(), st, CFG, clock).reason_code is RC.ESS_STATE_STALE


def test_ess_unknown_source_then_stale(clock):
    st = fresh_state(clock)
    st.ess = ess(None)
    assert decide(order(), st, CFG, clock).reason_code is RC.ESS_STATE_STALE


def test_ess_active_then_halt_even_when_everything_else_is_wrong(clock):
    st = fresh_state(clock, level="CRITICAL")
    st.ess = ess(True)
    r = decide(order(leverage=50.0), st, CFG, clock)
    assert (r.reason_code, r.ess_active) == (RC.ESS_HALT_ACTIVE, True)


def test_ess_halt_with_override_lets_only_reduce_only_through(clock):
    long = Position("SOLUSDT", "binance", 5.0, 100.0)
    st = fresh_state(clock, account_state(positions=(long,)))
    st.ess = ess(True)
    st.overrides["main"] = ("ov-1", clock.monotonic() + 60)
    r = decide(order(side="sell", quantity=2.0, reduce_only=True), st, CFG, clock)
    assert (r.decision, r.reason_code) == ("allow", RC.OVERRIDE_APPLIED)
    assert "override ov-1" in r.reason
    assert decide(order(side="sell", quantity=2.0), st, CFG, clock).reason_code is RC.ESS_HALT_ACTIVE
    st.overrides["main"] = ("ov-1", clock.monotonic() - 1)  # expired
    assert decide(order(side="sell", quantity=2.0, reduce_only=True), st, CFG, clock).reason_code is RC.ESS_HALT_ACTIVE


def test_an_override_passes_what_a_liquidation_must_pass_and_nothing_else(clock):
    long = Position("SOLUSDT", "binance", 5.0, 100.0)
    st = fresh_state(clock, account_state(positions=(long,)))
    st.overrides["main"] = ("ov-2", clock.monotonic() + 600)
    reduce = order(side="sell", quantity=2.0, reduce_only=True)
    # CRITICAL and an ESS action required: through.
    st.signal = signal("CRITICAL", clock.now(), ess_action_required=True)
    assert decide(reduce, st, CFG, clock).reason_code is RC.OVERRIDE_APPLIED
    # Risk v3 stale: through.
    clock.advance(11.0)
    st.ess_received = clock.monotonic()
    st.books["main"].received = clock.monotonic()
    assert decide(reduce, st, CFG, clock).reason_code is RC.OVERRIDE_APPLIED
    # Never: an order that grows the position, one bigger than it, a non-reduce-only one.
    assert decide(order(side="buy", quantity=1.0, reduce_only=True), st, CFG, clock).decision == "block"
    assert decide(order(side="sell", quantity=6.0, reduce_only=True), st, CFG, clock).decision == "block"
    assert decide(order(side="sell", quantity=2.0), st, CFG, clock).reason_code is RC.RISK_STATE_STALE
    # Never: stale account state (the gate must know the position to know the order reduces it).
    clock.advance(61.0)
    st.ess_received = clock.monotonic()
    assert decide(reduce, st, CFG, clock).reason_code is RC.ACCOUNT_STATE_STALE
    # Never: ESS unknown, another account.
    st.books["main"].received = clock.monotonic()
    st.ess = ess(None)
    assert decide(reduce, st, CFG, clock).reason_code is RC.ESS_STATE_STALE


# -- Risk v3 ----------------------------------------------------------------


def test_risk_fetch_age_boundary(clock):
    st = fresh_state(clock)
    st.signal_received = clock.monotonic() - 10.0
    assert decide(order(), st, CFG, clock).decision == "allow"
    st.signal_received = clock.monotonic() - 10.001
    r = decide(order(), st, CFG, clock)
    assert (r.reason_code, r.risk_level) == (RC.RISK_STATE_STALE, "UNKNOWN")


def test_risk_signal_own_timestamp_age_boundary(clock):
    from datetime import timedelta

    st = fresh_state(clock)
    st.signal = signal("INFO", clock.now() - timedelta(seconds=900))
    assert decide(order(), st, CFG, clock).decision == "allow"
    st.signal = signal("INFO", clock.now() - timedelta(seconds=900.001))
    assert decide(order(), st, CFG, clock).reason_code is RC.RISK_STATE_STALE


def test_no_signal_then_risk_state_stale(clock):
    st = fresh_state(clock)
    st.signal = None
    assert decide(order(), st, CFG, clock).reason_code is RC.RISK_STATE_STALE


def test_critical_blocks_and_level_is_carried(clock):
    r = decide(order(), fresh_state(clock, level="CRITICAL"), CFG, clock)
    assert (r.reason_code, r.risk_level) == (RC.GLOBAL_RISK_CRITICAL, "CRITICAL")


def test_ess_action_required_blocks(clock):
    st = fresh_state(clock, ess_action_required=True, ess_tier_recommendation="EMERGENCY")
    assert decide(order(), st, CFG, clock).reason_code is RC.RISK_V3_ESS_ACTION_REQUIRED


def test_reduce_only_passes_critical_only_when_configured(clock):
    long = Position("SOLUSDT", "binance", 5.0, 100.0)
    reduce = order(side="sell", quantity=5.0, reduce_only=True)
    st = fresh_state(clock, account_state(positions=(long,)), level="CRITICAL", ess_action_required=True)
    assert decide(reduce, st, CFG, clock).reason_code is RC.GLOBAL_RISK_CRITICAL
    lenient = make_config(gate={"reduce_only_when_critical": True})
    assert decide(reduce, st, lenient, clock).decision == "allow"
    assert decide(order(), st, lenient, clock).reason_code is RC.GLOBAL_RISK_CRITICAL


# -- account ----------------------------------------------------------------


def test_unknown_account_and_wrong_exchange(clock):
    st = fresh_state(clock)
    assert decide(order(account="ghost"), st, CFG, clock).reason_code is RC.UNKNOWN_ACCOUNT
    assert decide(order(exchange="bybit"), st, CFG, clock).reason_code is RC.INVALID_ORDER


def test_account_age_boundary_and_missing(clock):
    st = fresh_state(clock)
    st.books["main"].received = clock.monotonic() - 60.0
    assert decide(order(), st, CFG, clock).decision == "allow"
    st.books["main"].received = clock.monotonic() - 60.001
    assert decide(order(), st, CFG, clock).reason_code is RC.ACCOUNT_STATE_STALE
    assert decide(order(account="tiny"), st, CFG, clock).reason_code is RC.ACCOUNT_STATE_STALE


def test_reduce_only_that_grows_or_flips_is_invalid(clock):
    long = Position("SOLUSDT", "binance", 2.0, 100.0)
    st = fresh_state(clock, account_state(positions=(long,)))
    assert decide(order(side="buy", reduce_only=True), st, CFG, clock).reason_code is RC.INVALID_ORDER
    assert decide(order(side="sell", quantity=2.1, reduce_only=True), st, CFG, clock).reason_code is RC.INVALID_ORDER
    assert decide(order(side="sell", quantity=2.0, reduce_only=True), st, CFG, clock).decision == "allow"
    assert (
        decide(order(symbol="ETHUSDT", side="sell", quantity=0.1, reduce_only=True), st, CFG, clock).reason_code
        is RC.INVALID_ORDER
    )


@pytest.mark.parametrize(
    ("account", "strategy", "allowed"),
    [
        ("main", "trend_v2", True),
        ("main", "martingale", False),
        ("main", "experimental_hft", False),
        ("tiny", "trend_v2", True),
        ("tiny", "mean_rev", False),
        ("bold", "experimental_hft", False),
    ],
)
def test_strategy_lists(clock, account, strategy, allowed):
    exchange = {"main": "binance", "tiny": "binance", "bold": "bybit"}[account]
    st = fresh_state(clock, account_state(account, equity=1_000_000.0))
    r = decide(order(account=account, exchange=exchange, strategy_id=strategy, quantity=0.1), st, CFG, clock)
    assert (r.decision == "allow") is allowed
    if not allowed:
        assert r.reason_code is RC.STRATEGY_NOT_ALLOWED


# -- limits -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("leverage", "code"), [(2.99, RC.ALL_CHECKS_PASSED), (3.0, RC.ALL_CHECKS_PASSED), (3.01, RC.LEVERAGE_EXCEEDS_LIMIT)]
)
def test_leverage_boundary(clock, leverage, code):
    assert decide(order(leverage=leverage), fresh_state(clock), CFG, clock).reason_code is code


def test_order_rate_sliding_window(clock):
    st = fresh_state(clock)
    now = clock.monotonic()
    for i in range(4):
        st.record_approval("main", now - 0.5 + i * 0.1)
    assert decide(order(), st, CFG, clock).decision == "allow"  # 4 < 5
    st.record_approval("main", now)
    assert decide(order(), st, CFG, clock).reason_code is RC.ORDER_RATE_EXCEEDED  # 5 >= 5
    clock.advance(0.5)  # the first of the five leaves the window exactly now
    assert decide(order(), st, CFG, clock).decision == "allow"
    assert (
        decide(order(account="tiny"), fresh_state(clock, account_state("tiny")), CFG, clock).reason_code
        is not RC.ORDER_RATE_EXCEEDED
    )


@pytest.mark.parametrize(
    ("equity", "code"),
    [(9_801.0, RC.ALL_CHECKS_PASSED), (9_800.0, RC.DAILY_LOSS_LIMIT), (9_799.0, RC.DAILY_LOSS_LIMIT)],
)
def test_daily_loss_boundary(clock, equity, code):
    st = fresh_state(clock, account_state(equity=equity, day_start=10_000.0, week_start=equity))
    assert decide(order(quantity=0.5), st, CFG, clock).reason_code is code


@pytest.mark.parametrize(
    ("equity", "code"),
    [(9_301.0, RC.ALL_CHECKS_PASSED), (9_300.0, RC.WEEKLY_LOSS_LIMIT), (9_299.0, RC.WEEKLY_LOSS_LIMIT)],
)
def test_weekly_loss_boundary(clock, equity, code):
    st = fresh_state(clock, account_state(equity=equity, day_start=equity, week_start=10_000.0))
    assert decide(order(quantity=0.5), st, CFG, clock).reason_code is code


def test_loss_limit_lets_a_reducing_order_through(clock):
    long = Position("SOLUSDT", "binance", 3.0, 100.0)
    st = fresh_state(clock, account_state(equity=9_000.0, positions=(long,), day_start=10_000.0, week_start=10_000.0))
    assert decide(order(side="sell", quantity=3.0), st, CFG, clock).decision == "allow"
    assert decide(order(side="sell", quantity=3.1), st, CFG, clock).reason_code is RC.DAILY_LOSS_LIMIT


def test_zero_baseline_equity_fails_closed(clock):
    st = fresh_state(clock, account_state(equity=10_000.0, day_start=0.0))
    assert decide(order(), st, CFG, clock).reason_code is RC.DAILY_LOSS_LIMIT


def _positions(n: int) -> tuple[Position, ...]:
    return tuple(Position(f"SYM{i}USDT", "binance", 1.0, 10.0) for i in range(n))


@pytest.mark.parametrize(
    ("open_count", "code"), [(4, RC.ALL_CHECKS_PASSED), (5, RC.MAX_OPEN_POSITIONS), (6, RC.MAX_OPEN_POSITIONS)]
)
def test_max_open_positions_boundary(clock, open_count, code):
    st = fresh_state(clock, account_state(positions=_positions(open_count)))
    assert decide(order(), st, CFG, clock).reason_code is code


def test_max_open_positions_allows_adding_to_an_open_position_and_counts_in_flight_openings(clock):
    positions = (*_positions(4), Position("SOLUSDT", "binance", 1.0, 100.0))
    st = fresh_state(clock, account_state(positions=positions))
    assert decide(order(quantity=0.5), st, CFG, clock).decision == "allow"  # same symbol: not a new position
    st = fresh_state(clock, account_state(positions=_positions(4)))
    st.reserve(Reservation("o1", "main", "binance", ("ETHUSDT", "binance"), 10.0, True, clock.monotonic() + 30))
    assert decide(order(), st, CFG, clock).reason_code is RC.MAX_OPEN_POSITIONS


@pytest.mark.parametrize(
    ("quantity", "decision", "adjusted"),
    [(0.99, "allow", 0.99), (1.0, "allow", 1.0), (1.01, "scale_down", 1.0), (3.0, "scale_down", 1.0)],
)
def test_single_trade_risk_boundary_without_stop(clock, quantity, decision, adjusted):
    r = decide(order(quantity=quantity), fresh_state(clock), CFG, clock)
    assert (r.decision, r.adjusted_quantity) == (decision, adjusted)
    if decision == "scale_down":
        assert r.reason_code is RC.SINGLE_TRADE_RISK and r.scale_factor == pytest.approx(adjusted / quantity)


def test_single_trade_risk_uses_stop_distance(clock):
    # 1% of 10,000 = 100 USD at risk; stop 10 below: 10 SOL fit, 10.5 scale to 10.
    st = fresh_state(clock)
    assert decide(order(quantity=10.0, stop_price=90.0), st, CFG, clock).decision == "allow"
    r = decide(order(quantity=10.5, stop_price=90.0), st, CFG, clock)
    assert (r.decision, r.adjusted_quantity) == ("scale_down", 10.0)


def test_single_trade_risk_blocks_when_scaled_below_min_qty(clock):
    st = fresh_state(clock, account_state(equity=500.0))  # 1% = 5 USD = 0.05 SOL < min_qty 0.1
    r = decide(order(quantity=1.0), st, CFG, clock)
    assert (r.decision, r.reason_code) == ("block", RC.SINGLE_TRADE_RISK)


def test_single_trade_risk_with_non_positive_equity_allows_nothing(clock):
    from supervisor.core.checks import EvalContext, Scale, check_single_trade_risk
    from supervisor.core.orders import validate_order

    st = fresh_state(clock, account_state(equity=0.0, day_start=1.0))
    o = validate_order(order(), CFG)
    out = check_single_trade_risk(o, EvalContext(o, st, CFG, clock.monotonic(), clock.now()))
    assert isinstance(out, Scale) and out.max_quantity == 0.0


RICH = account_state(equity=10_000_000.0)  # single-trade risk out of the way


@pytest.mark.parametrize(
    ("qty", "decision", "adjusted"),
    [(99.9, "allow", 99.9), (100.0, "allow", 100.0), (100.1, "scale_down", 100.0)],
)
def test_account_exposure_boundary(clock, qty, decision, adjusted):
    # cap 50,000; 40,000 in positions; 100 SOL at 100 = 10,000 fits exactly.
    rich = account_state(equity=10_000_000.0, positions=(Position("BTCUSDT", "binance", 0.5, 80_000.0),))
    r = decide(order(quantity=qty), fresh_state(clock, rich), CFG, clock)
    assert (r.decision, r.adjusted_quantity) == (decision, adjusted)
    if decision == "scale_down":
        assert r.reason_code is RC.ACCOUNT_EXPOSURE_LIMIT


def test_account_exposure_counts_reservations_and_ignores_reductions(clock):
    rich = account_state(equity=10_000_000.0, positions=(Position("SOLUSDT", "binance", 400.0, 100.0),))
    st = fresh_state(clock, rich)
    st.reserve(Reservation("o1", "main", "binance", ("SOLUSDT", "binance"), 9_000.0, False, clock.monotonic() + 30))
    r = decide(order(quantity=20.0), st, CFG, clock)  # 40,000 + 9,000 in use: 10 SOL of headroom
    assert (r.decision, r.reason_code, r.adjusted_quantity) == ("scale_down", RC.ACCOUNT_EXPOSURE_LIMIT, 10.0)
    assert decide(order(side="sell", quantity=400.0), st, CFG, clock).decision == "allow"
    st.reserve(Reservation("o2", "main", "binance", ("SOLUSDT", "binance"), 1_000.0, False, clock.monotonic() + 30))
    assert decide(order(quantity=0.1), st, CFG, clock).reason_code is RC.ACCOUNT_EXPOSURE_LIMIT  # no headroom left


def test_exchange_exposure_counts_other_accounts(clock):
    big = account_state("tiny", equity=10_000_000.0, positions=(Position("BTCUSDT", "binance", 2.0, 97_500.0),))
    st = fresh_state(clock, RICH, big)  # binance cap 200,000; 195,000 in use by 'tiny'
    r = decide(order(quantity=80.0), st, CFG, clock)
    assert (r.decision, r.reason_code, r.adjusted_quantity) == ("scale_down", RC.EXCHANGE_EXPOSURE_LIMIT, 50.0)


@pytest.mark.parametrize("trigger", [{"level": "WARNING"}, {"ess_tier_recommendation": "REDUCED"}])
def test_warning_scales_by_factor_and_rounds_to_lot(clock, trigger):
    st = fresh_state(clock, RICH, **trigger)
    r = decide(order(quantity=1.5), st, CFG, clock)
    assert (r.decision, r.reason_code, r.adjusted_quantity) == ("scale_down", RC.RISK_WARNING_SCALE, 0.7)


def test_scale_downs_combine_by_smallest_factor(clock):
    st = fresh_state(clock, level="WARNING")  # warning 0.5, risk caps qty at 1.0
    r = decide(order(quantity=4.0), st, CFG, clock)
    assert (r.reason_code, r.adjusted_quantity) == (RC.SINGLE_TRADE_RISK, 1.0)
    r = decide(order(quantity=1.6), st, CFG, clock)
    assert (r.reason_code, r.adjusted_quantity) == (RC.RISK_WARNING_SCALE, 0.8)


def test_first_block_wins_in_evaluation_order(clock):
    st = fresh_state(clock, account_state(equity=1.0, day_start=100.0))
    r = decide(order(strategy_id="martingale", leverage=10.0), st, CFG, clock)
    assert r.reason_code is RC.STRATEGY_NOT_ALLOWED


def test_floor_to_lot_never_rounds_up():
    from supervisor.core.checks import floor_to_lot

    assert floor_to_lot(0.30000000000000004, 0.1) == 0.3
    assert floor_to_lot(0.29999999999, 0.1) == 0.2
    assert floor_to_lot(1.0, 0.001) == 1.0
    assert floor_to_lot(0.0009, 0.001) == 0.0
    assert floor_to_lot(12.7, 1.0) == 12.0


def test_exposure_at_the_cap_by_float_rounding_is_not_a_scale_down(clock):
    # Found by the re-evaluation property: a flip whose notional equals the cap
    # up to one ulp once came back as scale_down with the same quantity.
    cfg = make_config(
        accounts={"main": {"exchange": "binance", "capital_profile": "aggressive", "max_notional_usd": 50_000.0}}
    )
    short = Position("SOLUSDT", "binance", -1.5677557471285866, 100.0)
    st = fresh_state(clock, account_state(equity=39_063.0, positions=(short,)))
    r = decide(order(quantity=500.0, stop_price=98.4375), st, cfg, clock)
    assert r.decision != "scale_down" or r.adjusted_quantity < 500.0
    again = decide(order(quantity=r.adjusted_quantity, stop_price=98.4375), st, cfg, clock)
    assert again.decision == "allow"
