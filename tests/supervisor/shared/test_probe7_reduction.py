"""Probe 7: a position's reduction budget leased like a cap (reduce:ACCOUNT/SYMBOL/EXCHANGE),
attacked through real Gates and keepers on one real PostgreSQL (no sleeps: FakeClock and
explicit keeper rounds)."""

from __future__ import annotations

import itertools

from supervisor.clock import FakeClock
from supervisor.core.messages import AccountState, EvaluateOrder, Fill, OrderOutcome, Position
from supervisor.core.orders import validate_order
from tests.helpers import make_config
from tests.supervisor.shared.test_invariant import PRICE, RICH, Instance

_ids = itertools.count()


def desk_config(dsn: str, **store):
    """The shared-store config with the default lease_slice_pct (10 %) unless given."""
    return make_config(
        store={"backend": "postgresql", "dsn": dsn, **store},
        gate={"max_orders_per_s": 10**6, "max_messages_per_s": 10**6, "max_repeats": 10**6},
        accounts={
            "main": {"exchange": "binance", "capital_profile": "normal", "max_notional_usd": 1_000_000.0},
            "tiny": {"exchange": "binance", "capital_profile": "aggressive"},
        },
        exchanges={"binance": {"max_notional_usd": 10_000_000.0}, "bybit": {}},
    )


def snapshot(inst: Instance, clock: FakeClock, qty: float, symbol: str = "SOLUSDT", price: float = PRICE) -> None:
    held = (Position(symbol, "binance", qty, price),) if qty else ()
    inst.gate.post(AccountState("main", RICH, held, RICH, RICH), clock.monotonic())


def close(inst: Instance, cfg, qty: float, side: str = "sell", symbol: str = "SOLUSDT", price: float = PRICE):
    oid = f"close-{inst.name}-{next(_ids)}"
    raw = {"order_id": oid, "account": "main", "exchange": "binance", "strategy_id": "trend_v2",
           "symbol": symbol, "side": side, "quantity": qty, "price": price, "leverage": 1.0}  # fmt: skip
    valid = validate_order(raw, cfg)
    assert not isinstance(valid, str), valid
    r = inst.gate.decide(EvaluateOrder(valid, config=cfg), wait=5.0)
    assert r is not None and not isinstance(r, str)
    return oid, r


# -- 1. liveness: the last lot of a position can never be closed by anyone -------------------------
def test_last_lot_of_a_position_can_be_closed_when_another_instance_holds_an_idle_slice(migrated_dsn):
    """Two instances that have both closed part of one position keep a slice each of its reduction
    budget for good (each renews at least lease_slice_pct of |position| every round, and the DB
    grants each only what the other does not hold). Neither ever holds a whole lot: closing the
    last lot (0.1 SOL, the lot step) is scaled below the lot ("holds 0.01") and blocked
    BUDGET_UNAVAILABLE, round after round, through either instance (one round each between
    tries): the desk cannot flatten while both run."""
    cfg = desk_config(migrated_dsn)
    clock = FakeClock()
    a, b = Instance("a", cfg, clock, migrated_dsn), Instance("b", cfg, clock, migrated_dsn)
    for inst in (a, b):
        snapshot(inst, clock, 0.2)
        assert inst.keeper.round()
    # a closes one lot (its first try asks for the budget, the retry passes), filled.
    assert close(a, cfg, 0.1)[1].decision == "block"
    assert a.keeper.round()
    oid, r = close(a, cfg, 0.1)
    assert r.decision == "allow", r.reason
    a.gate.post(Fill("main", "binance", "SOLUSDT", "sell", 0.1, PRICE, oid), clock.monotonic())
    a.gate.post(OrderOutcome(oid, "filled", 0.1, "main"), clock.monotonic())
    for inst in (a, b):
        snapshot(inst, clock, 0.1)
    # The desk flattens: 0.1 SOL left. It retries through b, then through a, rounds in between.
    outcomes = []
    for _ in range(8):
        for inst in (a, b):
            assert inst.keeper.round()
        for inst in (b, a):
            _, r = close(inst, cfg, 0.1)
            outcomes.append((inst.name, r.decision, r.reason_code.value, r.reason))
            if r.decision != "block":
                return
    raise AssertionError(f"the last 0.1 SOL could never be closed: {outcomes[-4:]}")


# -- 2. a partial fill frees reduction budget the position no longer holds -------------------------
def test_a_partial_fill_does_not_let_the_same_quantity_be_closed_twice(migrated_dsn):
    """a holds the whole reduction budget of a 10 SOL long and sells 10; 4 fill. The position at
    the exchange is 6 with 6 still to close in flight: nothing more may be closed. (The probe
    posted the Fill alone, the book still at 10: then 4 looked free again. The account tracker
    sends the moved position first and the Fill after it, as here: actors/account_tracker.py.)"""
    cfg = desk_config(migrated_dsn)
    clock = FakeClock()
    a = Instance("a", cfg, clock, migrated_dsn)
    snapshot(a, clock, 10.0)
    assert a.keeper.round()
    assert close(a, cfg, 10.0)[1].decision == "block"  # no lease yet: asks
    assert a.keeper.round()
    oid, r = close(a, cfg, 10.0)
    assert r.decision == "allow", r.reason
    a.gate.post(AccountState("main", RICH, (Position("SOLUSDT", "binance", 6.0, PRICE),), RICH, RICH,
                             refreshed=False), clock.monotonic())  # fmt: skip
    a.gate.post(Fill("main", "binance", "SOLUSDT", "sell", 4.0, PRICE, oid), clock.monotonic())
    a.gate.post(OrderOutcome(oid, "partially_filled", 4.0, "main"), clock.monotonic())
    oid2, second = close(a, cfg, 4.0)
    if second.decision != "block":  # then as an order that opens a short: never as a reduction
        booked = a.gate._state.reservations[("main", oid2)]
        assert booked.reducing_qty == 0.0 and booked.notional == second.adjusted_quantity * PRICE, booked


