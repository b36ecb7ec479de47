"""Alerts in real time: a halt flipped in the upstream simulator reaches a webhook within 5 s, and a
hanging webhook leaves the gate's evaluate latency alone."""

from __future__ import annotations

import statistics

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.clock import SystemClock
from supervisor.core.reasons import ReasonCode as RC
from supervisor.sim.simulator import UpstreamSimulator
from tests.actors.test_sources import healthy, source_config
from tests.helpers import make_config, order, signal
from tests.supervisor.ops.webhook_receiver import Receiver

_real = SystemClock()


def test_a_halt_flipped_in_the_simulator_reaches_the_webhook_within_5_s_and_its_end_too(tmp_path):
    with UpstreamSimulator() as sim, Receiver() as hook:
        healthy(sim)
        config = source_config(
            sim,
            tmp_path / "KILL",
            risk_v3={"poll_interval_s": 0.5, "max_age_s": 5.0},
            ess={"poll_interval_s": 0.25, "max_age_s": 3.0},
            accounts={"poll_interval_s": 0.5},
            alerts={"enabled": True, "webhooks": {"oncall": {"url": hook.url}}},  # interval_s: the default, 1 s
        )
        with RiskSupervisor(config, clock=SystemClock()) as sup:
            assert sup.wait_ready(10), sup.readiness()
            flipped = _real.monotonic()
            sim.set_ess(True, "desk halt")
            assert hook.wait_for(lambda r: len(r.bodies) >= 1, timeout=10)
            halt_delay = hook.arrived[0] - flipped
            flipped = _real.monotonic()
            sim.set_ess(False)
            assert hook.wait_for(lambda r: len(r.bodies) >= 2, timeout=10)
            resolve_delay = hook.arrived[1] - flipped
    assert [(b["key"], b["state"]) for b in hook.bodies] == [("halt", "firing"), ("halt", "resolved")]
    assert halt_delay < 5.0, halt_delay
    assert resolve_delay < 5.0, resolve_delay


def _evaluate_p50(sup: RiskSupervisor, n: int = 300) -> float:
    """The median round trip of `n` evaluations; every one must be answered by the gate."""
    took = []
    for i in range(n):
        start = _real.monotonic()
        result = sup.evaluate(order(order_id=f"o-{i}"))
        took.append(_real.monotonic() - start)
        assert result.reason_code != RC.GATE_UNAVAILABLE, result
    return statistics.median(took)


def _latency_config(hooks: dict):
    return make_config(
        gate={"max_orders_per_s": 1_000_000, "max_messages_per_s": 1_000_000},
        accounts={"max_age_s": 600.0},
        risk_v3={"max_age_s": 600.0, "poll_interval_s": 300.0},
        ess={"max_age_s": 600.0, "poll_interval_s": 300.0},
        # Account `tiny` never reports: fail_closed and source_stale fire at the first tick.
        alerts={
            "enabled": bool(hooks),
            "interval_s": 0.05,
            "startup_grace_s": 0,
            "source_stale_s": 0,
            "webhooks": hooks,
        },
    )


def _feed(sup: RiskSupervisor) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    for name in ("main", "bold"):
        sup.report_account_snapshot(AccountSnapshot(name, 10_000_000.0))


def test_a_hanging_webhook_leaves_the_gates_evaluate_latency_alone():
    with RiskSupervisor(_latency_config({}), clock=SystemClock(), poll_upstreams=False) as sup:
        _feed(sup)
        _evaluate_p50(sup, 50)  # warm up
        baseline = _evaluate_p50(sup)
    with Receiver(hang=True) as stuck:
        hooks = {"stuck": {"url": stuck.url, "timeout_s": 30.0}}
        with RiskSupervisor(_latency_config(hooks), clock=SystemClock(), poll_upstreams=False) as sup:
            _feed(sup)
            assert stuck.wait_for(lambda r: r.requests == 1)  # the worker hangs in its POST from now on
            _evaluate_p50(sup, 50)
            hanging = _evaluate_p50(sup)
            assert stuck.requests == 1
            assert sup.alerting is not None
            assert set(sup.alerting.settle()) >= {"fail_closed", "source_stale:account:tiny"}
            stuck.close()
    assert hanging < max(3 * baseline, baseline + 0.002), (baseline, hanging)
