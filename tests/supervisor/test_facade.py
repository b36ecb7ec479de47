"""RiskSupervisor end to end on real actor threads, time driven by FakeClock.

Includes the original system's thirteen scenarios, re-expressed: the one that
fell back to allowing when Risk v3 was unavailable now blocks.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from supervisor import AccountSnapshot, Fill, OrderOutcome, OrderRequest, Position, RiskSupervisor
from supervisor.core.messages import EvaluateOrder
from supervisor.core.orders import validate_order
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import GateHold, make_config, order, signal


def valid(raw: dict) -> OrderRequest:
    out = validate_order(raw, make_config())
    assert isinstance(out, OrderRequest), out
    return out


def feed(sup: RiskSupervisor, level: str = "INFO", equity: float = 10_000.0, positions=(), **sig) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal(level, sup.clock.now(), **sig))
    for name in sup.config.accounts.accounts:
        sup.report_account_snapshot(AccountSnapshot(name, equity, tuple(positions)))


@pytest.fixture
def sup(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as s:
        yield s


# -- the thirteen scenarios ------------------------------------------------


def test_1_ess_halt_blocks_everything(sup):
    feed(sup)
    sup.report_ess_active(True, "drawdown")
    r = sup.evaluate(order())
    assert (r.decision, r.reason_code, r.ess_active) == ("block", RC.ESS_HALT_ACTIVE, True)


def test_2_global_risk_critical_blocks(sup):
    feed(sup, "CRITICAL")
    assert sup.evaluate(order()).reason_code is RC.GLOBAL_RISK_CRITICAL


def test_3_risk_v3_ess_action_required_blocks(sup):
    feed(sup, ess_action_required=True)
    assert sup.evaluate(order()).reason_code is RC.RISK_V3_ESS_ACTION_REQUIRED


def test_4_strategy_not_whitelisted_blocks(sup):
    feed(sup)
    r = sup.evaluate(order(account="tiny", strategy_id="mean_rev", quantity=0.1))
    assert r.reason_code is RC.STRATEGY_NOT_ALLOWED


def test_5_leverage_over_limit_blocks(sup):
    feed(sup)
    assert sup.evaluate(order(leverage=4.0)).reason_code is RC.LEVERAGE_EXCEEDS_LIMIT


def test_6_single_trade_risk_is_computed_and_scales_or_blocks(sup):
    feed(sup)
    r = sup.evaluate(order(quantity=2.5))
    assert (r.decision, r.reason_code, r.adjusted_quantity) == ("scale_down", RC.SINGLE_TRADE_RISK, 1.0)
    sup.report_account_snapshot(AccountSnapshot("main", 500.0))  # 1% = 5 USD: below min_qty after scaling
    r = sup.evaluate(order(quantity=2.5))
    assert (r.decision, r.reason_code) == ("block", RC.DAILY_LOSS_LIMIT)  # and the day's loss is caught first


def test_7_happy_path_allows(sup):
    feed(sup)
    r = sup.evaluate(OrderRequest(**order()))
    assert (r.decision, r.reason_code, r.adjusted_quantity) == ("allow", RC.ALL_CHECKS_PASSED, 1.0)


def test_8_risk_v3_unavailable_blocks_instead_of_falling_back(sup, clock):
    sup.report_ess_active(False)
    sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
    assert sup.evaluate(order()).reason_code is RC.RISK_STATE_STALE  # never arrived
    feed(sup)
    clock.advance(10.5)  # service went away: no signal for longer than max_age_s
    sup.report_ess_active(False)
    sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
    assert sup.evaluate(order()).reason_code is RC.RISK_STATE_STALE


def test_9_and_11_gate_not_started_or_stopped_gives_gate_unavailable(clock):
    sup = RiskSupervisor(make_config(), clock=clock, poll_upstreams=False)
    r = sup.evaluate(order())
    assert (r.decision, r.reason_code) == ("block", RC.GATE_UNAVAILABLE)
    sup.start()
    feed(sup)
    assert sup.evaluate(order()).decision == "allow"
    sup.stop()
    assert sup.evaluate(order()).reason_code is RC.GATE_UNAVAILABLE


def test_9b_dead_gate_gives_gate_unavailable(sup):
    feed(sup)
    sup.gate_ref.stop()
    r = sup.evaluate(order())
    assert (r.decision, r.reason_code) == ("block", RC.GATE_UNAVAILABLE)


def test_10_a_plain_mapping_is_accepted(sup):
    feed(sup)
    assert sup.evaluate(dict(order(), side="BUY")).decision == "allow"


def test_12_micro_vs_aggressive_profiles(sup):
    feed(sup, equity=100_000.0)
    micro = sup.evaluate(order(account="tiny", leverage=2.0, quantity=0.1))
    bold = sup.evaluate(order(account="bold", exchange="bybit", leverage=2.0, quantity=0.1))
    assert (micro.reason_code, bold.decision) == (RC.LEVERAGE_EXCEEDS_LIMIT, "allow")
    # 1 SOL = 100 USD: 0.1% of 100k. Micro allows 0.2% (2 SOL), aggressive 2% (20 SOL).
    micro = sup.evaluate(order(account="tiny", quantity=5.0))
    bold = sup.evaluate(order(account="bold", exchange="bybit", quantity=5.0))
    assert (micro.decision, micro.adjusted_quantity) == ("scale_down", 2.0)
    assert (bold.decision, bold.adjusted_quantity) == ("allow", 5.0)


@pytest.mark.parametrize("level", ["INFO", "WARNING", "CRITICAL"])
def test_13_risk_level_is_carried_into_the_result(sup, level):
    feed(sup, level)
    assert sup.evaluate(order(quantity=0.5)).risk_level == level


# -- fail closed -------------------------------------------------------------


def test_before_any_state_every_order_blocks_source_by_source(sup):
    assert sup.evaluate(order()).reason_code is RC.ESS_STATE_STALE
    sup.report_ess_active(False)
    assert sup.evaluate(order()).reason_code is RC.RISK_STATE_STALE
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    assert sup.evaluate(order()).reason_code is RC.ACCOUNT_STATE_STALE
    sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
    assert sup.evaluate(order()).decision == "allow"


@pytest.mark.parametrize(
    ("source", "max_age", "code"),
    [("ess", 3.0, RC.ESS_STATE_STALE), ("risk", 10.0, RC.RISK_STATE_STALE), ("account", 60.0, RC.ACCOUNT_STATE_STALE)],
)
def test_each_source_aging_past_its_limit_blocks_and_fresh_state_allows_again(sup, clock, source, max_age, code):
    refresh = {
        "ess": lambda: sup.report_ess_active(False),
        "risk": lambda: sup.report_risk_signal(signal("INFO", clock.now())),
        "account": lambda: sup.report_account_snapshot(AccountSnapshot("main", 10_000.0)),
    }
    feed(sup)
    clock.advance(max_age)  # at the limit: still fresh
    for name, push in refresh.items():
        if name != source:
            push()
    assert sup.evaluate(order(quantity=0.1)).decision == "allow"
    clock.advance(0.01)
    for name, push in refresh.items():
        if name != source:
            push()
    r = sup.evaluate(order(quantity=0.1))
    assert (r.decision, r.reason_code) == ("block", code)
    refresh[source]()
    assert sup.evaluate(order(quantity=0.1)).decision == "allow"


def test_unknown_ess_reading_blocks(sup):
    feed(sup)
    sup.report_ess_active(None, "status endpoint unreadable")
    assert sup.evaluate(order()).reason_code is RC.ESS_STATE_STALE


def test_ess_halt_reaches_orders_already_queued_at_the_gate(sup):
    feed(sup)
    held, release = threading.Event(), threading.Event()
    sup.gate_ref.tell(GateHold(held, release))
    assert held.wait(5)
    queued = [sup.gate_ref.ask(EvaluateOrder(valid(order(quantity=0.1))), block=False) for _ in range(5)]
    sup.report_ess_active(True, "kill switch")  # sent after the five evaluations
    release.set()
    results = [f.get(timeout=5) for f in queued]
    assert [r.reason_code for r in results] == [RC.ESS_HALT_ACTIVE] * 5


def test_ask_timeout_gives_gate_unavailable_and_the_late_answer_books_nothing():
    # The caller's timeout is real time, so this one runs on the system clock.
    with RiskSupervisor(make_config(), poll_upstreams=False) as sup:
        feed(sup)
        held, release = threading.Event(), threading.Event()
        sup.gate_ref.tell(GateHold(held, release))
        assert held.wait(5)
        r = sup.evaluate(order(), timeout=0.05)
        assert (r.decision, r.reason_code) == ("block", RC.GATE_UNAVAILABLE)
        release.set()
        health = sup.health()
        assert health["gate"]["reservations"] == 0
        assert health["gate"]["decisions"] == {"GATE_UNAVAILABLE": 1}


def test_internal_error_in_gate_blocks_and_gate_survives(sup, monkeypatch):
    import supervisor.gate

    feed(sup)

    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    with monkeypatch.context() as m:  # not monkeypatch.undo(): that would also undo conftest's chdir
        m.setattr(supervisor.gate, "invalid_order", broken)
        m.setattr(supervisor.gate, "decide", broken)
        r = sup.evaluate(order())
        assert (r.decision, r.reason_code) == ("block", RC.GATE_UNAVAILABLE)
    assert sup.evaluate(order()).decision == "allow"


# -- reservations, fills, rate -------------------------------------------------


def test_reservation_held_until_outcome_or_ttl(sup, clock):
    rich = 10_000_000.0
    feed(sup, equity=rich)
    first = sup.evaluate(order(quantity=300.0, order_id="A"))  # 30,000 of the 50,000 cap
    assert first.decision == "allow"
    second = sup.evaluate(order(quantity=300.0, order_id="B"))
    assert (second.decision, second.reason_code, second.adjusted_quantity) == (
        "scale_down",
        RC.ACCOUNT_EXPOSURE_LIMIT,
        200.0,
    )
    sup.report_order_outcome(OrderOutcome("A", "cancelled"))
    sup.report_order_outcome(OrderOutcome("B", "rejected"))
    assert sup.evaluate(order(quantity=300.0, order_id="C")).decision == "allow"
    assert sup.evaluate(order(quantity=300.0, order_id="D")).decision == "scale_down"
    clock.advance(30.0)  # both reservations reach their TTL
    feed(sup, equity=rich)
    assert sup.evaluate(order(quantity=500.0, order_id="E")).decision == "allow"


def test_fill_moves_position_and_counts_toward_open_positions(sup):
    feed(sup, equity=1_000_000.0, positions=[Position(f"X{i}USDT", "binance", 1.0, 10.0) for i in range(4)])
    r = sup.evaluate(order(quantity=10.0, order_id="F1"))
    assert r.decision == "allow"
    state = sup.report_fill(Fill("main", "binance", "SOLUSDT", "buy", 10.0, 100.0, order_id="F1"))
    assert any(p.symbol == "SOLUSDT" and p.quantity == 10.0 for p in state.positions)
    sup.report_order_outcome(OrderOutcome("F1", "filled", 10.0))
    r = sup.evaluate(order(symbol="ETHUSDT", quantity=1.0, price=3000.0))
    assert r.reason_code is RC.MAX_OPEN_POSITIONS  # 4 + SOL = 5
    assert sup.evaluate(order(side="sell", quantity=10.0)).decision == "allow"  # closing is fine


def test_order_rate_window_per_account(sup, clock):
    feed(sup, equity=1_000_000.0)
    for _ in range(5):
        assert sup.evaluate(order(quantity=0.1)).decision == "allow"
    assert sup.evaluate(order(quantity=0.1)).reason_code is RC.ORDER_RATE_EXCEEDED
    clock.advance(1.0)
    feed(sup, equity=1_000_000.0)
    assert sup.evaluate(order(quantity=0.1)).decision == "allow"


def test_override_lets_reduce_only_through_a_halt_and_is_logged(sup):
    feed(sup, positions=[Position("SOLUSDT", "binance", 3.0, 100.0)])
    sup.report_ess_active(True, "drawdown")
    reduce = order(side="sell", quantity=3.0, reduce_only=True)
    assert sup.evaluate(reduce).reason_code is RC.ESS_HALT_ACTIVE
    proposal = sup.propose_override("main", "flatten SOL", 300.0, by="alice")
    sup.approve_override(proposal.id, by="cro@desk")
    r = sup.evaluate(reduce)
    assert (r.decision, r.reason_code) == ("allow", RC.OVERRIDE_APPLIED)
    assert sup.evaluate(order(quantity=0.1)).reason_code is RC.ESS_HALT_ACTIVE


# -- concurrency and asyncio -------------------------------------------------------


def test_eight_threads_racing_at_the_exposure_cap_never_exceed_it(clock):
    cfg = make_config(gate={"max_orders_per_s": 100_000})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, equity=100_000_000.0)
        start = threading.Barrier(8)

        def trader(n: int) -> list:
            start.wait(5)
            return [sup.evaluate(order(quantity=7.3, order_id=f"t{n}-{i}")) for i in range(40)]

        with ThreadPoolExecutor(8) as pool:
            results = [r for batch in pool.map(trader, range(8)) for r in batch]
    approved = sum(r.adjusted_quantity * 100.0 for r in results if r.decision != "block")
    assert len(results) == 320
    assert approved <= 50_000.0 + 1e-6
    assert approved >= 50_000.0 - 10.0  # the cap is used, down to one lot step
    assert any(r.decision == "block" for r in results) and any(r.decision == "scale_down" for r in results)


def test_evaluate_async_does_not_block_the_event_loop(sup):
    feed(sup)
    held, release = threading.Event(), threading.Event()
    sup.gate_ref.tell(GateHold(held, release))
    assert held.wait(5)

    async def scenario():
        pending = asyncio.ensure_future(sup.evaluate_async(order(), timeout=5))
        ticks = 0
        while ticks < 3:  # the loop keeps running while the gate is busy
            await asyncio.sleep(0)
            ticks += 1
        assert not pending.done()
        release.set()
        return await pending, ticks

    result, ticks = asyncio.run(scenario())
    assert (result.decision, ticks) == ("allow", 3)


def test_evaluate_async_without_a_running_loop_fails_before_deciding(sup):
    """Driven by hand (no asyncio loop running), it raises at once: nothing decided, nothing booked,
    whether the gate's lock is free or not."""
    feed(sup)
    coro = sup.evaluate_async(order(order_id="no-loop"))
    with pytest.raises(RuntimeError, match="no running event loop"):
        coro.send(None)
    assert sup.evaluate(order(order_id="no-loop")).decision == "allow"  # not a duplicate: never decided


