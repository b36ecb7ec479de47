"""Probe 2: a halt through b is never taken by a when the database's clock stepped back
between a's resume and b's halt. controls._adopt_halt ignores a row whose changed_at is not
after the newest one a made or saw (meant for stale reads), so a new write stamped by a clock
that went back looks stale: b is halted, a keeps allowing orders for as long as the step."""

from __future__ import annotations

import psycopg

from tests.helpers import feed, order
from tests.supervisor.shared.test_instances import RICH, started

# The database host's clock, from now on, 60 s behind what it was (NTP step, VM restore, failover
# to a replica whose clock is behind): every clock_timestamp() the halt row gets is 60 s earlier.
CLOCK_STEPPED_BACK = """
CREATE FUNCTION clock_back() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.changed_at := NEW.changed_at - INTERVAL '60 seconds'; RETURN NEW; END $$;
CREATE TRIGGER clock_back BEFORE UPDATE ON operator_halt FOR EACH ROW EXECUTE FUNCTION clock_back();
"""


def test_a_halt_stamped_by_a_clock_stepped_back_is_lost_on_the_other_instance(migrated_dsn, tmp_path, clock):
    both = started(migrated_dsn, tmp_path, clock, "a", "b")
    a, b = both
    for sup in both:
        feed(sup, equity=RICH)
    try:
        a.halt("drill", by="alice")
        a.resume(by="alice")  # a remembers this resume's changed_at, T
        for sup in (a, b):
            assert sup.shared.keeper.round()
        with psycopg.connect(migrated_dsn, autocommit=True) as c:
            c.execute(CLOCK_STEPPED_BACK)
        b.halt("venue outage", by="bob")  # the row: active, changed_at ~ T - 60 s
        for _ in range(3):
            assert a.shared.keeper.round()
            assert b.shared.keeper.round()
        assert b.evaluate(order(order_id="via-b", quantity=0.1)).decision == "block"
        r = a.evaluate(order(order_id="via-a", quantity=0.1))
        assert r.decision == "block", (r.decision, r.reason_code, a.state()["operator_halt"])
    finally:
        for sup in both:
            sup.stop()
