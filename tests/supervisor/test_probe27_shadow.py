"""Probe 27: the shadow config (supervisor/shadow.py, supervisor/ops/shadow.py). A shadow must never
change a live answer, and must never sit silently stuck while saying it runs."""

from __future__ import annotations

import io
import json
from pathlib import Path

from supervisor import RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.config import load_config, parse_config
from supervisor.journal.store import JOURNAL_NAME
from supervisor.shadow import follow
from tests.helpers import config_dict, feed, order
from tests.supervisor.test_shadow import WAIT_S, fed, one_shadowed, tables, write

STUCK_S = 10.0  # real seconds a shadow that follows the journal has to decide one more order


def test_the_shadow_follows_past_a_long_run_of_events(tmp_path):
    """`follow` reads seqs (last, last + 20,000]; seqs are shared with events. Found: after 20,000+
    events in a row (no input, no decision) it finds nothing in its window, never moves `last` on and
    never decides another order, while the live side shows it `running`."""
    clock = FakeClock()
    cfg = parse_config(config_dict(state={"dir": str(tmp_path / "state")}))
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        sup.evaluate(order(order_id="a"))
        for _ in range(20_001):
            sup.journal.event(clock.now(), "messages_reported", "api", "main", count=1)
        sup.flush_journal()
        sup.evaluate(order(order_id="b"))
        sup.flush_journal()
        run = sup.journal.run
    out = io.StringIO()
    rounds: list[int] = []

    def wait() -> bool:  # five polls with nothing new, then stop
        rounds.append(1)
        return len(rounds) >= 5

    follow(cfg.state.dir / JOURNAL_NAME, run, cfg, 0, out, wait)
    said = [json.loads(line) for line in out.getvalue().splitlines()]
    assert said[-1]["k"] == "progress" and said[-1]["decided"] == 2, said


def test_a_journal_file_replaced_under_a_running_shadow_is_followed_or_said(files):
    """The live journal deleted while running is replaced by a new file (test_journal.py). Found: the
    shadow keeps its connection to the deleted file, never decides another order, and /v1/shadow
    still says `running` with no problem (risk_gate_shadow_up 1)."""
    live, _ = files
    with RiskSupervisor(load_config(live), clock=FakeClock(), poll_upstreams=False) as sup:
        shadow = one_shadowed(sup)
        path = sup.config.state.dir / JOURNAL_NAME
        for suffix in ("", "-wal", "-shm"):
            part = Path(str(path) + suffix)
            if part.exists():
                part.unlink()
        fed(sup)
        sup.evaluate(order(order_id="b", leverage=3.0))
        sup.flush_journal()
        assert path.exists()  # the live side wrote a new journal
        assert shadow.wait_until(lambda s: s.decided >= 2 or s.problem is not None, STUCK_S), sup.shadow()


def test_a_shadow_that_disagrees_a_lot_does_not_block_live_orders(tmp_path):
    """Each disagreement is journaled as an event in the live journal's queue. Found: a candidate
    that disagrees with a backlog of orders fills journal.max_queue with shadow_disagreement events,
    and the next live order is blocked JOURNAL_UNAVAILABLE ("journal queue full"): the shadow
    changed a live answer (docs/replay.md: "a shadow that is slow, wrong or dead changes no live
    answer")."""
    write(tmp_path / "candidate.toml", tables(tmp_path, leverage=2.0))
    journal = {"writer": "thread", "flush_interval_s": 10.0, "max_queue": 200}
    gate = {"max_orders_per_s": 1000, "duplicate_window_s": 0.0, "max_repeats": 1000}
    shadow = {"config": "candidate.toml", "poll_interval_s": 0.05}
    live = write(tmp_path / "live.toml", tables(tmp_path, shadow=shadow, journal=journal, gate=gate))
    with RiskSupervisor(load_config(live), clock=FakeClock(), poll_upstreams=False) as sup:
        fed(sup)
        for k in range(3):  # 450 orders at 3x, each flushed: the live journal keeps up with them
            for i in range(150):
                assert sup.evaluate(order(order_id=f"o{k}-{i}", leverage=3.0, quantity=0.1)).decision == "allow"
            sup.flush_journal()
        runner = sup._system.shadow
        assert runner.wait_until(lambda s: s.decided >= 450, WAIT_S), runner.summary()
        result = sup.evaluate(order(order_id="after", quantity=0.1))
        assert (result.decision, result.reason) == ("allow", "all checks passed")
