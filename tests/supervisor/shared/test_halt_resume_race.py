"""Found by CI: a round of b read the shared halt (a's drill) just before b's own resume
committed, and adopted it after: b took the halt up again as "a halt it lacks" and stayed halted
for good (every later read had the resume's version, no newer than the one b knew)."""

from __future__ import annotations

import threading

from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, started


def test_a_round_read_before_a_resume_here_does_not_halt_again(migrated_dsn, tmp_path, clock):
    a, b = started(migrated_dsn, tmp_path, clock, "a", "b")
    try:
        for s in (a, b):
            feed(s, equity=RICH)
            assert s.shared.keeper.round()
        a.halt("drill", by="ops")
        assert b.shared.keeper.round()
        assert b.evaluate(order(order_id="halted", quantity=0.1)).reason_code is RC.ESS_HALT_ACTIVE
        store = b.shared.store
        real = store.round
        first = threading.Lock()  # taken by the first round only

        def read_then_resume(*args):
            result = real(*args)  # read: a's drill holds
            # The resume commits meanwhile (API thread), once: b's keeper may run a round of its own
            # in this window too (a second resume would find nothing to resume).
            if first.acquire(blocking=False):
                b.resume(by="ops", reason="drill over")
            return result

        store.round = read_then_resume
        assert b.shared.keeper.round()
        store.round = real
        for n in range(2):  # and the rounds after it read the resume: b trades
            assert b.shared.keeper.round()
            r = b.evaluate(order(order_id=f"after-resume-{n}", quantity=0.1))
            assert r.decision == "allow", (r.decision, r.reason_code, r.reason, b.state()["operator_halt"])
        assert a.shared.keeper.round()
        r = a.evaluate(order(order_id="a-after-resume", quantity=0.1))
        assert r.decision == "allow", (r.decision, r.reason_code, r.reason)
    finally:
        a.stop()
        b.stop()
