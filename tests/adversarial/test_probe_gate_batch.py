"""Found by a second probe of the one gate: POST /v1/evaluate/batch decides its orders in list
order, whatever waited for the gate's lock."""

from __future__ import annotations

import threading

import httpx

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.gate import Gate
from supervisor.runtime.wiring import Runtime
from tests.helpers import feed, make_config, order
from tests.supervisor.api.conftest import DESK, clients, operators


class _ReleasedBetween(Gate):
    """Another caller's decision (holding the lock) ends right after the batch's first order
    found the lock taken and was handed to the actor."""

    holder_done: threading.Event | None = None

    def decide(self, msg, wait):
        result = super().decide(msg, wait)
        done = _ReleasedBetween.holder_done
        if done is not None and wait is None and result is None and msg.order.order_id == "first":
            done.set()
            while self.lock.locked():  # the holder lets go
                pass
        return result


def test_a_batch_is_decided_in_list_order(clock, monkeypatch):
    monkeypatch.setattr(Runtime, "gate_class", _ReleasedBetween)
    cfg = make_config(
        api={"operators": operators(), "clients": clients()},
        gate={"max_orders_per_s": 10**6, "max_repeats": 10**6},
        supervision={"check_interval_s": 1000.0},
    )
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        sup.report_account_snapshot(AccountSnapshot("main", 10_000_000.0))
        server = sup.serve_api(port=0)
        gate = sup._runtime.gate
        done = _ReleasedBetween.holder_done = threading.Event()
        taken = threading.Event()

        def holder():
            with gate.lock:
                taken.set()
                done.wait(5)

        t = threading.Thread(target=holder)
        t.start()
        assert taken.wait(5)
        try:
            with httpx.Client(base_url=server.url, timeout=10.0, headers={"Authorization": f"Bearer {DESK}"}) as c:
                body = [order(order_id="first", quantity=400.0), order(order_id="second", quantity=400.0)]
                got = c.post("/v1/evaluate/batch", json=body).json()
        finally:
            _ReleasedBetween.holder_done = None
            done.set()
            t.join(5)
        assert (got[0]["decision"], got[0]["adjusted_quantity"]) == ("allow", 400.0), got
