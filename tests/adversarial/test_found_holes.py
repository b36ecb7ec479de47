"""One regression test per fail-open hole found by probing riskgate from outside.

Each was an order allowed that should not have been, or a fault the process
did not survive cleanly. The tests drive the real facade and actors.
"""

from __future__ import annotations

import contextlib
import math
import threading
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from supervisor import AccountSnapshot, Fill, OrderOutcome, Position, RiskSupervisor
from supervisor.core.gate_state import GateState
from supervisor.core.reasons import ReasonCode as RC
from tests.adversarial.hostile import LyingFloat, LyingStr, RaisingBool
from tests.helpers import GateHold, account_state, feed, make_config, order, signal

RICH = 10_000_000.0


@pytest.fixture
def sup(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as s:
        yield s


# -- 2: a reused order_id took a second slot against the caps ----------------------------


def test_a_reused_order_id_cannot_be_approved_twice_against_the_account_cap(sup):
    feed(sup, equity=RICH)  # account cap 50,000 USD; 250 SOL at 100 = 25,000 USD each
    results = [sup.evaluate(order(order_id="same", quantity=250.0)) for _ in range(6)]
    assert [r.decision for r in results] == ["allow"] + ["block"] * 5
    assert {r.reason_code for r in results[1:]} == {RC.DUPLICATE_ORDER}
    assert sup.health()["gate"]["reservations"] == 1
    second = sup.evaluate(order(order_id="other", quantity=250.0))
    third = sup.evaluate(order(order_id="third", quantity=250.0))
    assert second.decision == "allow" and third.decision == "block"  # 50,000 reached: 0 headroom


def test_order_ids_are_per_account_and_free_again_once_the_order_ended(sup):
    feed(sup, equity=RICH)
    a = sup.evaluate(order(order_id="o-1", quantity=1.0))
    b = sup.evaluate(order(order_id="o-1", quantity=1.0, account="bold", exchange="bybit"))
    assert (a.decision, b.decision) == ("allow", "allow")
    sup.report_fill(Fill("main", "binance", "SOLUSDT", "buy", 1.0, 100.0, "o-1"))
    sup.report_order_outcome(OrderOutcome("o-1", "filled", 1.0, account="main"))
    assert sup.evaluate(order(order_id="o-1", quantity=1.0)).decision == "allow"
    # bold's o-1 still holds its slot
    assert sup.evaluate(order(order_id="o-1", account="bold", exchange="bybit")).reason_code is RC.DUPLICATE_ORDER


def test_an_outcome_without_account_releases_only_an_unambiguous_id(sup):
    feed(sup, equity=RICH)
    sup.evaluate(order(order_id="x", quantity=1.0))
    sup.evaluate(order(order_id="x", quantity=1.0, account="bold", exchange="bybit"))
    sup.report_order_outcome(OrderOutcome("x", "cancelled"))  # which one? neither
    assert sup.health()["gate"]["reservations"] == 2
    sup.report_order_outcome(OrderOutcome("x", "cancelled", account="bold"))
    sup.report_order_outcome(OrderOutcome("x", "cancelled"))  # now only main holds x
    assert sup.health()["gate"]["reservations"] == 0


# -- 3: the exchange-wide exposure was a running float sum ------------------------------


@pytest.mark.parametrize("mark", [1e22, 1e308, math.inf, math.nan])
def test_one_accounts_huge_marks_cannot_corrupt_the_exchange_total(clock, mark):
    st = GateState()
    now = clock.monotonic()
    st.put_account(account_state("main", positions=(Position("SOLUSDT", "binance", 400.0, 100.0),)), now)
    st.put_account(account_state("tiny", positions=(Position("BTCUSDT", "binance", 1.0, mark),)), now)
    st.put_account(account_state("tiny"), now)  # then a clean snapshot: no positions
    assert st.exchange_in_use("binance") == 40_000.0


def test_an_unusable_snapshot_keeps_the_accounts_last_known_exposure(clock):
    st = GateState()
    now = clock.monotonic()
    st.put_account(account_state("tiny", positions=(Position("BTCUSDT", "binance", 1.0, 60_000.0),)), now)
    st.put_account(account_state("tiny", positions=(Position("BTCUSDT", "binance", math.nan, 60_000.0),)), now)
    assert st.exchange_in_use("binance") == 60_000.0 and not st.books["tiny"].usable


def test_implausible_pushed_snapshot_fails_the_account_closed_and_others_keep_their_cap(sup):
    feed(sup, equity=RICH)
    sup.report_account_snapshot(AccountSnapshot("tiny", RICH, (Position("BTCUSDT", "binance", 1.0, 100_000.0),)))
    state = sup.report_account_snapshot(AccountSnapshot("tiny", RICH, (Position("BTCUSDT", "binance", 1.0, 1e22),)))
    assert state is not None and "implausible" in (state.problem or "")
    r = sup.evaluate(order(account="tiny", quantity=0.1))
    assert r.reason_code is RC.ACCOUNT_STATE_STALE and "implausible" in r.reason
    # tiny's last known 100,000 still counts on binance (cap 200,000)
    sup.health()  # an ask: the gate has handled everything before it
    assert sup._runtime.gate._state.exchange_in_use("binance") == 100_000.0
    sup.report_account_snapshot(AccountSnapshot("main", 1e308))
    assert sup.evaluate(order(quantity=0.1)).reason_code is RC.ACCOUNT_STATE_STALE  # equity 1e308 refused


# -- 8: smaller holes ------------------------------------------------------------------


@pytest.mark.parametrize("field", ["symbol", "account", "strategy_id", "exchange", "side", "order_id"])
def test_a_10mb_string_is_refused_and_not_echoed(sup, field):
    feed(sup)
    with capture_logs() as logs:
        r = sup.evaluate(order(**{field: "X" * 10_000_000}))
    assert r.reason_code is RC.INVALID_ORDER and len(r.reason) < 200
    assert all(len(str(e)) < 1000 for e in logs)


@pytest.mark.parametrize("timeout", [math.nan, math.inf, 1e308, -1.0, 0.0, True, "1", RaisingBool()])
def test_an_unusable_timeout_is_refused_before_anything_is_booked(sup, timeout):
    feed(sup)
    r = sup.evaluate(order(), timeout=timeout)
    assert r.reason_code is RC.INVALID_ORDER and "timeout" in r.reason
    assert sup.health()["gate"]["reservations"] == 0


def test_an_async_unusable_timeout_is_refused_too(sup):
    import asyncio

    feed(sup)
    r = asyncio.run(sup.evaluate_async(order(), timeout=math.nan))
    assert r.reason_code is RC.INVALID_ORDER
    assert sup.health()["gate"]["reservations"] == 0


def test_lying_subclasses_are_judged_by_the_value_they_hold(sup):
    feed(sup)
    # claims quantity 1 (float() says 1.0); holds 1,000 SOL = 100,000 USD, over the 50,000 cap
    r = sup.evaluate(order(quantity=LyingFloat(1_000.0, claims=1.0)))
    assert (r.decision, r.reason_code) == ("scale_down", RC.SINGLE_TRADE_RISK)  # judged as 1,000, not 1
    # a side that says "buy" when lowered, but holds "sell": judged as the sell it is
    r = sup.evaluate(order(side=LyingStr("sell", claims="buy"), reduce_only=True))
    assert r.reason_code is RC.INVALID_ORDER  # a reduce-only sell with no position


def test_guarded_clients_send_the_values_the_gate_judged(sup):
    from supervisor import GuardedExchange
    from tests.supervisor.integrations.test_execution import FakeExchange

    feed(sup)
    ex = FakeExchange()
    guarded = GuardedExchange(ex, sup, account="main", exchange="binance", strategy_id="trend_v2")
    guarded.create_order(
        LyingStr("SOL/USDT", claims="BTC/USDT"),
        "limit",
        LyingStr("buy", claims="sell"),
        0.5,
        LyingFloat(100.0, claims=1.0),
    )
    symbol, _, side, _amount, price, _ = ex.calls[0]
    assert (type(symbol), symbol, type(side), side, type(price), price) == (str, "SOL/USDT", str, "buy", float, 100.0)


def test_snapshots_for_unconfigured_accounts_are_refused_counted_and_logged_once(sup):
    feed(sup)
    with capture_logs() as logs:
        results = [sup.report_account_snapshot(AccountSnapshot(f"ghost-{i % 3}", 1_000.0)) for i in range(300)]
    assert results == [None] * 300
    refused = [e for e in logs if e["event"] == "snapshot_refused_unknown_account"]
    assert len(refused) == 3
    tracker = sup.actor_ref("account_tracker").proxy()
    assert tracker.refused_snapshots.get(timeout=5) == 300
    assert len(tracker.latest().get(timeout=5)) == 3  # main, tiny, bold only


def test_hostile_fills_and_outcomes_change_nothing(sup):
    feed(sup, equity=RICH)
    sup.evaluate(order(order_id="f-1", quantity=250.0))
    sup.report_fill(Fill("main", "binance", "SOLUSDT", "buy", math.nan, 100.0, "f-1"))
    sup.report_fill(Fill("main", "binance", "SOLUSDT", "buy", 1e300, 1e300, "f-1"))
    sup.report_order_outcome(OrderOutcome(LyingStr("f-1", claims="f-2"), "weird"))  # type: ignore[arg-type]
    held, release = threading.Event(), threading.Event()
    sup.gate_ref.tell(GateHold(held, release))  # the gate is still alive and answering
    assert held.wait(5)
    release.set()
    assert sup.health()["gate"]["reservations"] == 1
    r = sup.evaluate(order(quantity=250.0))  # 25,000 reserved + 25,000 = the 50,000 cap: fits exactly
    assert r.decision == "allow"
    assert sup.evaluate(order(quantity=10.0)).decision == "block"


# -- found by a second probe, after the fixes above -------------------------------------


def _long_sol(sup: RiskSupervisor, qty: float = 10.0, equity: float = 10_000.0) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", 10_000.0, (Position("SOLUSDT", "binance", qty, 100.0),)))
    sup.report_account_snapshot(AccountSnapshot("main", equity, (Position("SOLUSDT", "binance", qty, 100.0),)))


def test_reductions_in_flight_count_against_what_a_later_order_may_reduce(sup):
    _long_sol(sup, equity=9_400.0)  # -6%: the day's limit is hit, only reductions pass
    sells = [sup.evaluate(order(side="sell", quantity=10.0, reduce_only=True, order_id=f"r{i}")) for i in range(5)]
    assert [r.decision for r in sells] == ["allow"] + ["block"] * 4
    assert {r.reason_code for r in sells[1:]} == {RC.INVALID_ORDER}  # would open a short: not a reduction
    plain = sup.evaluate(order(side="sell", quantity=10.0, order_id="plain"))
    assert plain.reason_code is RC.DAILY_LOSS_LIMIT  # treated as opening, so the loss limit applies
    sup.report_fill(Fill("main", "binance", "SOLUSDT", "sell", 4.0, 100.0, "r0"))  # 4 of 10 closed
    sup.report_order_outcome(OrderOutcome("r0", "cancelled", 4.0, account="main"))  # the rest cancelled
    assert sup.evaluate(order(side="sell", quantity=6.0, reduce_only=True, order_id="r9")).decision == "allow"


def test_a_resting_order_keeps_its_reservation_past_the_ttl(sup, clock):
    feed(sup, equity=RICH)
    assert sup.evaluate(order(order_id="rest", quantity=400.0)).decision == "allow"  # 40,000 of the 50,000 cap
    sup.report_order_outcome(OrderOutcome("rest", "open", account="main"))  # the exchange accepted it
    clock.advance(31.0)  # past reservation_ttl_s
    feed(sup, equity=RICH)
    r = sup.evaluate(order(order_id="next", quantity=400.0))
    assert (r.decision, r.adjusted_quantity) == ("scale_down", 100.0)  # only 10,000 left


def test_a_filled_outcome_without_its_fill_keeps_the_filled_notional_reserved(sup, clock):
    feed(sup, equity=RICH)
    assert sup.evaluate(order(order_id="f", quantity=400.0)).decision == "allow"
    sup.report_order_outcome(OrderOutcome("f", "filled", account="main"))  # no quantity, no fill reported
    r = sup.evaluate(order(order_id="g", quantity=400.0))
    assert (r.decision, r.adjusted_quantity) == ("scale_down", 100.0)  # the 40,000 still counts
    sup.report_order_outcome(OrderOutcome("g", "cancelled", account="main"))
    sup.report_fill(Fill("main", "binance", "SOLUSDT", "buy", 400.0, 100.0, "f"))  # the fill arrives late
    sup.report_order_outcome(OrderOutcome("f", "filled", 400.0, account="main"))
    r = sup.evaluate(order(order_id="h", quantity=400.0))
    assert (r.decision, r.adjusted_quantity) == ("scale_down", 100.0)  # the position holds it now


@pytest.mark.parametrize(
    "params", [{"quantity": "900"}, {"side": "SELL", "price": "0.01"}, {"symbol": "BTCUSDT"}, {"quoteOrderQty": 1e6}]
)
def test_ccxt_params_cannot_change_what_the_gate_judged(sup, params):
    from supervisor import GuardedExchange, OrderBlocked
    from tests.supervisor.integrations.test_execution import FakeExchange

    feed(sup)
    ex = FakeExchange(status="open")  # it rests: its reservation stays
    guarded = GuardedExchange(ex, sup, account="main", exchange="binance", strategy_id="trend_v2")
    with pytest.raises(OrderBlocked) as info:
        guarded.create_order("SOL/USDT", "limit", "buy", 1.0, 100.0, params=params)
    blocked = info.value.result
    assert blocked.reason_code is RC.INVALID_ORDER and "not allowed behind the gate" in blocked.reason
    assert ex.calls == []
    allowed = {"reduceOnly": False, "clientOrderId": "c-1", "timeInForce": "GTC", "postOnly": True}
    guarded.create_order("SOL/USDT", "limit", "buy", 1.0, 100.0, params=allowed)
    assert ex.calls[0][5] == allowed
    dup = sup.evaluate(order(order_id="c-1"))  # the client order id is the gate's order id
    assert dup.reason_code is RC.DUPLICATE_ORDER


class _Adapter:
    """An adapter whose answers carry `filled_qty` in the form the exchange's SDK gives it."""

    def __init__(self, form) -> None:
        self.form, self.calls = form, 0

    def submit_order(self, symbol, side, quantity, price, leverage=None):
        self.calls += 1
        return {"order_id": f"x{self.calls}", "filled_qty": self.form(quantity), "avg_price": price, "status": "filled"}


@pytest.mark.parametrize(
    "form",
    [lambda q: Decimal(str(q)), str, lambda q: "garbage", lambda q: None],
    ids=["decimal", "str", "junk", "none"],
)
def test_an_adapters_fill_in_any_form_never_frees_the_cap(sup, form):
    from supervisor import GuardedAdapter, OrderBlocked

    feed(sup, equity=RICH)
    guarded = GuardedAdapter(_Adapter(form), sup, account="main", exchange="binance", strategy_id="trend_v2")
    for _ in range(4):  # 400 SOL at 100 = 40,000 each, against a 50,000 cap
        with contextlib.suppress(OrderBlocked):
            guarded.submit_order("SOLUSDT", "buy", 400.0, 100.0)
    tracked = sup.actor_ref("account_tracker").proxy().latest().get(timeout=5)
    in_positions = sum(abs(p.quantity) * p.mark_price for s in tracked if s.account == "main" for p in s.positions)
    held = sup._runtime.gate._state.reserved_usd("main")
    assert in_positions + held >= 50_000 - 1e-6  # what was sent is counted, by a position or as held notional
    assert in_positions <= 50_000 + 1e-6
    assert sup.evaluate(order(quantity=400.0)).decision == "block"  # the cap is used up


def test_stale_out_of_order_or_future_snapshots_are_not_applied(sup, clock):
    from datetime import timedelta

    feed(sup)
    sup.report_account_snapshot(AccountSnapshot("main", 9_000.0, (), clock.now()))  # -10%: the day's limit
    assert sup.evaluate(order()).reason_code is RC.DAILY_LOSS_LIMIT
    assert sup.report_account_snapshot(AccountSnapshot("main", 10_000.0, (), clock.now() - timedelta(days=3))) is None
    assert (
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0, (), clock.now() - timedelta(seconds=1))) is None
    )
    assert sup.evaluate(order()).reason_code is RC.DAILY_LOSS_LIMIT  # neither the stale nor the earlier one applied
    ahead = sup.report_account_snapshot(AccountSnapshot("main", 10_000.0, (), clock.now() + timedelta(days=3)))
    assert ahead is not None and "future" in (ahead.problem or "")
    assert sup.evaluate(order()).reason_code is RC.ACCOUNT_STATE_STALE


