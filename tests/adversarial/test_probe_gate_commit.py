"""Found by a second probe of the one gate: under journal.durability = "commit" an approval
whose record was never queued (the queue full) is never answered allow, even when a flush
clears the journal's verdict between the decision and the commit check."""

from __future__ import annotations

from pathlib import Path

from supervisor import RiskSupervisor
from supervisor.gate import Gate
from supervisor.journal.store import JOURNAL_NAME, JournalReader, Query
from supervisor.runtime.wiring import Runtime
from tests.adversarial.test_probe_restart_memory import config, feed


class _JournalRunsRightAfter(Gate):
    """The journal's flush timer fires between the gate's answer and the caller's commit check."""

    hook = None

    def decide(self, msg, wait):
        result = super().decide(msg, wait)
        if (
            _JournalRunsRightAfter.hook is not None
            and getattr(msg, "order", None) is not None
            and msg.order.order_id == "lost"
        ):
            _JournalRunsRightAfter.hook()
        return result


def on_disk(sup):
    reader = JournalReader(Path(sup.config.state.dir) / JOURNAL_NAME)
    try:
        return {r["order_id"] for r in reader.decisions(Query(limit=10_000))}
    finally:
        reader.close()


def test_commit_durability_never_answers_allow_for_a_record_that_was_dropped(clock, tmp_path, monkeypatch):
    monkeypatch.setattr(Runtime, "gate_class", _JournalRunsRightAfter)
    cfg = config(tmp_path, durability="commit", flush_interval_s=10.0, max_queue=100)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        _JournalRunsRightAfter.hook = lambda: sup.flush_journal()
        try:
            feed(sup)
            sup.flush_journal()
            q = sup.journal
            while len(q) < q.max_records:  # other threads' events fill the queue (a burst)
                q.event(clock.now(), "filler", "test")
            assert q.blocking is None
            r = sup.evaluate(order_for("lost"), timeout=2.0)
            sup.flush_journal()
            assert r.decision == "block" or "lost" in on_disk(sup), r
        finally:
            _JournalRunsRightAfter.hook = None


def order_for(oid):
    from tests.helpers import order

    return order(order_id=oid)
