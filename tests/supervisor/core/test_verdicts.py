"""The cached verdicts of the order-independent checks (core.verdicts) never
change an answer: `decide` and `decide_every_check` agree on random states,
orders and times, while the state changes between orders as the gate's would."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.clock import FakeClock
from supervisor.config import parse_config
from supervisor.core.checks import CHECKS, check_ess_action, check_journal, check_reduction_budget, check_shared_state
from supervisor.core.evaluate import (
    _ONE_INSTANCE,
    _SEVERAL_INSTANCES,
    AFTER_MARKET,
    ORDER_ONLY,
    decide,
    decide_every_check,
)
from supervisor.core.gate_state import GateState
from supervisor.core.messages import AccountState, EssSourceStatus, EssState, Position
from supervisor.core.orders import validate_order
from tests.helpers import config_dict, make_config, order, signal


def _config(normal: dict, **sections: dict):
    """The tests' config with its normal profile changed by `normal`."""
    data = config_dict(**sections)
    data["profiles"]["normal"].update(normal)
    return parse_config(data)


CFG = _config({"max_drawdown_pct": 5.0, "cooldown_minutes": 10.0})
# Limits in another order (ESS outlives Risk v3; a signal may be 2 s old; accounts 5 s), so that each
# time test of a cached pass is the one that decides somewhere.
OTHER_CFG = _config(
    {"max_daily_loss_pct": -1.0},
    ess={"max_age_s": 30.0, "kill_switch_file": "/nonexistent/riskgate-test/KILL"},
    risk_v3={"max_signal_age_s": 2.0, "max_clock_skew_s": 1.0},
    accounts={"max_age_s": 5.0},
)

# Steps of time that land on, just before and just after the limits (ESS 3 s, Risk v3 10 s, accounts 60 s).
STEPS = st.sampled_from(
    [0.0, 1e-9, 0.5, 1.0, 1.000001, 2.0, 2.999999, 3.0, 3.000001, 4.999999, 5.0, 7.0, 10.0, 10.000001, 50.0, 60.0]
)
SKEWS = st.sampled_from([0.0, 1.0, 1.5, -0.999, -1.0, -4.999, -5.0, -5.001, -60.0, 899.0, 900.0, 900.001, 3600.0])
EQUITY = st.sampled_from(
    [10_000.0, 9_850.0, 9_801.0, 9_800.0, 9_799.0, 9_300.0, 9_500.0, 9_499.0, 11_000.0, 0.0, math.nan, math.inf]
)

MOSTLY = st.sampled_from([True, True, True, False])
op = st.one_of(
    st.tuples(st.just("advance"), STEPS),
    # time passes and the pollers re-send what they had (new objects, same content), or some do not
    st.tuples(st.just("tick"), STEPS, MOSTLY, MOSTLY, MOSTLY),
    st.tuples(st.just("tick"), STEPS, MOSTLY, MOSTLY, MOSTLY),
    st.tuples(st.just("ess"), st.sampled_from([False, False, True, None])),
    st.tuples(
        st.just("signal"),
        st.sampled_from(["INFO", "INFO", "WARNING", "CRITICAL", "PANIC"]),
        SKEWS,
        st.booleans(),
    ),
    st.tuples(
        st.just("account"),
        EQUITY,
        st.sampled_from([None, 10_000.0, 0.0]),  # the week's start (None: as the day's)
        st.sampled_from([None, 10_000.0, 10_600.0]),  # the week's peak
        st.sampled_from([(), ("day",)]),
        st.sampled_from([None, "snapshot stamped 60s in the future"]),
        st.sampled_from([None, -60.0, 60.0]),  # a cooldown ending this far from now
        st.booleans(),  # holding 0.1 BTC
    ),
    st.tuples(st.just("journal"), st.sampled_from([None, None, None, "journal queue full"])),
    st.tuples(st.just("override"), st.sampled_from([None, 30.0])),
    st.tuples(st.just("config"), st.booleans()),
)


def _apply(step: tuple, state: GateState, clock: FakeClock, cfg: list) -> None:
    kind, *args = step
    now = clock.monotonic()
    if kind == "advance":
        clock.advance(args[0])
    elif kind == "tick":
        clock.advance(args[0])
        now = clock.monotonic()
        if args[1] and state.ess is not None:
            state.ess, state.ess_received = replace(state.ess), now
        if args[2] and state.signal is not None:  # re-evaluated upstream: stamped now
            state.signal, state.signal_received = replace(state.signal, timestamp=clock.now()), now
        book = state.books.get("main")
        if args[3] and book is not None:
            state.put_account(replace(book.state), now)
    elif kind == "ess":
        state.ess, state.ess_received = EssState.combine((EssSourceStatus("test", args[0], "test source"),)), now
    elif kind == "signal":
        level, skew, action = args
        state.signal = signal(level, clock.now() - timedelta(seconds=skew), ess_action_required=action)
        state.signal_received = now
    elif kind == "account":
        equity, week, peak, unknown, problem, cooldown, holding = args
        positions = (Position("BTCUSDT", "binance", 0.1, 65_000.0),) if holding else ()
        a = AccountState(
            account="main",
            equity=equity,
            positions=positions,
            day_start_equity=10_000.0,
            week_start_equity=10_000.0 if week is None else week,
            baseline_unknown=unknown,
            problem=problem,
            peak_equity=peak,
            cooldown_until=None if cooldown is None else clock.now() + timedelta(seconds=cooldown),
        )
        state.put_account(a, now)
    elif kind == "journal":
        state.journal_blocking = args[0]
    elif kind == "override":
        if args[0] is None:
            state.overrides.pop("main", None)
        else:
            state.overrides["main"] = ("ov-1", now + args[0])
    elif kind == "config":
        cfg[0] = OTHER_CFG if args[0] else CFG


