"""Several instances, the pure side: a cap is spent only within the lease held
(BUDGET_UNAVAILABLE), and opening orders need the shared state confirmed
(SHARED_STATE_STALE). The hostile cases first: no lease, an expired one,
positions grown since the grant, a confirmation never made."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.core.budget import cap_keys, qty_units, reduce_key, room_units
from supervisor.core.gate_state import UNITS_PER_USD
from supervisor.core.messages import LeaseHeld, Position
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import account_state, decide, fresh_state, make_config, order

SHARED = {"backend": "postgresql", "dsn": "postgresql://riskgate@db.invalid/riskgate"}
USD = UNITS_PER_USD


def shared_config(**sections):
    return make_config(store=SHARED, **sections)


def confirmed(state, clock, leases=None):
    state.shared_confirmed = clock.monotonic()
    state.leases = dict(leases or {})
    return state


def lease(usd, base_usd=0.0, until=math.inf):
    return LeaseHeld(round(usd * USD), round(base_usd * USD), until)


def rich(clock, *positions):
    """State for an account whose equity leaves single-trade risk out of the way."""
    return fresh_state(clock, account_state(equity=1_000_000.0, positions=positions))


def both(usd, **kw):
    return {("exchange", "binance"): lease(usd, **kw), ("account", "main"): lease(usd, **kw)}


def test_no_lease_blocks_an_opening_order(clock):
    cfg = shared_config()
    st_ = confirmed(fresh_state(clock), clock)
    r = decide(order(), st_, cfg, clock)
    assert (r.decision, r.reason_code) == ("block", RC.BUDGET_UNAVAILABLE)


def test_an_expired_lease_is_no_lease(clock):
    cfg = shared_config()
    st_ = confirmed(fresh_state(clock), clock, both(1000.0, until=clock.monotonic() + 5))
    assert decide(order(), st_, cfg, clock).decision == "allow"
    clock.advance(5.0)
    st_.shared_confirmed = st_.ess_received = st_.signal_received = clock.monotonic()
    r = decide(order(order_id="x2"), st_, cfg, clock)
    assert r.reason_code is RC.BUDGET_UNAVAILABLE


def test_an_order_beyond_the_lease_scales_to_it(clock):
    cfg = shared_config()
    st_ = confirmed(rich(clock), clock, both(250.0))
    r = decide(order(quantity=5.0), st_, cfg, clock)  # 500 USD asked, 250 leased
    assert (r.decision, r.reason_code, r.adjusted_quantity) == ("scale_down", RC.BUDGET_UNAVAILABLE, 2.5)


def test_the_tighter_of_exchange_and_account_leases_decides(clock):
    cfg = shared_config()
    leases = {("exchange", "binance"): lease(1000.0), ("account", "main"): lease(150.0)}
    st_ = confirmed(rich(clock), clock, leases)
    r = decide(order(quantity=5.0), st_, cfg, clock)
    assert (r.reason_code, r.adjusted_quantity) == (RC.BUDGET_UNAVAILABLE, 1.5)


def test_positions_grown_since_the_grant_are_spent(clock):
    cfg = shared_config()
    held = account_state(positions=(Position("SOLUSDT", "binance", 3.0, 100.0),))  # 300 USD held now
    st_ = confirmed(fresh_state(clock, held), clock, both(350.0, base_usd=0.0))  # granted when nothing was held
    r = decide(order(quantity=2.0), st_, cfg, clock)  # 200 asked: 350 - 300 grown = 50 left
    assert (r.reason_code, r.adjusted_quantity) == (RC.BUDGET_UNAVAILABLE, 0.5)


def test_positions_that_shrank_give_nothing_back_before_the_next_grant(clock):
    cfg = shared_config()
    st_ = confirmed(fresh_state(clock), clock, both(50.0, base_usd=500.0))  # granted when 500 were held
    r = decide(order(quantity=2.0), st_, cfg, clock)
    assert (r.reason_code, r.adjusted_quantity) == (RC.BUDGET_UNAVAILABLE, 0.5)


def reduction(qty: float, held_qty: float, until: float = math.inf) -> dict:
    """A lease of `qty` of the SOL position (held_qty long when granted)."""
    return {reduce_key("main", "SOLUSDT", "binance"): LeaseHeld(qty_units(qty), qty_units(held_qty), until)}


def test_a_reducing_order_needs_its_positions_reduction_budget_not_a_cap_budget(clock):
    cfg = shared_config()
    held = account_state(positions=(Position("SOLUSDT", "binance", 3.0, 100.0),))
    st_ = confirmed(fresh_state(clock, held), clock, reduction(3.0, 3.0))  # no USD lease at all
    assert decide(order(side="sell", quantity=2.0), st_, cfg, clock).decision == "allow"
    st_ = confirmed(fresh_state(clock, held), clock, reduction(1.0, 3.0))
    r = decide(order(side="sell", quantity=2.0, order_id="r2"), st_, cfg, clock)
    assert (r.decision, r.reason_code, r.adjusted_quantity) == ("scale_down", RC.BUDGET_UNAVAILABLE, 1.0), r.reason
    st_ = confirmed(fresh_state(clock, held), clock)  # none: blocked, the keeper asks for it
    r = decide(order(side="sell", quantity=2.0, order_id="r3"), st_, cfg, clock)
    assert (r.decision, r.reason_code) == ("block", RC.BUDGET_UNAVAILABLE) and "reduction budget" in r.reason


def test_a_reduction_budget_counts_what_the_position_shrank_since_its_grant(clock):
    cfg = shared_config()
    held = account_state(positions=(Position("SOLUSDT", "binance", 1.0, 100.0),))  # 3 when granted, 2 closed
    st_ = confirmed(fresh_state(clock, held), clock, reduction(2.0, 3.0))
    r = decide(order(side="sell", quantity=1.0), st_, cfg, clock)
    assert (r.decision, r.reason_code) == ("block", RC.BUDGET_UNAVAILABLE), r.reason


def test_the_sqlite_backend_needs_no_lease(clock):
    r = decide(order(), fresh_state(clock), make_config(), clock)
    assert r.decision == "allow"


def test_shared_state_never_confirmed_blocks_opening_orders(clock):
    cfg = shared_config()
    st_ = fresh_state(clock)
    st_.leases = both(1000.0)
    r = decide(order(), st_, cfg, clock)
    assert (r.decision, r.reason_code) == ("block", RC.SHARED_STATE_STALE)
    assert "never" in r.reason


def test_shared_state_older_than_max_age_blocks_opening_orders_not_reducing_ones(clock):
    cfg = shared_config()
    held = account_state(positions=(Position("SOLUSDT", "binance", 3.0, 100.0),))
    st_ = confirmed(fresh_state(clock, held), clock, {**both(1000.0), **reduction(3.0, 3.0)})
    clock.advance(cfg.store.max_age_s + 0.01)
    st_.ess_received = st_.signal_received = clock.monotonic()
    st_.put_account(held, clock.monotonic())
    assert decide(order(), st_, cfg, clock).reason_code is RC.SHARED_STATE_STALE
    assert decide(order(side="sell", quantity=1.0, order_id="r1"), st_, cfg, clock).decision == "allow"


def test_cap_keys_name_every_configured_cap():
    cfg = shared_config()
    assert cap_keys(cfg) == {("exchange", "binance"): 200_000.0, ("account", "main"): 50_000.0}


@settings(max_examples=300, deadline=None)
@given(
    units=st.integers(0, 10**12),
    base=st.integers(0, 10**12),
    positions=st.integers(0, 10**12),
    reserved=st.integers(0, 10**12),
)
def test_room_never_lets_spending_pass_the_lease(units, base, positions, reserved):
    room = room_units(LeaseHeld(units, base, math.inf), positions, reserved, 0.0)
    assert room >= 0
    # What is spent after using the room: in flight plus growth since the grant, never above the lease.
    assert room == 0 or reserved + max(0, positions - base) + room <= units


@pytest.mark.parametrize("problem", [
    ({"backend": "postgresql"}, "store.dsn: is required"),
    ({"backend": "postgresql", "dsn": "hunter2"}, "store.dsn: must be a postgresql:// URL"),
    ({"backend": "postgresql", "dsn_env": "RISKGATE_NO_SUCH_VAR"}, "store.dsn_env: environment variable"),
    ({"backend": "sqlite", "dsn": "postgresql://x/y"}, "store.backend: dsn is set"),
    ({"backend": "mysql"}, "store.backend: must be one of sqlite, postgresql"),
    ({**SHARED, "lease_ttl_s": 5.0}, "store.lease_ttl_s: must be >= gate.reservation_ttl_s"),
    ({**SHARED, "max_age_s": 0.1}, "store.max_age_s: must be > store.poll_interval_s"),
    ({**SHARED, "timeout_s": 5.0}, "store.timeout_s: must be < supervision.heartbeat_timeout_s"),
    ({**SHARED, "pool_size": 0}, "store.pool_size: unknown key"),  # each role holds one connection: no pool
])  # fmt: skip
def test_store_config_problems_are_named(problem):
    from supervisor.config import ConfigError

    section, said = problem
    with pytest.raises(ConfigError) as caught:
        make_config(store=section)
    assert any(p.startswith(said) for p in caught.value.problems), caught.value.problems
    assert "hunter2" not in str(caught.value)


def test_instance_name_is_checked_and_defaults_to_the_host():
    import socket

    from supervisor.config import ConfigError

    assert make_config().instance.name == socket.gethostname()  # this machine's name is a usable one
    with pytest.raises(ConfigError, match=r"instance\.name: must be 1-64 letters"):
        make_config(instance={"name": "no spaces please"})
    assert make_config(instance={"name": "host-a.1"}).instance.name == "host-a.1"


def test_leases_asked_under_a_replaced_config_are_not_spent(clock):
    """A round that began before a reload lowered a cap must not install leases sized for the
    old cap (the gate drops them: the next round asks under the new config)."""
    from supervisor.channels.ess_board import EssBoard
    from supervisor.core.messages import ConfigChanged, EssSourceStatus, EssState, SharedState
    from supervisor.core.orders import validate_order
    from supervisor.gate import Gate
    from tests.helpers import signal

    old, new = shared_config(), shared_config(exchanges={"binance": {"max_notional_usd": 400.0}})
    board = EssBoard()
    board.publish(EssState.combine((EssSourceStatus("t", False, "clear"),)), clock.monotonic())
    gate = Gate(old, clock, board)
    gate.open("t")
    gate.post(signal("INFO", clock.now()), clock.monotonic())
    gate.post(account_state(equity=1_000_000.0), clock.monotonic())
    gate.post(ConfigChanged(new), clock.monotonic())  # the reload
    gate.post(SharedState(clock.monotonic(), both(1000.0), old), clock.monotonic())  # a round from before it
    valid = validate_order(order(quantity=1.0), new)
    from supervisor.core.messages import EvaluateOrder

    r = gate.decide(EvaluateOrder(valid, config=new), wait=1.0)
    assert r.reason_code is RC.BUDGET_UNAVAILABLE
    gate.post(SharedState(clock.monotonic(), both(300.0), new), clock.monotonic())  # the next round
    r = gate.decide(EvaluateOrder(validate_order(order(quantity=1.0, order_id="n2"), new), config=new), wait=1.0)
    assert r.decision == "allow"


def test_a_lapsed_reduction_lease_closes_nothing_while_the_store_is_down(clock):
    """The decision for an outage: reductions go on within the lease held, until its TTL."""
    cfg = shared_config()
    held = account_state(positions=(Position("SOLUSDT", "binance", 3.0, 100.0),))
    st_ = confirmed(fresh_state(clock, held), clock, reduction(3.0, 3.0, until=clock.monotonic() + 30.0))
    clock.advance(cfg.store.max_age_s + 0.01)  # the store silent: opening orders block
    st_.ess_received = st_.signal_received = clock.monotonic()
    st_.put_account(held, clock.monotonic())
    assert decide(order(side="sell", quantity=1.0, order_id="in-ttl"), st_, cfg, clock).decision == "allow"
    clock.advance(30.0)  # past the lease's TTL: the database may have given it to another instance
    st_.ess_received = st_.signal_received = clock.monotonic()
    st_.put_account(held, clock.monotonic())
    r = decide(order(side="sell", quantity=1.0, order_id="past-ttl"), st_, cfg, clock)
    assert (r.decision, r.reason_code) == ("block", RC.BUDGET_UNAVAILABLE), r.reason
