"""Found by a second probe of the one gate: state refused while too many posts wait is always
resynced before the next decision; a refused report (no latest to resync) blocks every order."""

from __future__ import annotations

import threading
from collections import deque

import pytest

import supervisor.gate
from supervisor import AccountSnapshot
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import feed, order, signal


@pytest.fixture
def sup(sup_unlimited):
    return sup_unlimited


class _PausingDeque(deque):
    """A poster that read `len(pending)` as full is pre-empted right there (one GIL switch)."""

    def __init__(self, *a):
        super().__init__(*a)
        self.pause_poster: threading.Thread | None = None
        self.paused = threading.Event()
        self.go_on = threading.Event()

    def __len__(self):
        n = super().__len__()
        if threading.current_thread() is self.pause_poster and n >= supervisor.gate._MAX_PENDING:
            self.paused.set()
            self.go_on.wait(5)
        return n


def test_a_post_refused_after_the_holder_checked_lost_is_never_resynced_before_a_decision(sup, monkeypatch, clock):
    monkeypatch.setattr(supervisor.gate, "_MAX_PENDING", 20)
    gate = sup._runtime.gate
    pending = _PausingDeque()
    gate._pending = pending
    gate.lock.acquire()  # a holder (a long decision)
    for _ in range(20):
        sup.report_message("tiny")  # queue full
    poster = threading.Thread(target=lambda: sup.report_risk_signal(signal("CRITICAL", clock.now())))
    pending.pause_poster = poster
    poster.start()
    assert pending.paused.wait(5)  # read "full", not yet counted as lost
    gate._apply_pending()  # the holder drains: nothing lost yet
    gate._release()
    pending.go_on.set()
    poster.join(5)
    assert gate._lost == 1 and not gate._pending
    r = sup.evaluate(order(quantity=0.1))
    assert r.reason_code is RC.GLOBAL_RISK_CRITICAL, r  # the CRITICAL posted before it


def test_refused_message_reports_block_every_order(sup, monkeypatch, clock):
    """MessageSent refused while the queue is full: the message rate never sees them."""
    monkeypatch.setattr(supervisor.gate, "_MAX_PENDING", 20)
    sup.report_account_snapshot(AccountSnapshot("main", 10_000_000.0))
    gate = sup._runtime.gate
    cap = sup.config.gate.max_messages_per_s
    gate.lock.acquire()
    for _ in range(20):
        sup.report_message("tiny")  # fills the queue
    for _ in range(cap + 5):
        sup.report_message("main")  # refused
    gate._release()
    r = sup.evaluate(order(quantity=0.1))
    assert r.reason_code is RC.GATE_UNAVAILABLE and "refused" in r.reason, r  # the rate is unknown: fail closed


def test_a_refused_outcome_blocks_every_order_until_a_start(sup, monkeypatch, clock):
    from supervisor.core.messages import OrderOutcome

    monkeypatch.setattr(supervisor.gate, "_MAX_PENDING", 20)
    sup.report_account_snapshot(AccountSnapshot("main", 10_000_000.0))
    assert sup.evaluate(order(quantity=400.0, order_id="rest")).decision == "allow"  # 40k of 50k
    gate = sup._runtime.gate
    gate.lock.acquire()
    for _ in range(20):
        sup.report_message("tiny")
    sup.report_order_outcome(OrderOutcome("rest", "open", account="main"))  # refused
    gate._release()
    clock.advance(sup.config.gate.reservation_ttl_s + 1)
    feed(sup)
    sup.report_account_snapshot(AccountSnapshot("main", 10_000_000.0))
    r = sup.evaluate(order(quantity=400.0))
    assert r.reason_code is RC.GATE_UNAVAILABLE, r  # the resting order's fate is unknown: fail closed