# Every example starts healthy, so orders reach the cached path; the steps then move time and state.
HEALTHY = [("ess", False), ("signal", "INFO", 0.0, False), ("account", 10_000.0, None, None, (), None, None, True)]
ORDER = st.tuples(
    st.just("order"),
    st.sampled_from(["buy", "sell"]),
    st.sampled_from([0.001, 0.01, 0.1, 0.5]),
    st.sampled_from([65_000.0, 60_000.0]),
    st.booleans(),
    st.sampled_from(["main", "main", "main", "tiny", "bold"]),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(st.tuples(op, ORDER), min_size=15, max_size=40))
def test_the_cached_verdicts_and_every_check_agree(other, steps):
    """After each change of time or state, an order (and the one before it again)."""
    clock = FakeClock()
    state = GateState()
    cfg = [OTHER_CFG if other else CFG]
    for step in HEALTHY:
        _apply(step, state, clock, cfg)
    previous = None
    for change, spec in steps:
        _apply(change, state, clock, cfg)
        for this in (previous, spec):
            if this is None:
                continue
            _, side, qty, price, reduce_only, account = this
            raw = order(
                account=account, symbol="BTCUSDT", side=side, quantity=qty, price=price, reduce_only=reduce_only
            )
            raw["exchange"] = "bybit" if account == "bold" else "binance"
            o = validate_order(raw, cfg[0])
            assert not isinstance(o, str), o
            now, wall = clock.monotonic(), clock.now()
            fast = decide(o, state, cfg[0], now, wall).result
            every = decide_every_check(o, state, cfg[0], now, wall).result
            assert replace(fast, timestamp=every.timestamp) == every, (change, this)
        previous = spec


def test_the_skipped_checks_lead_the_list_and_keep_its_order():
    assert CHECKS[0] is check_journal and CHECKS[5] is check_ess_action
    assert CHECKS[6:] == AFTER_MARKET
    assert [c for c in CHECKS if c in ORDER_ONLY] == list(ORDER_ONLY)
    assert len(ORDER_ONLY) == len(CHECKS) - 6 - 5


def test_a_new_state_object_is_never_read_as_the_old_one():
    """Same content, same time: a new ESS state that halts must block at once."""
    clock = FakeClock()
    state = GateState()
    _apply(("ess", False), state, clock, [CFG])
    _apply(("signal", "INFO", 0.0, False), state, clock, [CFG])
    _apply(("account", 10_000.0, None, None, (), None, None, False), state, clock, [CFG])
    o = validate_order(order(symbol="BTCUSDT", quantity=0.001, price=65_000.0), CFG)
    now, wall = clock.monotonic(), clock.now()
    assert decide(o, state, CFG, now, wall).result.decision == "allow"
    state.ess = EssState.combine((EssSourceStatus("test", True, "halt"),))  # received at the same instant
    assert decide(o, state, CFG, now, wall).result.reason_code.value == "ESS_HALT_ACTIVE"
    state.ess = EssState.combine((EssSourceStatus("test", False, ""),))
    assert decide(o, state, CFG, now, wall).result.decision == "allow"
    state.journal_blocking = "journal queue full"
    assert decide(o, state, CFG, now, wall).result.reason_code.value == "JOURNAL_UNAVAILABLE"


# Each case: a cached pass, then one change that must flip the answer (the random walk above may
# miss a narrow one; these never do).
LONG_ESS = make_config(
    ess={"max_age_s": 30.0, "kill_switch_file": "/nonexistent/riskgate-test/KILL"},
    risk_v3={"max_signal_age_s": 2.0, "max_clock_skew_s": 1.0},
)


def _healthy(clock: FakeClock, cfg, **account) -> tuple[GateState, object]:
    state = GateState()
    _apply(("ess", False), state, clock, [cfg])
    _apply(("signal", "INFO", 0.0, False), state, clock, [cfg])
    now = clock.monotonic()
    fields = {"account": "main", "equity": 10_000.0, "positions": (), "day_start_equity": 10_000.0}
    state.put_account(AccountState(**{**fields, "week_start_equity": 10_000.0, **account}), now)
    return state, validate_order(order(symbol="BTCUSDT", quantity=0.001, price=65_000.0), cfg)


