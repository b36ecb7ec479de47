"""A reload that lands while a gate restarts reaches the new gate."""

from __future__ import annotations

import pytest

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.config import parse_config
from supervisor.core.gate_state import GateState
from supervisor.core.reasons import ReasonCode as RC
from supervisor.runtime.wiring import Runtime
from tests.helpers import GateCrash, config_dict, make_config, order, signal


@pytest.mark.parametrize("when", ["built", "connected"])
def test_a_reload_while_a_gate_restarts_reaches_the_new_gate(clock, monkeypatch, when):
    """The new gate is built with the old config; the reload lands before it is
    connected, or after (either way before the supervisor's "gate" is the new one)."""
    tighter = config_dict()
    tighter["profiles"]["normal"]["allowed_leverage"] = 1.5
    new = parse_config(tighter)
    reload_now: list[bool] = []

    def then_reload(step):
        def wrapped(self: Runtime, *args):
            out = step(self, *args)
            if reload_now:
                reload_now.clear()
                self.reconfigure(new)
            return out

        return wrapped

    if when == "built":
        monkeypatch.setattr(Runtime, "_gate_actor", then_reload(Runtime._gate_actor))
    else:
        monkeypatch.setattr(Runtime, "_connect_gate", then_reload(Runtime._connect_gate))
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        sup.report_ess_active(False)
        sup.report_risk_signal(signal("INFO", clock.now()))
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
        assert sup.evaluate(order(leverage=2.0, quantity=0.1)).decision == "allow"
        dead = sup.gate_ref
        dead.tell(GateCrash())
        dead.actor_stopped.wait(5)
        reload_now.append(True)
        sup.check_actors()  # restarts the gate
        assert sup.gate_ref is not dead and not reload_now
        assert sup.evaluate(order(leverage=2.0, quantity=0.1)).reason_code is RC.LEVERAGE_EXCEEDS_LIMIT


class _ChangedMidCopy(GateState):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def carry_over(self) -> GateState:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("dictionary changed size during iteration")
        return super().carry_over()


def test_a_copy_spoiled_by_the_old_gates_thread_is_made_again(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        runtime = sup._runtime
        runtime._gate_state = _ChangedMidCopy(failures=2)
        assert isinstance(runtime._carried_over(), GateState)
        runtime._gate_state = _ChangedMidCopy(failures=9)
        with pytest.raises(RuntimeError):
            runtime._carried_over()