# -- 3. micro-unit rounding: a whole position is never closable in one order -----------------------
def test_closing_a_whole_position_of_1_001_btc_is_not_scaled(migrated_dsn):
    """The lease is granted in units of round(|position| * 1e6) (to_units: 1001000 for 1.001) but
    spent against int(|position| * 1e6) (qty_units: 1000999): the position looks 1 unit "shrunk"
    since the grant, and the whole lease covers 1.000999 BTC. The only instance, holding the whole
    position's budget, scales "close all 1.001 BTC" to 1.000 (lot 0.001): dust is left and another
    order and round are needed."""
    cfg = desk_config(migrated_dsn)
    clock = FakeClock()
    a = Instance("a", cfg, clock, migrated_dsn)
    snapshot(a, clock, 1.001, "BTCUSDT", 100.0)
    assert a.keeper.round()
    assert close(a, cfg, 1.001, symbol="BTCUSDT", price=100.0)[1].decision == "block"  # asks
    assert a.keeper.round()  # the round the refusal woke: asks for what was wanted
    _, r = close(a, cfg, 1.001, symbol="BTCUSDT", price=100.0)
    assert (r.decision, r.adjusted_quantity) == ("allow", 1.001), (r.decision, r.adjusted_quantity, r.reason)


# -- 4. the demand lasts one round: a retry after the next poll is scaled to the slice -------------
def test_the_only_instance_can_close_its_whole_position_after_two_rounds(migrated_dsn):
    """One instance, nobody else wants the position. "Close all 10 SOL" is refused (no lease
    yet) and wakes the keeper; its round asks for 10 and gets it. The next periodic round
    (store.poll_interval_s = 0.5 s later) sees no new refusal: demand 0, so it asks for
    reserved + lease_slice_pct (1 SOL) and gives the rest back. The client's retry one second
    later is scaled to 1 SOL: each retry after two rounds closes a tenth of what is left."""
    cfg = desk_config(migrated_dsn)
    clock = FakeClock()
    a = Instance("a", cfg, clock, migrated_dsn)
    snapshot(a, clock, 10.0)
    assert a.keeper.round()
    assert close(a, cfg, 10.0)[1].decision == "block"  # no lease yet: asks
    assert a.keeper.round()  # woken by the refusal
    clock.advance(cfg.store.poll_interval_s)
    assert a.keeper.round()  # the next poll
    _, r = close(a, cfg, 10.0)
    assert (r.decision, r.adjusted_quantity) == ("allow", 10.0), (r.decision, r.adjusted_quantity, r.reason)


# -- 5. shared halt: a halt through an instance that has not yet read a resume brings it back -------
def test_a_halt_through_an_instance_not_yet_round_since_a_resume_does_not_bring_back_the_resumed_halt(
    migrated_dsn, tmp_path, clock
):
    """An incident: alice's full halt (through a) is resumed through b; within the same round
    period bob puts a reduce-only halt through a so that the desk can flatten. a has not had a
    round since b's resume, so its controls still hold alice's halt, and its write merges "its"
    halts (alice's and bob's) over the row: alice's resumed halt is back on every instance, and
    every order, closing ones too, blocks ESS_HALT_ACTIVE."""
    from supervisor.core.reasons import ReasonCode as RC
    from tests.helpers import feed, order
    from tests.supervisor.shared.test_instances import RICH as SUP_RICH
    from tests.supervisor.shared.test_instances import started

    a, b = started(migrated_dsn, tmp_path, clock, "a", "b")
    try:
        for s in (a, b):
            feed(s, equity=SUP_RICH)
            assert s.shared.keeper.round()
        a.halt("venue outage", by="alice")
        assert b.shared.keeper.round()
        from supervisor.shared.db import SharedStoreError

        real = a.shared.store.round

        def slow(*args, **kw):  # a's rounds do not get through for a moment (LISTEN's too)
            raise SharedStoreError("statement timeout")

        a.shared.store.round = slow
        b.resume(by="alice", reason="venue back")  # lifted everywhere (the row)
        a.halt("flatten only", by="bob", mode="reduce_only")  # a's halt write gets through
        a.shared.store.round = real
        for s in (a, b, a, b):
            assert s.shared.keeper.round()
        for s in (a, b):
            halts = [(h["by"], h["mode"]) for h in s.state()["operator_halt"].get("halts", [])]
            r = s.evaluate(order(order_id=f"after-{s.config.instance.name}", quantity=0.1))
            assert r.reason_code is not RC.ESS_HALT_ACTIVE and halts == [("bob", "reduce_only")], (
                s.config.instance.name, halts, r.reason_code, r.reason)  # fmt: skip
    finally:
        a.stop()
        b.stop()
