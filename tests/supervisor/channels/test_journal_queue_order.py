"""The journal queue is in seq order whatever the threads taking records, and a batch the journal
wrote and removed never takes with it a record it did not write (a third probe saw a record of
seq 10 appended after seq 11, then removed unwritten by remove_through(11))."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime

from supervisor.channels.journal_queue import JournalQueue

WHEN = datetime(2026, 1, 5, tzinfo=UTC)


def test_records_from_many_threads_are_written_in_seq_order_and_none_is_lost():
    q = JournalQueue(10**7, block_when_failing=False)
    writers, per_writer = 8, 3_000
    done = threading.Event()
    written: list[int] = []
    problems: list[str] = []

    def journal() -> None:  # as the journal actor: peek a batch, "write" it, remove it by its last seq
        while not (done.is_set() and len(q) == 0):
            try:
                batch = q.peek(100)
            except RuntimeError as exc:  # a deque mutated during iteration
                problems.append(repr(exc))
                return
            if batch:
                seqs = [r.seq for r in batch]
                if seqs != sorted(seqs):
                    problems.append(f"out of order: {seqs[:5]}...")
                written.extend(seqs)
                q.remove_through(seqs[-1])
                q.mark_committed(seqs[-1])

    def writer(k: int) -> None:
        for i in range(per_writer):
            q.event(WHEN, "e", f"w{k}", None, i=i)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        consumer = threading.Thread(target=journal)
        consumer.start()
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        done.set()
        consumer.join(60)
    finally:
        sys.setswitchinterval(old)
    assert problems == []
    assert sorted(written) == list(range(1, writers * per_writer + 1))  # each exactly once, none lost
