"""Issue 22, item 2: a persisted operator halt was read after the gate started.

`start()` started the gate and the pollers, then read `operator_halt.json`:
with a slow disk an in-process caller had orders allowed meanwhile. Every
persisted block must be in the gate before its first order is decided.
"""

from __future__ import annotations

import threading

from supervisor import RiskSupervisor
from supervisor.ops.controls import OperatorControls
from tests.helpers import feed, make_config, order


def test_no_order_is_allowed_while_the_persisted_halt_is_still_being_read(clock, monkeypatch):
    config = make_config()
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as first:
        first.halt("incident 42", by="alice")
    reading, slow_disk = threading.Event(), threading.Event()
    real_read = OperatorControls._read_halt

    def slow_read(self):
        reading.set()
        assert slow_disk.wait(10)
        return real_read(self)

    monkeypatch.setattr(OperatorControls, "_read_halt", slow_read)
    sup = RiskSupervisor(config, clock=clock, poll_upstreams=False)
    starting = threading.Thread(target=sup.start)
    starting.start()
    try:
        assert reading.wait(10)
        feed(sup)  # an eager caller reports state as soon as it can ...
        decisions = [sup.evaluate(order(order_id=f"early-{i}"), timeout=0.2) for i in range(20)]
        assert all(r.decision == "block" for r in decisions), [r.reason for r in decisions if r.allowed]
    finally:
        slow_disk.set()
        starting.join(10)
    try:
        feed(sup)
        later = sup.evaluate(order(order_id="later"))
        assert later.decision == "block" and "incident 42" in later.reason
    finally:
        sup.stop()


def test_a_restart_keeps_the_halt_for_its_very_first_order(clock):
    config = make_config()
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as first:
        first.halt("incident 43", by="alice")
    for _ in range(8):  # the probe saw 20 of 30 restarts let orders through
        with RiskSupervisor(config, clock=clock, poll_upstreams=False) as sup:
            feed(sup)
            r = sup.evaluate(order())
            assert r.decision == "block" and "incident 43" in r.reason


def test_an_active_override_is_in_the_gate_before_its_first_order(clock):
    from supervisor.core.reasons import ReasonCode as RC

    config = make_config()
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as first:
        first.halt("incident 44", by="alice")
        proposal = first.propose_override("main", "flatten", 300, by="alice")
        first.approve_override(proposal.id, by="bob")
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        sup.report_account_snapshot(
            {"account": "main", "equity": 10_000.0,
             "positions": [{"symbol": "SOLUSDT", "exchange": "binance", "quantity": 5.0, "mark_price": 100.0}]}
        )  # fmt: skip
        r = sup.evaluate(order(side="sell", quantity=1.0, reduce_only=True))
        assert r.reason_code is RC.OVERRIDE_APPLIED, r.reason


def test_a_halt_file_nested_too_deeply_halts_and_never_fails_the_start(clock, tmp_path):
    from pathlib import Path

    config = make_config()
    state = Path(config.state.dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / "operator_halt.json").write_text("[" * 200_000 + "]" * 200_000)
    with RiskSupervisor(config, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        r = sup.evaluate(order())
        assert r.reason_code.value == "ESS_HALT_ACTIVE" and "unreadable" in r.reason