def test_evaluate_async_unavailable_and_timeout(clock):
    sup = RiskSupervisor(make_config(), clock=clock, poll_upstreams=False)
    assert asyncio.run(sup.evaluate_async(order())).reason_code is RC.GATE_UNAVAILABLE
    with sup:
        held, release = threading.Event(), threading.Event()
        sup.gate_ref.tell(GateHold(held, release))
        assert held.wait(5)
        r = asyncio.run(sup.evaluate_async(order(), timeout=0.05))
        release.set()
        assert r.reason_code is RC.GATE_UNAVAILABLE


def test_health_reports_actors_and_decisions(sup):
    feed(sup)
    sup.evaluate(order())
    h = sup.health()
    assert h["gate"]["alive"] and h["account_tracker"]["alive"]
    assert h["gate"]["decisions"]["ALL_CHECKS_PASSED"] == 1
    assert h["ess"]["active"] is False


def _sol(qty: float, exchange: str = "binance") -> tuple[Position, ...]:
    return (Position("SOLUSDT", exchange, qty, 100.0),)


def _positions(n: int) -> tuple[Position, ...]:
    return tuple(Position(f"Y{i}USDT", "binance", 1.0, 1.0) for i in range(n))


def _prices(s, sol: float | None) -> dict:
    return {"timestamp": s.clock.now().isoformat(), "prices": {"SOLUSDT": sol}}  # None: unusable, dropped


