"""Unexpected or unusable state never leads to an allow."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from supervisor.core.evaluate import COMPILED
from supervisor.core.messages import EssState, Position, RiskSignal
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import account_state, decide, fresh_state, make_config, order

CFG = make_config()
# The compiled core (setup.py, opt-in) checks the type of every attribute it reads: a state object
# built with a mistyped field raises TypeError there, which the gate answers GATE_UNAVAILABLE (a block).
# The parsers never build one; these tests hold the pure-Python reference to a reason code.
MISTYPED_STATE = pytest.mark.skipif(
    COMPILED, reason="compiled core: a mistyped state object raises TypeError (the gate blocks GATE_UNAVAILABLE)"
)


@pytest.mark.parametrize("active", [None, 0, 1, "yes", "false"])
@MISTYPED_STATE
def test_ess_state_with_non_boolean_active_blocks_as_stale(clock, active):
    st = fresh_state(clock)
    st.ess = EssState(active=active)  # type: ignore[arg-type]
    assert decide(order(), st, CFG, clock).reason_code is RC.ESS_STATE_STALE


@pytest.mark.parametrize("level", ["info", "SEVERE", "", None, 3])
@MISTYPED_STATE
def test_risk_signal_with_unknown_level_blocks_as_stale(clock, level):
    st = fresh_state(clock)
    st.signal = RiskSignal(risk_level=level, timestamp=clock.now())  # type: ignore[arg-type]
    assert decide(order(), st, CFG, clock).reason_code is RC.RISK_STATE_STALE


def test_risk_signal_without_a_datetime_timestamp_blocks(clock):
    st = fresh_state(clock)
    st.signal = RiskSignal(risk_level="INFO", timestamp="2026-01-05T12:00:00")  # type: ignore[arg-type]
    assert decide(order(), st, CFG, clock).reason_code is RC.RISK_STATE_STALE


@pytest.mark.parametrize(
    "acct",
    [
        account_state(equity=math.nan),
        account_state(equity=10_000.0, day_start=math.inf),
        account_state(equity=10_000.0, week_start=math.nan),
        account_state(positions=(Position("SOLUSDT", "binance", math.nan, 100.0),)),
        account_state(positions=(Position("SOLUSDT", "binance", 1.0, 0.0),)),
        account_state(positions=(Position("SOLUSDT", "binance", 1.0, -math.inf),)),
    ],
)
def test_account_state_with_non_finite_numbers_blocks(clock, acct):
    st = fresh_state(clock, acct)
    assert decide(order(), st, CFG, clock).reason_code is RC.ACCOUNT_STATE_STALE


def test_negative_equity_blocks(clock):
    st = fresh_state(clock, account_state(equity=-5.0, day_start=-5.0, week_start=-5.0))
    assert decide(order(), st, CFG, clock).decision == "block"


@pytest.mark.parametrize(("ahead_s", "code"), [(4.0, RC.ALL_CHECKS_PASSED), (6.0, RC.RISK_STATE_STALE)])
def test_risk_signal_stamped_in_the_future_beyond_the_skew_blocks(clock, ahead_s, code):
    st = fresh_state(clock)
    st.signal = RiskSignal(risk_level="INFO", timestamp=clock.now() + timedelta(seconds=ahead_s))
    assert decide(order(), st, CFG, clock).reason_code is code  # max_clock_skew_s defaults to 5


def test_risk_signal_ten_years_ahead_never_counts_as_fresh(clock):
    st = fresh_state(clock)
    st.signal = RiskSignal(risk_level="INFO", timestamp=clock.now() + timedelta(days=3650))
    for _ in range(3):
        r = decide(order(), st, CFG, clock)
        assert r.reason_code is RC.RISK_STATE_STALE and "future" in r.reason
        clock.advance(3600)
        st.signal_received = st.ess_received = clock.monotonic()  # re-fetched: the same far-future signal
