"""The gate's door: orders decided on the caller's thread never overtake what
was sent to the gate before them, never decide two at a time, and never pass a
shut (stopped or replaced) gate."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.channels.gate_door import BUSY, GateDoor
from supervisor.core.messages import EvaluateOrder, RiskGateResult
from supervisor.core.orders import validate_order
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import GateHold, make_config, order, signal


def feed(sup: RiskSupervisor, equity: float = 10_000.0) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    for name in sup.config.accounts.accounts:
        sup.report_account_snapshot(AccountSnapshot(name, equity))


@pytest.fixture
def sup(clock):
    cfg = make_config(gate={"max_orders_per_s": 10**6, "max_repeats": 10**6})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as s:
        feed(s)
        yield s


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
    with door.lock:
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


def test_pykka_messages_and_unknown_ones_are_not_counted_as_queued(sup):
    door = door_of(sup)
    assert sup.gate_ref.proxy().ping().get(timeout=5) == "pong"  # a ProxyCall: never reaches the handlers
    sup.gate_ref.ask("not a gate message", timeout=5)  # logged and dropped by the gate
    assert door._inbox is not None and door._inbox.pending == 0
    assert isinstance(door.decide(request(sup), 1.0), RiskGateResult)


def test_a_handler_that_raises_still_counts_its_message_handled(sup):
    from tests.helpers import GateCrash

    door = door_of(sup)
    with pytest.raises(RuntimeError):
        sup.gate_ref.ask(GateCrash(), timeout=5)
    assert door._inbox is not None and door._inbox.pending == 0


def test_evaluate_async_never_waits_for_the_lock_on_the_loop(sup):
    door = door_of(sup)
    door.lock.acquire()
    released = False

    async def scenario() -> RiskGateResult:
        nonlocal released
        pending = asyncio.ensure_future(sup.evaluate_async(order(), timeout=5))
        for _ in range(3):  # the loop runs on while the lock is taken
            await asyncio.sleep(0)
        assert not pending.done()
        door.lock.release()  # the gate's thread can now take the queued order
        released = True
        return await pending

    try:
        r = asyncio.run(scenario())
    finally:
        if not released:
            door.lock.release()
    assert r.decision == "allow"