def test_a_pushed_clear_never_lifts_another_sources_halt(sup):
    from supervisor import EssSourceStatus, EssState

    feed(sup)
    sup.report_ess_active(True, "kill switch", source="kill_switch_file")
    sup.report_ess_active(False, source="host")  # another source says all clear
    assert sup.evaluate(order()).reason_code is RC.ESS_HALT_ACTIVE
    lying = EssState(active=False, sources=(EssSourceStatus("desk", True, "drill"),))  # `active` contradicts
    sup.report_ess_state(lying)
    sup.report_ess_active(False, source="kill_switch_file")
    r = sup.evaluate(order())
    assert r.reason_code is RC.ESS_HALT_ACTIVE and "drill" in r.reason


def test_an_unusable_snapshot_stays_failed_closed_across_a_tracker_restart(sup):
    feed(sup)
    sup.report_account_snapshot(AccountSnapshot("main", 5e12))  # implausible
    tracker = sup.actor_ref("account_tracker")
    tracker.stop()
    sup.check_actors()  # restarted
    sup.report_fill(Fill("main", "binance", "SOLUSDT", "buy", 1.0, 100.0))
    assert sup.evaluate(order()).reason_code is RC.ACCOUNT_STATE_STALE


def test_a_gate_actor_replaced_while_stalled_keeps_every_booking_and_approves_nothing_it_had_queued():
    """Its actor stalls; callers are decided meanwhile, supervision starts a new owner of
    the same gate (nothing copied: X's booking still counts against Y), and the order
    handed to the stalled actor is refused when it wakes."""
    import threading

    from supervisor.channels.reply import ReplySlot
    from supervisor.core.messages import EvaluateOrder
    from supervisor.core.orders import validate_order

    cfg = make_config(
        supervision={"heartbeat_timeout_s": 1.0, "check_interval_s": 1000.0},  # a loaded CI core starts actors slowly
        gate={"evaluate_timeout_s": 5.0},
        risk_v3={"timeout_s": 0.1},
        ess={"timeout_s": 0.1},
        accounts={"timeout_s": 0.1},
    )
    with RiskSupervisor(cfg, poll_upstreams=False) as sup:  # real time: the heartbeat's wait is real
        feed(sup, equity=RICH)
        held, release = threading.Event(), threading.Event()
        old = sup.gate_ref
        old.tell(GateHold(held, release, timeout_s=30, lock=False))
        assert held.wait(5)
        queued: ReplySlot = ReplySlot()
        valid = validate_order(order(order_id="Q", quantity=100.0), sup.config)
        old.tell(EvaluateOrder(valid, queued))  # type: ignore[arg-type]
        assert sup.evaluate(order(order_id="X", quantity=400.0)).decision == "allow"  # 40,000 of 50,000
        sup.check_actors()  # no answer to the ping: given up on, a new owner starts
        assert sup.gate_ref is not old
        y = sup.evaluate(order(order_id="Y", quantity=400.0))
        assert (y.decision, y.adjusted_quantity) == ("scale_down", 100.0)  # X still counted
        release.set()  # the old actor wakes up with Q still queued
        answer = queued.wait(10)
        assert answer is not None and answer.reason_code is RC.GATE_UNAVAILABLE


