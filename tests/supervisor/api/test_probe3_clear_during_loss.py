"""Probe 25: a cooldown "cleared" while the loss limit that tripped it still holds.

POST /v1/lockouts/{account}/clear answers 200 `cleared` while the account is still beyond its daily
loss limit (its lockouts: DAILY_LOSS_LIMIT and LOSS_COOLDOWN). The loss keeps blocking for now, but
the clear is recorded with this time, after the trip: the moment equity comes back inside the
limit, opening orders pass at once, with no cooldown at all. The cooldown exists for exactly that
moment (`cooldown_minutes` after the trip, even if equity recovers); an operator has talked it away
before it began, which docs/http-api.md says a clear cannot do ("a loss beyond its limit holds
while it lasts: an operator cannot talk it away"). Expected: 409 while the loss limit holds (the
clear is for a cooldown after the loss), or a clear that lifts only the cooldown running now."""

from __future__ import annotations

from supervisor import RiskSupervisor
from supervisor.clock import FakeClock
from tests.supervisor.api.conftest import ALICE, DESK
from tests.supervisor.api.test_controls import call, decide
from tests.supervisor.api.test_lockouts import T, config, fresh


def test_a_cooldown_cannot_be_cleared_while_the_loss_that_trips_it_still_holds(tmp_path):
    clock = FakeClock(start=T)
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        sup.serve_api(port=0)
        fresh(sup, 10_000.0)
        fresh(sup, 9_700.0)  # -3 % against -2 %: the daily loss limit trips (cooldown 60 min)
        clock.advance(60)
        fresh(sup, 9_700.0)
        codes = {lk["code"] for lk in call(sup, "GET", "/v1/lockouts", DESK).json()["main"]}
        assert codes == {"DAILY_LOSS_LIMIT", "LOSS_COOLDOWN"}
        assert decide(sup, quantity=0.5)["reason_code"] == "DAILY_LOSS_LIMIT"
        r = call(sup, "POST", "/v1/lockouts/main/clear", ALICE, {"reason": "mid-loss"})
        cleared = r.status_code
        clock.advance(60)
        fresh(sup, 9_900.0)  # two minutes after the trip, back inside the limit
        out = decide(sup, quantity=0.5)
        assert (cleared, out["reason_code"]) == (409, "LOSS_COOLDOWN"), (
            f"clear answered {cleared} during the loss; two minutes after the trip an opening order is "
            f"{out['decision']} ({out['reason_code']})"
        )
