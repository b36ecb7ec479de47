"""The one gate: orders decided on the caller's thread never overtake state
posted before them, never decide two at a time, never pass a closed gate, and
a restarted owner keeps every booking (one state, nothing copied)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.channels.ess_board import EssBoard
from supervisor.channels.reply import ReplySlot
from supervisor.core.messages import EvaluateOrder, RejectOrder, RiskGateResult
from supervisor.core.orders import validate_order
from supervisor.core.reasons import ReasonCode as RC
from supervisor.gate import BUSY, Gate
from tests.helpers import GateCrash, GateHold, HoldableGateActor, feed, make_config, order, signal

CONFIG = {"gate": {"max_orders_per_s": 10**6, "max_repeats": 10**6}}


@pytest.fixture
def sup(clock):
    with RiskSupervisor(make_config(**CONFIG), clock=clock, poll_upstreams=False) as s:
        feed(s)
        yield s


@contextlib.contextmanager
def held_elsewhere(lock: Any) -> Iterator[None]:
    """`lock` held by another thread (the gate's lock is re-entrant for its holder)."""
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


def hold_gate(sup: RiskSupervisor, lock: bool = True) -> threading.Event:
    held, release = threading.Event(), threading.Event()
    sup.gate_ref.tell(GateHold(held, release, lock=lock))
    assert held.wait(5)
    return release


def evaluate_in_thread(
    sup: RiskSupervisor, timeout: float = 5.0, **fields: object
) -> tuple[threading.Thread, list[RiskGateResult]]:
    answer: list[RiskGateResult] = []
    caller = threading.Thread(target=lambda: answer.append(sup.evaluate(order(**fields), timeout=timeout)))
    caller.start()
    return caller, answer


def gate_of(sup: RiskSupervisor) -> Gate:
    return sup._runtime.gate


def request(sup: RiskSupervisor, **fields: object) -> EvaluateOrder:
    valid = validate_order(order(**fields), sup.config)
    assert not isinstance(valid, str), valid
    return EvaluateOrder(valid, None, sup.clock.monotonic() + 5, sup.clock.monotonic(), sup.config)


def test_an_order_is_decided_on_the_callers_thread(sup):
    gate = gate_of(sup)
    assert gate.is_open
    result = gate.decide(request(sup), 1.0)
    assert isinstance(result, RiskGateResult)
    assert (result.decision, result.reason_code) == ("allow", RC.ALL_CHECKS_PASSED)
    assert sup.health()["gate"]["reservations"] == 1  # booked in the gate's own state


def test_an_order_never_overtakes_state_posted_before_it(sup):
    """The hostile case: CRITICAL is posted while the gate is busy (its lock held);
    an order sent after it must be judged with it, not with the INFO it held."""
    release = hold_gate(sup)
    sup.report_risk_signal(signal("CRITICAL", sup.clock.now()))  # never waits for the lock
    caller, answer = evaluate_in_thread(sup)
    release.set()
    caller.join(5)
    assert [r.reason_code for r in answer] == [RC.GLOBAL_RISK_CRITICAL]


def test_state_posted_while_the_gate_is_busy_is_applied_before_any_read(sup):
    release = hold_gate(sup)
    sup.report_risk_signal(signal("CRITICAL", sup.clock.now()))
    assert gate_of(sup).stats(reset=False, timeout=0.01) is None  # busy: the reader gives up, never holds it
    release.set()
    stats = gate_of(sup).stats(reset=False)
    assert stats is not None and stats["risk_level"] == "CRITICAL"


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


def test_a_lock_held_past_the_callers_timeout_is_gate_unavailable_and_counted(sup):
    gate = gate_of(sup)
    with held_elsewhere(gate.lock):
        assert gate.decide(request(sup), 0.01) == BUSY
        r = sup.evaluate(order(), timeout=0.05)
    assert (r.decision, r.reason_code) == ("block", RC.GATE_UNAVAILABLE)
    assert "no answer within 0.05s" in r.reason
    assert sup.health()["gate"]["decisions"].get("GATE_UNAVAILABLE") == 1  # counted by the next holder
    assert sup.evaluate(order()).decision == "allow"  # and nothing was booked for it
    assert sup.health()["gate"]["reservations"] == 1


def test_a_suspended_gate_sends_orders_to_its_actor(sup):
    gate = gate_of(sup)
    with pytest.raises(RuntimeError):
        sup.gate_ref.ask(GateCrash(), timeout=5)  # an ask: the asker gets the error, the actor lives
    assert not gate.is_open  # suspended until its actor handles something again
    assert gate.decide(request(sup), 1.0) is None
    assert sup.evaluate(order()).decision == "allow"  # handed to the actor, which resumes it
    assert gate.is_open
    assert isinstance(gate.decide(request(sup), 1.0), RiskGateResult)


def test_a_stopped_actor_closes_the_gate(sup):
    gate = gate_of(sup)
    sup.gate_ref.stop()
    assert not gate.is_open
    r = sup.evaluate(order())
    assert r.reason_code is RC.GATE_UNAVAILABLE


def test_an_order_after_stop_begins_never_passes(sup):
    release = hold_gate(sup, lock=False)  # the actor busy: stopping it waits for it
    stopping = threading.Thread(target=sup.stop)
    stopping.start()
    try:
        while gate_of(sup).is_open:  # the stop closes the gate before it waits for the actors
            stopping.join(0.001)
        r = sup.evaluate(order(), timeout=0.2)
    finally:
        release.set()
        stopping.join(10)
    assert r.reason_code is RC.GATE_UNAVAILABLE


class _SlowToFail(HoldableGateActor):
    """A gate actor whose on_failure waits: pykka marks it stopped before calling it."""

    in_failure = threading.Event()
    go_on = threading.Event()

    def on_failure(self, *exc: Any) -> None:
        _SlowToFail.in_failure.set()
        _SlowToFail.go_on.wait(5)
        super().on_failure(*exc)


def test_a_gate_whose_actor_raised_approves_nothing_before_it_is_gone(clock, monkeypatch):
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


class _Stalling(Gate):
    """A gate whose decision of order id "stall" waits inside (its lock held)."""

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

    monkeypatch.setattr(Runtime, "gate_class", _Stalling)
    _Stalling.inside.clear()
    _Stalling.go_on.clear()
    cfg = make_config(**CONFIG, supervision={"check_interval_s": 1000.0})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as s:
        feed(s, equity=10_000_000.0)
        yield s
    _Stalling.go_on.set()


def test_a_decision_that_ends_after_the_callers_timeout_is_gate_unavailable(stalling, clock):
    caller, answer = evaluate_in_thread(stalling, timeout=1.0, order_id="stall", quantity=10.0)
    assert _Stalling.inside.wait(5)
    clock.advance(2.0)  # past the caller's 1 s while it decides (every source still fresh: it would allow)
    _Stalling.go_on.set()
    caller.join(5)
    assert [(r.reason_code, r.reason) for r in answer] == [(RC.GATE_UNAVAILABLE, "decided after the caller's timeout")]


def test_an_actor_replaced_while_a_caller_decides_keeps_its_booking(stalling):
    """The old design copied the state to a successor and had to refuse a booking made
    after the copy; with one state the booking counts: the next order sees it."""
    caller, answer = evaluate_in_thread(stalling, order_id="stall", quantity=400.0)  # 40,000 of 50,000
    assert _Stalling.inside.wait(5)
    old = stalling.gate_ref
    old.stop(block=False)  # its actor goes (a stop waits for nothing the gate holds)
    old.actor_stopped.wait(5)
    stalling.check_actors()  # a new owner
    assert stalling.gate_ref is not old
    _Stalling.go_on.set()
    caller.join(5)
    assert [r.reason_code for r in answer] == [RC.ALL_CHECKS_PASSED]
    after = stalling.evaluate(order(quantity=400.0))
    assert (after.decision, after.adjusted_quantity) == ("scale_down", 100.0)  # 10,000 left of the cap


def test_evaluate_async_never_waits_for_the_lock_on_the_loop(sup):
    gate = gate_of(sup)

    async def scenario() -> RiskGateResult:
        with held_elsewhere(gate.lock):
            pending = asyncio.ensure_future(sup.evaluate_async(order(), timeout=5))
            for _ in range(3):  # the loop runs on while the lock is taken
                await asyncio.sleep(0)
            assert not pending.done()
        return await pending  # the gate's actor decides the order once the lock is free

    r = asyncio.run(scenario())
    assert r.decision == "allow"


def test_posted_state_waits_for_a_caller_deciding_and_applies_after_it(stalling, clock):
    caller, answer = evaluate_in_thread(stalling, order_id="stall", quantity=10.0)
    assert _Stalling.inside.wait(5)
    stalling.report_risk_signal(signal("CRITICAL", clock.now()))  # posted: never waits for the lock
    assert gate_of(stalling).view(timeout=0.05) is None
    _Stalling.go_on.set()
    caller.join(5)
    assert [r.reason_code for r in answer] == [RC.ALL_CHECKS_PASSED]  # decided on the state before it
    assert stalling.evaluate(order()).reason_code is RC.GLOBAL_RISK_CRITICAL


def test_an_order_queued_at_a_replaced_actor_is_answered_unavailable(sup):
    """The actor stalls (outside the gate), supervision gives it up and starts a new
    owner; an order handed to the old one is refused when it wakes, and the gate
    decided every caller's order meanwhile."""
    release = hold_gate(sup, lock=False)
    old = sup.gate_ref
    slot: ReplySlot[RiskGateResult] = ReplySlot()
    old.tell(dataclasses.replace(request(sup, quantity=400.0), reply=slot))
    assert sup.evaluate(order(quantity=1.0)).decision == "allow"  # the actor is stuck, the gate is not
    sup._runtime.gate.close()  # what supervision does to an owner it gives up on
    new = HoldableGateActor.start(sup._runtime.gate)
    try:
        release.set()
        answer = slot.wait(5)
        assert answer is not None
        assert (answer.reason_code, answer.reason) == (RC.GATE_UNAVAILABLE, "this gate's actor was replaced")
        assert sup.evaluate(order(quantity=1.0)).decision == "allow"  # the new owner's gate
    finally:
        new.stop()


def test_unknown_messages_are_dropped_and_the_actor_lives(sup):
    assert sup.gate_ref.proxy().ping().get(timeout=5) == "pong"  # a ProxyCall
    assert sup.gate_ref.ask("not a gate message", timeout=5) is None
    assert isinstance(gate_of(sup).decide(request(sup), 1.0), RiskGateResult)


def test_a_halt_posted_while_a_caller_decides_is_applied_when_it_releases(stalling):
    """Its side effects (the cancel-on-halt listeners) do not wait for the next decision."""
    called = threading.Event()
    stalling.on_halt(lambda _reason: called.set())
    caller, answer = evaluate_in_thread(stalling, order_id="stall", quantity=10.0)
    assert _Stalling.inside.wait(5)
    stalling.report_ess_active(True, "desk halt")  # the lock is held: posted, not applied
    assert not called.is_set()
    _Stalling.go_on.set()
    caller.join(5)
    assert stalling.settle_halt_listeners(5) and called.is_set()  # no other decision, view or tick needed
    # (The stalled decision itself read the ESS board after its stall: the halt reached it.)
    assert [r.reason_code for r in answer] == [RC.ESS_HALT_ACTIVE]


def test_readers_are_not_starved_by_callers_deciding_flat_out(sup):
    """A reader waits for the lock the way callers do (spinning on the GIL's turn):
    one that slept in the lock could lose it to the spinners at every release."""
    sup.report_account_snapshot(AccountSnapshot("main", 1e12))
    stop = threading.Event()

    def caller() -> None:
        while not stop.is_set():
            sup.evaluate(order(quantity=0.1), timeout=5)

    callers = [threading.Thread(target=caller) for _ in range(4)]
    for t in callers:
        t.start()
    try:
        views = [gate_of(sup).view(timeout=1.0) for _ in range(30)]
        stats = [gate_of(sup).stats(reset=False, timeout=1.0) for _ in range(30)]
    finally:
        stop.set()
        for t in callers:
            t.join(10)
    assert all(v is not None for v in views) and all(s is not None for s in stats)


def test_a_stop_begun_is_never_undone_by_an_actor_starting_or_resuming(clock):
    gate = Gate(make_config(), clock, EssBoard())
    gate.open("actor-1")
    gate.shut()  # what stop() does first
    gate.open("actor-2")  # a restart that was under way
    assert not gate.is_open
    assert not gate.resume("actor-1") and not gate.is_open  # a message in flight at the old owner
    gate.arm()  # a start
    gate.open("actor-3")
    assert gate.is_open and gate.resume("actor-3")  # resume answers whether it is the owner
    gate.close("actor-1")  # a stopping actor that was replaced leaves its successor's gate open
    assert gate.is_open


def test_a_stop_under_way_while_the_gate_restarts_lets_nothing_through(sup):
    old = sup.gate_ref
    old.tell(GateCrash())
    old.actor_stopped.wait(5)
    sup._runtime.gate.shut()  # a stop begins (its first step) before supervision restarts the actor
    sup.check_actors()  # the restarted owner opens the gate: refused, the stop has begun
    assert sup.gate_ref is not old and sup.gate_ref.is_alive()
    assert sup.evaluate(order(), timeout=0.5).reason_code is RC.GATE_UNAVAILABLE


def test_posts_refused_when_too_many_wait_are_superseded_by_the_latest_state(sup, monkeypatch, clock):
    """The newest state must not be what is lost: a stricter config and a CRITICAL
    reported while the queue is full are applied before the next decision."""
    import supervisor.gate
    from supervisor.config import parse_config
    from tests.helpers import config_dict

    sup.report_account_snapshot(AccountSnapshot("main", 10_000_000.0))  # no other limit in the way
    monkeypatch.setattr(supervisor.gate, "_MAX_PENDING", 20)
    stricter = config_dict(**CONFIG)
    stricter["accounts"]["main"]["max_notional_usd"] = 1_000.0
    gate = gate_of(sup)
    with held_elsewhere(gate.lock):  # a lock held that long
        for _ in range(50):
            sup.report_risk_signal(signal("INFO", clock.now()))  # state: the latest supersedes it
        sup._runtime.reconfigure(parse_config(stricter))
        sup.report_risk_signal(signal("CRITICAL", clock.now()))
    assert sup.evaluate(order(quantity=0.1)).reason_code is RC.GLOBAL_RISK_CRITICAL
    sup.report_risk_signal(signal("INFO", clock.now()))
    r = sup.evaluate(order(quantity=20.0))  # 2,000 USD against the reloaded 1,000 cap
    assert r.decision != "allow" and r.reason_code is RC.ACCOUNT_EXPOSURE_LIMIT


def test_deciders_are_not_starved_by_readers(sup):
    """Readers and deciders wait for the lock alike (spinning on the GIL's turn): two
    readers that slept in the lock handed it to each other and starved the callers."""
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            sup.report_message("tiny")
            gate_of(sup).view(1.0)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        answers = [sup.evaluate(order(quantity=0.1), timeout=1.0) for _ in range(10)]
    finally:
        stop.set()
        for t in readers:
            t.join(10)
    assert [r.reason_code for r in answers].count(RC.GATE_UNAVAILABLE) == 0


def test_a_reader_gets_its_turn_while_one_caller_decides_flat_out_on_its_own_thread(sup):
    """Seen in the shared-store benchmark: one caller looping on evaluate kept the lease
    keeper's usage read from the lock until its round failed. Readers now ask for a turn
    and each decision yields the GIL once while one waits."""
    sup.report_account_snapshot(AccountSnapshot("main", 1e12))
    gate = gate_of(sup)
    got: list[bool] = []
    done, deciding = threading.Event(), threading.Event()

    def reader() -> None:
        deciding.wait(10)
        for _ in range(20):
            got.append(gate.budget_usage(timeout=0.5) is not None)
            got.append(gate.view(timeout=0.5) is not None)
        done.set()

    t = threading.Thread(target=reader)
    t.start()
    n = 0
    while not done.is_set():  # this thread decides flat out, never sleeping
        sup.evaluate(order(quantity=0.1, order_id=f"f{n}"), timeout=5)
        n += 1
        if n == 100:
            deciding.set()
    t.join(10)
    assert got == [True] * 40 and n > 100


def test_one_waiting_decider_spins_for_the_lock_and_the_others_wait_asleep(sup):
    """Callers that all spun for the lock handed the GIL to one another rather than to its
    holder: 16 callers decided fewer orders than one (issue 28). One waiter spins; the others
    sleep in the waiting room until it has the lock, and every one of them is then decided."""
    sup.report_account_snapshot(AccountSnapshot("main", 1e12))
    gate = gate_of(sup)
    spinning, most = [0], [0]
    real_take = gate._take

    def counted_take(wait: float) -> bool:
        spinning[0] += 1
        most[0] = max(most[0], spinning[0])
        try:
            return real_take(wait)
        finally:
            spinning[0] -= 1

    arrived = threading.Condition()
    waiting = [0]
    room = gate._waiting_room

    class CountedRoom:
        def acquire(self, timeout: float) -> bool:
            with arrived:
                waiting[0] += 1
                arrived.notify_all()
            return room.acquire(timeout=timeout)

        def release(self) -> None:
            room.release()

    gate._take = counted_take  # type: ignore[method-assign]
    gate._waiting_room = CountedRoom()  # type: ignore[assignment]
    answers: list[RiskGateResult] = []

    def caller(i: int) -> None:
        answers.append(sup.evaluate(order(quantity=0.1, order_id=f"w{i}"), timeout=10))

    with held_elsewhere(gate.lock):
        callers = [threading.Thread(target=caller, args=(i,)) for i in range(6)]
        for t in callers:
            t.start()
        with arrived:
            assert arrived.wait_for(lambda: waiting[0] == 6, timeout=5)
    for t in callers:
        t.join(10)
    assert most[0] == 1
    assert sorted(r.order_id for r in answers) == [f"w{i}" for i in range(6)]
    assert {r.decision for r in answers} == {"allow"}


def test_memory_is_given_back_once_many_reservations_have_ended(sup, clock, monkeypatch):
    """A burst of held reservations left the process's RSS at its peak after they expired
    (issue 28: +114 MB after 100,000). The gate's housekeeping gives the freed pages back once
    enough have ended since the most it held, outside its lock, and not before."""
    import supervisor.gate
    from supervisor import heap

    if not heap.can_give_back():
        pytest.skip("this C library has no malloc_trim (not glibc): nothing to give back with")
    monkeypatch.setattr(supervisor.gate, "_GIVE_BACK_AFTER", 5)
    sup.report_account_snapshot(AccountSnapshot("main", 1e12))
    gate = gate_of(sup)
    for i in range(8):
        assert sup.evaluate(order(quantity=0.1, order_id=f"m{i}")).decision == "allow"
    assert gate.tick() and gate.memory_given_back == 0  # the most held: 8
    clock.advance(sup.config.gate.reservation_ttl_s + 1.0)
    feed(sup)
    sup.report_account_snapshot(AccountSnapshot("main", 1e12))
    assert sup.evaluate(order(quantity=0.1, order_id="after")).decision == "allow"  # the 8 expire
    assert gate.tick() and gate.memory_given_back == 1
    assert gate.tick() and gate.memory_given_back == 1  # once per fall, not at every tick