@pytest.mark.parametrize(("side", "stop"), [("buy", 100.01), ("buy", 100.0), ("sell", 99.99), ("sell", 100.0)])
def test_a_stop_on_the_wrong_side_of_the_price_is_invalid(sup, side, stop):
    feed(sup)
    r = sup.evaluate(order(side=side, price=100.0, stop_price=stop, quantity=1.0))
    assert r.reason_code is RC.INVALID_ORDER and "stop_price" in r.reason


def test_a_fill_naming_another_exchange_than_the_accounts_is_refused(sup):
    feed(sup)
    assert sup.report_fill(Fill("main", "Binance", "SOLUSDT", "buy", 1.0, 100.0)) is None
    assert sup.report_fill(Fill("main", "binance", "SOLUSDT", "buy", 1.0, 100.0)) is not None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ttl_s": "300"}, "ttl_s"),
        ({"ttl_s": math.inf}, "ttl_s"),
        ({"ttl_s": 1e300}, "ttl_s"),
        ({"ttl_s": -5.0}, "ttl_s"),
        ({"ttl_s": math.nan}, "ttl_s"),
        ({"ttl_s": True}, "ttl_s"),
        ({"ttl_s": 901.0}, "ttl_s"),  # above overrides.max_ttl_s
        ({"reason": " "}, "reason"),
        ({"reason": "flat\nten"}, "reason"),
        ({"reason": 7}, "reason"),
        ({"account": "ghost"}, "account"),
        ({"account": ["main"]}, "account"),
    ],
)
def test_an_override_that_cannot_be_read_is_refused_and_the_gate_lives(sup, fields, field):
    from supervisor.ops.controls import ControlError

    feed(sup)
    proposal = {"account": "main", "reason": "flatten", "ttl_s": 300.0, **fields}
    with pytest.raises(ControlError, match=field):
        sup.propose_override(proposal["account"], proposal["reason"], proposal["ttl_s"], by="alice")
    assert sup.overrides() == []
    assert sup.evaluate(order()).decision == "allow"


