"""The collar's band of fresh snapshot marks is kept between decisions (one lookup per
decision, whatever the number of accounts: 26x slower at 10,000 accounts without it).
Whatever snapshots arrive and however time passes, it equals the band computed afresh."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.core.gate_state import GateState
from tests.helpers import Position, account_state

KEY = ("SOLUSDT", "binance")


def afresh(state: GateState, now: float, max_age_s: float) -> tuple[float, float] | None:
    fresh = [price for price, at in state.marks.get(KEY, {}).values() if now - at <= max_age_s]
    return (min(fresh), max(fresh)) if fresh else None


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("snapshot"), st.sampled_from(["a", "b", "c", "d"]), st.floats(50.0, 150.0)),
        st.tuples(st.just("wait"), st.floats(0.0, 40.0), st.just(0.0)),
        st.tuples(st.just("ask"), st.sampled_from([10.0, 30.0, 60.0]), st.just(0.0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_the_kept_band_is_always_the_band_computed_afresh(steps):
    state, now = GateState(), 0.0
    for kind, a, b in steps:
        if kind == "snapshot":
            state.put_account(account_state(str(a), positions=(Position("SOLUSDT", "binance", 1.0, float(b)),)), now)
        elif kind == "wait":
            now += float(a)
        else:
            assert state._snapshot_band(KEY, now, float(a)) == afresh(state, now, float(a)), (steps, now)


def test_a_band_follows_a_new_mark_and_forgets_an_aged_one():
    state = GateState()
    state.put_account(account_state("a", positions=(Position("SOLUSDT", "binance", 1.0, 100.0),)), 0.0)
    state.put_account(account_state("b", positions=(Position("SOLUSDT", "binance", 1.0, 120.0),)), 10.0)
    assert state.mark_band(KEY, 10.0, 30.0) == (100.0, 120.0)
    assert state.mark_band(KEY, 35.0, 30.0) == (120.0, 120.0)  # a's mark aged out: the kept band is not used
    state.put_account(account_state("a", positions=(Position("SOLUSDT", "binance", 1.0, 90.0),)), 36.0)
    assert state.mark_band(KEY, 36.0, 30.0) == (90.0, 120.0)  # a new mark: computed again
