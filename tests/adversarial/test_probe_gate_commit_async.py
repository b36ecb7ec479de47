"""Found by a second probe of the one gate: an asyncio caller gone with its loop while its
approval waited for the commit does not kill the journal, nor fail the other waiters."""

from __future__ import annotations

import asyncio
import threading

from actors.journal import JournalActor
from supervisor import RiskSupervisor
from supervisor.system import System
from tests.adversarial.test_probe_restart_memory import config, feed
from tests.helpers import order


class Gated(JournalActor):
    may_flush = threading.Event()

    def flush(self) -> int:
        if not Gated.may_flush.is_set():
            return 0
        return super().flush()


def test_a_closed_loops_commit_waiter_does_not_break_the_others(clock, tmp_path, monkeypatch):
    monkeypatch.setattr(System, "journal_actor_class", Gated)
    Gated.may_flush.clear()
    cfg = config(tmp_path, durability="commit", flush_interval_s=10.0)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)

        async def gone():
            task = asyncio.ensure_future(sup.evaluate_async(order(order_id="async-1"), timeout=5))
            for _ in range(5):
                await asyncio.sleep(0)
            task.cancel()  # the caller gives up while its approval waits for the commit

        asyncio.run(gone())  # ... and its loop is closed
        answer = []
        t = threading.Thread(target=lambda: answer.append(sup.evaluate(order(order_id="sync-1"), timeout=3)))
        t.start()
        while not sup.journal.waiting() or len(sup.journal._waiters) < 2:
            t.join(0.01)
        Gated.may_flush.set()
        sup._system._flush_now()  # the flush timer's tell
        t.join(5)
        journal = sup.actor_ref("journal")
        assert journal is not None and journal.is_alive()  # a closed loop's waiter did not kill it
        assert answer[0].decision == "allow", answer[0]