@pytest.mark.parametrize(
    "changes",
    [
        {"ess_tier_recommendation": "EMERGENCY", "ess_action_required": False},
        {"ess_tier_recommendation": "HALT_ALL"},
        {"ess_action_required": 0},
        {"risk_level": LyingStr("CRITICAL", claims="INFO")},
    ],
)
def test_a_pushed_signal_object_is_held_to_the_parsers_rules(sup, changes):
    from dataclasses import replace

    from supervisor.sources.upstream import UpstreamError

    feed(sup)
    bad = replace(signal("INFO", sup.clock.now()), **changes)
    if isinstance(changes.get("risk_level"), LyingStr):
        sup.report_risk_signal(bad)  # read as the CRITICAL it holds
        assert sup.evaluate(order()).reason_code is RC.GLOBAL_RISK_CRITICAL
        return
    with pytest.raises(UpstreamError):
        sup.report_risk_signal(bad)


def test_hostile_json_bodies_fail_as_named_causes():
    import httpx

    from supervisor.sources.http import FetchError, fetch_json

    bodies = {
        b'{"risk_level": "CRITICAL", "risk_level": "INFO"}': "ambiguous_json",
        b'{"active": true, "status": "active", "active": false}': "ambiguous_json",
        b"[" * 200_000: "not_json",
    }
    for body, kind in bodies.items():
        transport = httpx.MockTransport(lambda request, body=body: httpx.Response(200, content=body))
        with httpx.Client(transport=transport) as client, pytest.raises(FetchError) as info:
            fetch_json(client, "http://upstream/x", 1.0)
        assert info.value.kind == kind


def test_a_timestamp_that_overflows_is_an_upstream_error():
    from supervisor.sources.upstream import UpstreamError, parse_timestamp

    with pytest.raises(UpstreamError, match="usable"):
        parse_timestamp("0001-01-01T00:00:00+01:00")