def _both(state, o, cfg, clock) -> str:
    now, wall = clock.monotonic(), clock.now()
    fast = decide(o, state, cfg, now, wall).result
    every = decide_every_check(o, state, cfg, now, wall).result
    assert replace(fast, timestamp=every.timestamp) == every
    return every.reason_code.value


def _refresh_upstreams(state: GateState, clock: FakeClock) -> None:
    now = clock.monotonic()
    state.ess, state.ess_received = replace(state.ess), now
    state.signal, state.signal_received = replace(state.signal, timestamp=clock.now()), now


def test_an_account_going_stale_under_a_cached_pass_blocks():
    clock = FakeClock()
    state, o = _healthy(clock, CFG)
    assert _both(state, o, CFG, clock) == "ALL_CHECKS_PASSED"
    clock.advance(60.0)
    _refresh_upstreams(state, clock)
    assert _both(state, o, CFG, clock) == "ALL_CHECKS_PASSED"  # exactly at the limit
    clock.advance(1e-6)
    _refresh_upstreams(state, clock)
    assert _both(state, o, CFG, clock) == "ACCOUNT_STATE_STALE"


def test_a_signal_aging_under_a_cached_pass_blocks():
    clock = FakeClock()
    state, o = _healthy(clock, LONG_ESS)
    assert _both(state, o, LONG_ESS, clock) == "ALL_CHECKS_PASSED"
    clock.advance(2.0)
    assert _both(state, o, LONG_ESS, clock) == "ALL_CHECKS_PASSED"
    clock.advance(1e-6)  # evaluated more than max_signal_age_s ago
    assert _both(state, o, LONG_ESS, clock) == "RISK_STATE_STALE"


def test_a_signal_fetched_too_long_ago_under_a_cached_pass_blocks():
    cfg = make_config(ess={"max_age_s": 30.0, "kill_switch_file": "/nonexistent/riskgate-test/KILL"})
    clock = FakeClock()
    state, o = _healthy(clock, cfg)
    assert _both(state, o, cfg, clock) == "ALL_CHECKS_PASSED"
    clock.advance(10.000001)  # the fetch is older than risk_v3.max_age_s; ESS (30 s) still fresh
    assert _both(state, o, cfg, clock) == "RISK_STATE_STALE"


def test_the_wall_clock_set_back_under_a_cached_pass_blocks_a_future_signal():
    clock = FakeClock()
    state, o = _healthy(clock, LONG_ESS)
    assert _both(state, o, LONG_ESS, clock) == "ALL_CHECKS_PASSED"
    clock.set(clock.now() - timedelta(seconds=1.5))  # the signal now looks 1.5 s ahead: beyond the 1 s skew
    assert _both(state, o, LONG_ESS, clock) == "RISK_STATE_STALE"


@pytest.mark.parametrize(
    ("account", "code"),
    [
        ({"baseline_unknown": ("day",)}, "BASELINE_UNKNOWN"),
        ({"day_start_equity": 9_300.0, "equity": 9_300.0}, "WEEKLY_LOSS_LIMIT"),
        ({"peak_equity": 10_600.0}, "DRAWDOWN_LIMIT"),
        ({"equity": 9_800.0}, "DAILY_LOSS_LIMIT"),
        ({"equity": math.nan}, "ACCOUNT_STATE_STALE"),
        ({"problem": "snapshot stamped 60s in the future"}, "ACCOUNT_STATE_STALE"),
    ],
)
def test_an_account_state_that_blocks_is_never_cached_as_a_pass(account, code):
    clock = FakeClock()
    state, o = _healthy(clock, CFG)
    assert _both(state, o, CFG, clock) == "ALL_CHECKS_PASSED"
    fields = {"account": "main", "equity": 10_000.0, "positions": (), "day_start_equity": 10_000.0}
    state.put_account(AccountState(**{**fields, "week_start_equity": 10_000.0, **account}), clock.monotonic())
    assert _both(state, o, CFG, clock) == code


def test_a_new_config_is_never_read_under_the_old_ones_pass():
    loose = make_config()  # no drawdown limit
    clock = FakeClock()
    state, o = _healthy(clock, loose, peak_equity=10_600.0)  # 5.7 % below the peak
    assert _both(state, o, loose, clock) == "ALL_CHECKS_PASSED"
    assert _both(state, o, CFG, clock) == "DRAWDOWN_LIMIT"  # max_drawdown_pct 5


def test_one_instance_runs_without_the_checks_of_several_instances_which_never_fire_there():
    """With store.backend = "sqlite" the shared-state and budget checks return None before they read
    anything: decide skips them (the random walk above compares its answers with every check's)."""
    several = (check_shared_state, check_reduction_budget)
    assert _SEVERAL_INSTANCES == (CHECKS, AFTER_MARKET, ORDER_ONLY)
    for full, single in zip(_SEVERAL_INSTANCES, _ONE_INSTANCE, strict=True):
        assert all(c in full for c in several) and not any(c in single for c in several)
        assert list(single) == [c for c in full if c not in several]