RICH = 10_000_000.0
# code -> (how to set the supervisor up, the order's fields)
REACH = {
    RC.INVALID_ORDER: (lambda s: feed(s), {"quantity": -1}),
    RC.ESS_STATE_STALE: (lambda s: None, {}),
    RC.ESS_HALT_ACTIVE: (lambda s: (feed(s), s.report_ess_active(True, "halt")), {}),
    RC.RISK_STATE_STALE: (lambda s: s.report_ess_active(False), {}),
    RC.GLOBAL_RISK_CRITICAL: (lambda s: feed(s, "CRITICAL"), {}),
    RC.RISK_V3_ESS_ACTION_REQUIRED: (lambda s: feed(s, ess_action_required=True), {}),
    RC.UNKNOWN_ACCOUNT: (lambda s: feed(s), {"account": "ghost"}),
    RC.DUPLICATE_ORDER: (
        lambda s: (feed(s), s.evaluate(order(order_id="dup-1", quantity=0.1))),
        {"order_id": "dup-1", "quantity": 0.1},
    ),
    RC.ACCOUNT_STATE_STALE: (
        lambda s: (s.report_ess_active(False), s.report_risk_signal(signal("INFO", s.clock.now()))),
        {},
    ),
    RC.MAX_ORDER_QUANTITY: (lambda s: feed(s), {"symbol": "ETHUSDT", "quantity": 100.01, "price": 3_000.0}),
    RC.MAX_ORDER_NOTIONAL: (lambda s: feed(s, equity=RICH), {"quantity": 10_000.1}),
    RC.PRICE_OUT_OF_COLLAR: (lambda s: feed(s), {"price": 120.0, "reference_price": 100.0}),
    RC.PRICE_SPIKE_PAUSE: (
        lambda s: (feed(s), s.report_prices(_prices(s, 100.0)), s.report_prices(_prices(s, 116.0))),
        {"price": 116.0},
    ),
    RC.PRICE_REFERENCE_STALE: (
        lambda s: (feed(s), s.report_prices(_prices(s, 100.0)), s.report_prices(_prices(s, None))),
        {},
    ),
    RC.STRATEGY_NOT_ALLOWED: (lambda s: feed(s), {"strategy_id": "experimental_hft"}),
    RC.LEVERAGE_EXCEEDS_LIMIT: (lambda s: feed(s), {"leverage": 9.0}),
    RC.ORDER_RATE_EXCEEDED: (
        lambda s: (feed(s), [s.evaluate(order(quantity=0.1)) for _ in range(5)]),
        {"quantity": 0.1},
    ),
    RC.DAILY_LOSS_LIMIT: (lambda s: (feed(s), s.report_account_snapshot(AccountSnapshot("main", 9_700.0))), {}),
    RC.BASELINE_UNKNOWN: None,  # needs a lost baseline store: see tests/actors/test_account_tracker.py
    RC.JOURNAL_UNAVAILABLE: None,  # needs a journal that cannot write: see tests/supervisor/ops/test_journal.py
    RC.WEEKLY_LOSS_LIMIT: None,  # needs a week-old baseline: see test_weekly_loss_limit_reached_through_the_facade
    RC.DRAWDOWN_LIMIT: None,  # needs a peak days ago: see tests/supervisor/core/test_drawdown.py
    RC.LOSS_COOLDOWN: None,  # needs a tripped limit and a recovery: see tests/supervisor/core/test_drawdown.py
    RC.MAX_OPEN_POSITIONS: (lambda s: feed(s, positions=_positions(5)), {}),
    RC.SINGLE_TRADE_RISK: (lambda s: feed(s), {"quantity": 3.0}),
    RC.EXCHANGE_EXPOSURE_LIMIT: (
        lambda s: (
            feed(s, equity=RICH),
            s.report_account_snapshot(AccountSnapshot("tiny", RICH, (Position("BTCUSDT", "binance", 2.0, 99_000.0),))),
        ),
        {"quantity": 50.0},
    ),
    RC.ACCOUNT_EXPOSURE_LIMIT: (lambda s: feed(s, equity=RICH), {"quantity": 600.0}),
    RC.RISK_WARNING_SCALE: (lambda s: feed(s, "WARNING"), {"quantity": 1.0}),
    RC.ALL_CHECKS_PASSED: (lambda s: feed(s), {}),
    RC.GATE_UNAVAILABLE: (lambda s: s.gate_ref.stop(), {}),
    RC.SHARED_STATE_STALE: None,  # several instances, a real PostgreSQL: tests/supervisor/shared/test_instances.py
    RC.BUDGET_UNAVAILABLE: None,  # likewise (and tests/supervisor/core/test_budget.py, pure)
    RC.REDUCE_ONLY_MODE: (lambda s: (feed(s), s.halt("thin book", by="alice", mode="reduce_only")), {}),
    RC.CLIENT_NOT_PERMITTED: None,  # only over HTTP, a scoped client: see tests/adversarial/test_probe_clients.py
    RC.OVERRIDE_APPLIED: (
        lambda s: (
            feed(s, positions=_sol(1.0)),
            s.report_ess_active(True, "halt"),
            s.approve_override(s.propose_override("main", "flatten", 60.0, by="alice").id, by="bob"),
        ),
        {"side": "sell", "reduce_only": True},
    ),
}


