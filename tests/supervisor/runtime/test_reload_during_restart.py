"""A reload that lands while the gate's actor restarts reaches the gate."""

from __future__ import annotations

import pytest

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.config import parse_config
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import GateCrash, HoldableGateActor, config_dict, make_config, order, signal


@pytest.mark.parametrize("when", ["starting", "dead"])
def test_a_reload_while_the_gate_restarts_reaches_the_gate(clock, monkeypatch, when):
    """The reload lands while the new owner starts, or while there is none: the
    gate is one object, so it takes the new config either way."""
    tighter = config_dict()
    tighter["profiles"]["normal"]["allowed_leverage"] = 1.5
    new = parse_config(tighter)
    reload_now: list[RiskSupervisor] = []

    class ReloadingOnStart(HoldableGateActor):
        def open_resources(self) -> None:
            if reload_now:
                reload_now.pop()._runtime.reconfigure(new)
            super().open_resources()

    from supervisor.runtime.wiring import Runtime

    monkeypatch.setattr(Runtime, "gate_actor_class", ReloadingOnStart)
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        sup.report_ess_active(False)
        sup.report_risk_signal(signal("INFO", clock.now()))
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
        assert sup.evaluate(order(leverage=2.0, quantity=0.1)).decision == "allow"
        dead = sup.gate_ref
        dead.tell(GateCrash())
        dead.actor_stopped.wait(5)
        if when == "dead":
            sup._runtime.reconfigure(new)
        else:
            reload_now.append(sup)
        assert sup.evaluate(order(leverage=2.0, quantity=0.1)).reason_code is RC.GATE_UNAVAILABLE
        sup.check_actors()  # restarts the gate's actor
        assert sup.gate_ref is not dead and not reload_now
        assert sup.evaluate(order(leverage=2.0, quantity=0.1)).reason_code is RC.LEVERAGE_EXCEEDS_LIMIT
