"""Found by a second probe of the one gate: a decision under way when stop() begins is never
answered allow (its record could miss the journal's last flush and the recall)."""

from __future__ import annotations

import threading

from supervisor import RiskSupervisor
from supervisor.core.messages import EvaluateOrder
from supervisor.core.reasons import ReasonCode as RC
from supervisor.gate import Gate
from supervisor.runtime.wiring import Runtime
from tests.helpers import feed, make_config, order

CONFIG = {"gate": {"max_orders_per_s": 10**6, "max_repeats": 10**6}, "supervision": {"check_interval_s": 1000.0}}


class _Stalling(Gate):
    inside = threading.Event()
    go_on = threading.Event()

    def _evaluate(self, msg):
        if isinstance(msg, EvaluateOrder) and msg.order.order_id == "stall":
            _Stalling.inside.set()
            _Stalling.go_on.wait(5)
        return super()._evaluate(msg)


def test_an_order_decided_across_a_stop_is_never_answered_allow(clock, monkeypatch):
    monkeypatch.setattr(Runtime, "gate_class", _Stalling)
    _Stalling.inside.clear()
    _Stalling.go_on.clear()
    sup = RiskSupervisor(make_config(**CONFIG), clock=clock, poll_upstreams=False)
    sup.start()
    try:
        feed(sup, equity=10_000_000.0)
        answer = []
        caller = threading.Thread(
            target=lambda: answer.append(sup.evaluate(order(order_id="stall", quantity=400.0), timeout=5))
        )  # 40,000 of 50,000
        caller.start()
        assert _Stalling.inside.wait(5)
        sup.stop()  # returns: the journal flushed and stopped; the decision is still under way
        _Stalling.go_on.set()
        caller.join(5)
        sup.start()
        feed(sup, equity=10_000_000.0)
        after = sup.evaluate(order(order_id="next", quantity=400.0))
        assert answer[0].reason_code is RC.GATE_UNAVAILABLE, answer[0]  # not sent: nothing to count
        assert (after.decision, after.adjusted_quantity) == ("allow", 400.0), after
    finally:
        _Stalling.go_on.set()
        sup.stop()
