"""The gate's door: orders decided on the caller's thread never overtake what
was sent to the gate before them, never decide two at a time, and never pass a
shut (stopped or replaced) gate."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors.gate import GateStatsRequest
from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.channels.gate_door import BUSY, GateDoor
from supervisor.channels.gate_link import Stamped
from supervisor.channels.reply import ReplySlot
from supervisor.core.messages import EvaluateOrder, RejectOrder, RiskGateResult
from supervisor.core.orders import validate_order
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import GateCrash, GateHold, HoldableGateActor, make_config, order, signal

CONFIG = {"gate": {"max_orders_per_s": 10**6, "max_repeats": 10**6}}


def feed(sup: RiskSupervisor, equity: float = 10_000.0) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    for name in sup.config.accounts.accounts:
        sup.report_account_snapshot(AccountSnapshot(name, equity))
    sup._runtime.gate_stats(reset=False)  # an ask: everything told before it is handled


@pytest.fixture
def sup(clock):
    with RiskSupervisor(make_config(**CONFIG), clock=clock, poll_upstreams=False) as s:
        feed(s)
        yield s


@contextlib.contextmanager
def held_elsewhere(lock: Any) -> Iterator[None]:
    """`lock` held by another thread (the door's lock is re-entrant for its holder)."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(5)
    try:
        yield
    finally:
        done.set()
        holder.join(5)


def hold_gate(sup: RiskSupervisor) -> threading.Event:
    held, release = threading.Event(), threading.Event()
    sup.gate_ref.tell(GateHold(held, release))
    assert held.wait(5)
    return release


def evaluate_in_thread(
    sup: RiskSupervisor, timeout: float = 5.0, **fields: object
) -> tuple[threading.Thread, list[RiskGateResult]]:
    answer: list[RiskGateResult] = []
    caller = threading.Thread(target=lambda: answer.append(sup.evaluate(order(**fields), timeout=timeout)))
    caller.start()
    return caller, answer


def door_of(sup: RiskSupervisor) -> GateDoor:
    return sup._runtime.gate_door


def request(sup: RiskSupervisor, **fields: object) -> EvaluateOrder:
    valid = validate_order(order(**fields), sup.config)
    assert not isinstance(valid, str), valid
    return EvaluateOrder(valid, None, sup.clock.monotonic() + 5, sup.clock.monotonic(), sup.config)


def test_an_order_is_decided_at_the_door_when_nothing_is_queued(sup):
    door = door_of(sup)
    assert door.is_open
    result = door.decide(request(sup), 1.0)
    assert isinstance(result, RiskGateResult)
    assert (result.decision, result.reason_code) == ("allow", RC.ALL_CHECKS_PASSED)
    assert sup.health()["gate"]["reservations"] == 1  # booked in the gate's own state


def test_an_order_never_overtakes_state_sent_before_it(sup):
    """The hostile case: CRITICAL is queued behind a busy gate; an order sent
    after it must be judged with it, not with the INFO the gate still holds."""
    held, release = threading.Event(), threading.Event()
    sup.gate_ref.tell(GateHold(held, release))
    assert held.wait(5)
    sup.report_risk_signal(signal("CRITICAL", sup.clock.now()))
    assert door_of(sup).decide(request(sup), 1.0) is None  # queued, not decided here
    answer: list[RiskGateResult] = []
    caller = threading.Thread(target=lambda: answer.append(sup.evaluate(order(), timeout=5)))
    caller.start()
    release.set()
    caller.join(5)
    assert [r.reason_code for r in answer] == [RC.GLOBAL_RISK_CRITICAL]


def test_the_same_thread_sees_its_own_report_first(sup):
    for level, code in (("CRITICAL", RC.GLOBAL_RISK_CRITICAL), ("INFO", RC.ALL_CHECKS_PASSED)) * 50:
        sup.report_risk_signal(signal(level, sup.clock.now()))
        assert sup.evaluate(order(quantity=0.1)).reason_code is code


def test_concurrent_callers_never_pass_a_cap_together(sup):
    """Four threads, 30 orders each of 1,000 USD, against main's 50,000 USD cap
    (equity large enough that no other limit applies): exactly 50 pass."""
    sup.report_account_snapshot(AccountSnapshot("main", 10_000_000.0))
    start = threading.Barrier(4)
    results: list[RiskGateResult] = []
    lock = threading.Lock()

    def caller() -> None:
        start.wait()
        for _ in range(30):
            r = sup.evaluate(order(quantity=10.0))
            with lock:
                results.append(r)

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    codes = Counter(r.reason_code for r in results)
    assert codes[RC.ALL_CHECKS_PASSED] == 50, codes
    assert len(results) == 120 and set(codes) == {RC.ALL_CHECKS_PASSED, RC.ACCOUNT_EXPOSURE_LIMIT}, codes
    assert sup.health()["gate"]["reservations"] == 50


def test_a_lock_held_past_the_callers_timeout_is_gate_unavailable(sup):
    door = door_of(sup)
    with held_elsewhere(door.lock):
        assert door.decide(request(sup), 0.01) == BUSY
        r = sup.evaluate(order(), timeout=0.05)
    assert (r.decision, r.reason_code) == ("block", RC.GATE_UNAVAILABLE)
    assert "no answer within 0.05s" in r.reason
    assert sup.evaluate(order()).decision == "allow"  # and nothing was booked for it


def test_a_shut_door_sends_orders_the_queued_way(sup):
    door = door_of(sup)
    door.shut()
    assert door.decide(request(sup), 1.0) is None
    assert sup.evaluate(order()).decision == "allow"  # answered by the gate's thread


def test_a_stopped_gate_shuts_its_door(sup):
    door = door_of(sup)
    sup.gate_ref.stop()
    assert not door.is_open
    r = sup.evaluate(order())
    assert r.reason_code is RC.GATE_UNAVAILABLE


def test_pykka_messages_and_unknown_ones_are_counted_and_handled(sup):
    door = door_of(sup)
    assert sup.gate_ref.proxy().ping().get(timeout=5) == "pong"  # a ProxyCall
    sup.gate_ref.ask("not a gate message", timeout=5)  # logged and dropped by the gate
    assert door._inbox is not None and door._inbox.pending == 0
    assert isinstance(door.decide(request(sup), 1.0), RiskGateResult)


def test_state_sent_through_a_proxy_is_not_overtaken(sup, clock):
    release = hold_gate(sup)
    sup.gate_ref.proxy().on_receive(Stamped(signal("CRITICAL", clock.now()), clock.monotonic()))
    caller, answer = evaluate_in_thread(sup)
    release.set()
    caller.join(5)
    assert [r.reason_code for r in answer] == [RC.GLOBAL_RISK_CRITICAL]
    assert door_of(sup)._inbox.pending == 0  # type: ignore[union-attr]


def test_an_order_after_a_stop_request_never_passes_the_door(sup):
    release = hold_gate(sup)
    stopped = sup.gate_ref.stop(block=False)
    r = sup.evaluate(order(), timeout=0.2)  # queued behind the stop: answered when the gate goes
    release.set()
    stopped.get(timeout=5)
    assert r.reason_code is RC.GATE_UNAVAILABLE


class _SlowToFail(HoldableGateActor):
    """A gate whose on_failure waits: pykka marks it stopped before calling it."""

    in_failure = threading.Event()
    go_on = threading.Event()

    def on_failure(self, *exc: Any) -> None:
        _SlowToFail.in_failure.set()
        _SlowToFail.go_on.wait(5)
        super().on_failure(*exc)


def test_a_gate_whose_handler_raised_approves_nothing_before_it_is_gone(clock, monkeypatch):
    from supervisor.runtime.wiring import Runtime

    monkeypatch.setattr(Runtime, "gate_actor_class", _SlowToFail)
    _SlowToFail.in_failure.clear()
    _SlowToFail.go_on.clear()
    with RiskSupervisor(make_config(**CONFIG), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        sup.gate_ref.tell(GateCrash())  # a tell: the raise kills it
        assert _SlowToFail.in_failure.wait(5)
        try:
            r = sup.evaluate(order())
        finally:
            _SlowToFail.go_on.set()
        assert r.reason_code is RC.GATE_UNAVAILABLE


def test_a_handler_that_raises_under_an_ask_leaves_the_gate_deciding(sup):
    door = door_of(sup)
    with pytest.raises(RuntimeError):
        sup.gate_ref.ask(GateCrash(), timeout=5)  # an ask: the asker gets the error, the gate lives
    assert door._inbox is not None and door._inbox.pending == 0
    assert door.suspended  # until it handles something again
    assert sup.evaluate(order()).decision == "allow"  # queued, handled by the gate's thread
    assert not door.suspended
    assert isinstance(door.decide(request(sup), 1.0), RiskGateResult)


class _Stalling(HoldableGateActor):
    """A gate whose decision of order id "stall" waits inside (the door's lock held)."""

    inside = threading.Event()
    go_on = threading.Event()

    def _evaluate(self, msg: EvaluateOrder | RejectOrder) -> RiskGateResult:
        if isinstance(msg, EvaluateOrder) and msg.order.order_id == "stall":
            _Stalling.inside.set()
            _Stalling.go_on.wait(5)
        return super()._evaluate(msg)


@pytest.fixture
def stalling(clock, monkeypatch):
    from supervisor.runtime.wiring import Runtime

    monkeypatch.setattr(Runtime, "gate_actor_class", _Stalling)
    _Stalling.inside.clear()
    _Stalling.go_on.clear()
    # No supervision check when a test moves the clock: a gate busy at its door misses
    # its heartbeat and is replaced (a case of its own below).
    cfg = make_config(**CONFIG, supervision={"check_interval_s": 1000.0})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as s:
        feed(s, equity=10_000_000.0)
        yield s
    _Stalling.go_on.set()


def test_a_decision_that_ends_after_the_callers_timeout_is_gate_unavailable(stalling, clock):
    caller, answer = evaluate_in_thread(stalling, timeout=1.0, order_id="stall", quantity=10.0)
    assert _Stalling.inside.wait(5)
    assert stalling._runtime.gate_door._inbox.pending == 0  # type: ignore[union-attr] - so it is at the door
    clock.advance(2.0)  # past the caller's 1 s while it decides (every source still fresh: it would allow)
    _Stalling.go_on.set()
    caller.join(5)
    assert [(r.reason_code, r.reason) for r in answer] == [(RC.GATE_UNAVAILABLE, "decided after the caller's timeout")]


def test_a_gate_replaced_while_a_caller_decides_at_its_door_approves_nothing(stalling):
    """The successor copies the state; a booking made after the copy is counted by
    no one, so the caller must hear no (else two orders could pass one cap)."""
    caller, answer = evaluate_in_thread(stalling, order_id="stall", quantity=400.0)  # 40,000 of 50,000
    assert _Stalling.inside.wait(5)
    old = stalling.gate_ref
    stalling._runtime._retire_gate(old)  # what supervision does to a gate that stopped answering
    stalling._runtime._gate_actor()  # its successor, with the state copied now
    _Stalling.go_on.set()
    caller.join(5)
    assert [r.reason_code for r in answer] == [RC.GATE_UNAVAILABLE]


def test_evaluate_async_never_waits_for_the_lock_on_the_loop(sup):
    door = door_of(sup)

    async def scenario() -> RiskGateResult:
        with held_elsewhere(door.lock):
            pending = asyncio.ensure_future(sup.evaluate_async(order(), timeout=5))
            for _ in range(3):  # the loop runs on while the lock is taken
                await asyncio.sleep(0)
            assert not pending.done()
        return await pending  # the gate's thread takes the queued order once the lock is free

    r = asyncio.run(scenario())
    assert r.decision == "allow"


def test_the_gate_handles_nothing_while_a_caller_decides_at_its_door(stalling, clock):
    caller, answer = evaluate_in_thread(stalling, order_id="stall", quantity=10.0)
    assert _Stalling.inside.wait(5)
    stalling.report_risk_signal(signal("CRITICAL", clock.now()))  # the gate's thread must wait for the door
    with pytest.raises(pykka.Timeout):
        stalling.gate_ref.ask(GateStatsRequest(reset=False), timeout=0.1)
    _Stalling.go_on.set()
    caller.join(5)
    assert [r.reason_code for r in answer] == [RC.ALL_CHECKS_PASSED]  # decided on the state before it
    assert stalling.evaluate(order()).reason_code is RC.GLOBAL_RISK_CRITICAL


def test_a_gate_replaced_while_its_own_thread_decides_approves_nothing(stalling):
    """The queued way: the order waits behind a hold, the gate's thread stalls in
    it, supervision replaces the gate and copies its state; the late booking is
    in the old state only, so the answer must be no."""
    release = hold_gate(stalling)
    slot: ReplySlot[RiskGateResult] = ReplySlot()
    queued = request(stalling, order_id="stall", quantity=400.0)  # 40,000 of 50,000
    stalling.gate_ref.tell(dataclasses.replace(queued, reply=slot))  # behind the hold
    release.set()
    assert _Stalling.inside.wait(5)  # on the gate's own thread, holding the lock
    old = stalling.gate_ref
    stalling._runtime._retire_gate(old)
    stalling._runtime._gate_actor()
    _Stalling.go_on.set()
    answer = slot.wait(5)
    assert answer is not None
    assert (answer.reason_code, answer.reason) == (RC.GATE_UNAVAILABLE, "this gate was replaced while deciding")