def test_reach_table_covers_every_reason_code():
    assert set(REACH) == set(RC)


@pytest.mark.parametrize("code", [c for c, v in REACH.items() if v is not None], ids=str)
def test_every_reason_code_is_reachable_through_the_facade(code, clock):
    setup, fields = REACH[code]
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        setup(sup)
        assert sup.evaluate(order(**fields)).reason_code is code


def test_weekly_loss_limit_reached_through_the_facade(sup, clock):

    feed(sup)  # Monday: week and day baselines 10,000
    clock.advance(timedelta(days=2).total_seconds())
    sup.report_account_snapshot(AccountSnapshot("main", 9_400.0))  # -6% this week... (day: -0% since new day baseline)
    clock.advance(timedelta(days=1).total_seconds())
    feed(sup, equity=9_250.0)  # Thursday: day baseline 9,400 (-1.6%), week 10,000 (-7.5%)
    r = sup.evaluate(order(quantity=0.5))
    assert r.reason_code is RC.WEEKLY_LOSS_LIMIT, r.reason


def test_evaluations_queued_behind_a_stop_are_answered_at_once(sup):
    from supervisor.channels.reply import ReplySlot

    feed(sup)
    held, release = threading.Event(), threading.Event()
    sup.gate_ref.tell(GateHold(held, release))
    assert held.wait(5)
    stopped = sup.gate_ref.stop(block=False)
    slots = [ReplySlot() for _ in range(4)]
    for slot in slots:
        sup.gate_ref.tell(EvaluateOrder(valid(order(quantity=0.1)), reply=slot))
    release.set()
    results = [slot.wait(5) for slot in slots]  # well before any evaluate timeout
    stopped.get(timeout=5)
    assert [r.reason_code for r in results] == [RC.GATE_UNAVAILABLE] * 4
    assert sup.evaluate(order()).reason_code is RC.GATE_UNAVAILABLE


def test_a_program_that_ends_without_stop_still_journals_its_last_decision(tmp_path):
    """A careless embedder: start(), evaluate, end of script. The journal's thread
    is a daemon; without the exit hook the last flush interval was lost."""
    import os
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "careless.py"  # no `if __name__ == "__main__"`, no stop(), no `with`
    script.write_text(
        "import sys\n"
        "from supervisor import AccountSnapshot, RiskSupervisor\n"
        "from tests.helpers import make_config, order, signal\n"
        "sup = RiskSupervisor(make_config(state={'dir': sys.argv[1]}), poll_upstreams=False).start()\n"
        "sup.report_ess_active(False)\n"
        "sup.report_risk_signal(signal('INFO', sup.clock.now()))\n"
        "sup.report_account_snapshot(AccountSnapshot('main', 10_000.0))\n"
        "print(sup.evaluate(order(order_id='last-words')).decision)\n"
    )
    root = Path(__file__).resolve().parents[2]
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, str(script), str(state)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "allow" in done.stdout.splitlines()
    assert "supervisor_stopped_at_exit" in done.stdout + done.stderr
    db = sqlite3.connect(state / "journal.sqlite")
    try:
        assert db.execute("SELECT order_id FROM decisions").fetchall() == [("last-words",)]
    finally:
        db.close()
