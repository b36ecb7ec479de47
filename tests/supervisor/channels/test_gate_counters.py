"""The metrics count decisions from the journal's stream (issue 28, target 5: nothing counted on the
decision path), and still miss none and count none twice: a decision the journal's queue had no
room for, one refused before the gate, a batch taken again after a failed write or by a journal's
successor, and a read of the metrics before the journal took what is queued."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import supervisor.gate as gate_module
from supervisor import RiskSupervisor
from supervisor.channels.gate_counters import LATENCY_BUCKETS_S, GateCounters
from supervisor.channels.journal_queue import DecisionRecord, JournalQueue
from supervisor.core.evaluate import block_result
from supervisor.core.messages import EvaluateOrder, RiskGateResult
from supervisor.core.orders import validate_order
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import feed, make_config, order

WHEN = datetime(2026, 1, 5, tzinfo=UTC)


def blocked(code: RC = RC.LEVERAGE_EXCEEDS_LIMIT):
    return block_result(code, "why", "o-1", WHEN)


def total(counters: GateCounters) -> int:
    return sum(counters.snapshot()[0].values())


def test_a_record_taken_again_or_by_a_successor_is_counted_once():
    counters = GateCounters(["main"])
    q = JournalQueue(100, block_when_failing=False)
    for i in range(5):
        q.decision(blocked(), None, "main", latency=0.001 * i)
    batch = [r for r in q.peek(100) if type(r) is DecisionRecord]
    counters.count_records(batch[:3])  # a write failed after this: the same records are peeked again
    counters.count_records(batch)
    counters.count_records(batch)  # a journal's successor takes the same batch
    decisions, buckets, _ = counters.snapshot()
    assert decisions == {("block", RC.LEVERAGE_EXCEEDS_LIMIT, "main"): 5}
    assert sum(buckets) == 5


def test_a_decision_the_queue_had_no_room_for_is_counted_where_it_was_decided():
    counters = GateCounters(["main"])
    q = JournalQueue(2, block_when_failing=True)
    q.count_into(counters)
    seqs = [q.decision(blocked(RC.JOURNAL_UNAVAILABLE), None, "main") for _ in range(5)]
    assert seqs[2:] == [0, 0, 0]  # not queued
    assert total(counters) == 5  # the 3 dropped when decided, the 2 queued when read


def test_labels_are_configured_accounts_only_and_follow_a_reload():
    counters = GateCounters(["main"])
    counters.count("block", RC.UNKNOWN_ACCOUNT, "mallory", None)
    counters.count("block", RC.UNKNOWN_ACCOUNT, None, None)
    counters.accounts = frozenset(("main", "mallory"))
    counters.count("block", RC.UNKNOWN_ACCOUNT, "mallory", None)
    assert counters.snapshot()[0] == {
        ("block", RC.UNKNOWN_ACCOUNT, "other"): 2,
        ("block", RC.UNKNOWN_ACCOUNT, "mallory"): 1,
    }


def test_every_journaled_decision_is_counted_the_gate_s_and_those_refused_before_it(clock):
    """Before, a block decided before the gate (a timeout that is not one, an account the API client
    may not trade) was journaled but never counted."""
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        counters = sup._runtime.counters
        assert counters is not None
        feed(sup)
        assert sup.evaluate(order(order_id="a")).decision == "allow"
        assert sup.evaluate(order(leverage=4.0)).decision == "block"
        assert sup.evaluate(order(), timeout=float("nan")).reason_code is RC.INVALID_ORDER
        assert sup._decider.reject(order(), "not yours", RC.CLIENT_NOT_PERMITTED).decision == "block"
        decisions, buckets, _ = counters.snapshot()  # read before the journal took them: counted now
        assert decisions == {
            ("allow", RC.ALL_CHECKS_PASSED, "main"): 1,
            ("block", RC.LEVERAGE_EXCEEDS_LIMIT, "main"): 1,
            ("block", RC.INVALID_ORDER, "main"): 1,
            ("block", RC.CLIENT_NOT_PERMITTED, "main"): 1,
        }
        assert sum(buckets) == 2  # the gate's two are timed; the refusals never reached it
        sup.flush_journal()
        assert counters.snapshot()[0] == decisions  # the journal's thread took them: not counted again
        assert sup.evaluate(order(order_id="b")).decision == "allow"
        sup.flush_journal()
        assert counters.snapshot()[0][("allow", RC.ALL_CHECKS_PASSED, "main")] == 2


def test_metrics_off_counts_nothing_and_the_journal_still_takes_every_decision(clock):
    with RiskSupervisor(make_config(metrics={"enabled": False}), clock=clock, poll_upstreams=False) as sup:
        assert sup._runtime.counters is None and sup.journal.counters is None
        feed(sup)
        assert sup.evaluate(order()).decision == "allow"
        assert sup.flush_journal() >= 1


def test_an_order_that_reached_the_gate_after_its_timeout_is_in_the_latency_histogram_once(clock):
    """The slow tail stays visible: its GATE_UNAVAILABLE record carries the time since the request."""
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        counters, gate = sup._runtime.counters, sup._runtime.gate
        assert counters is not None
        feed(sup)
        valid = validate_order(order(), sup.config)
        assert not isinstance(valid, str), valid
        now = clock.monotonic()
        late = EvaluateOrder(valid, None, now - 0.1, now - 0.2, sup.config)  # asked 0.2 s ago, gave up 0.1 s ago
        result = gate.decide(late, 1.0)
        assert isinstance(result, RiskGateResult) and result.reason_code is RC.GATE_UNAVAILABLE
        decisions, buckets, latency_sum = counters.snapshot()
        assert decisions == {("block", RC.GATE_UNAVAILABLE, "main"): 1}
        assert buckets[LATENCY_BUCKETS_S.index(0.25)] == 1 and sum(buckets) == 1  # 0.1 .. 0.25 s
        assert latency_sum == pytest.approx(0.2)


def test_while_the_journal_cannot_write_every_queued_decision_is_counted_not_only_its_first_batch(tmp_path, clock):
    """A probe: the counts froze at about 5,000 (one batch) while the journal could not write."""
    (tmp_path / "journal.sqlite").mkdir()  # a folder where the journal's file goes: it cannot open
    cfg = make_config(state={"dir": str(tmp_path)}, journal={"on_failure": "continue"})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        counters = sup._runtime.counters
        assert counters is not None
        feed(sup)
        for i in range(6_000):
            sup.evaluate(order(order_id=f"o{i}", leverage=4.0))
        sup.flush_journal()
        assert len(sup.journal) >= 6_000  # still queued, unwritten
        assert counters.snapshot()[0] == {("block", RC.LEVERAGE_EXCEEDS_LIMIT, "main"): 6_000}
        assert counters.snapshot()[0] == {("block", RC.LEVERAGE_EXCEEDS_LIMIT, "main"): 6_000}  # not twice


def test_an_approval_decided_after_its_callers_timeout_counts_once_as_the_block_the_caller_got(clock, monkeypatch):
    """A probe: it counted as an allow and as a GATE_UNAVAILABLE (the journal keeps both records)."""
    real = gate_module.decide

    def slow(*args):  # the checks take 3 s of the gate's clock: past the caller's 2 s timeout
        clock.advance(3.0)
        return real(*args)

    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        counters = sup._runtime.counters
        assert counters is not None
        feed(sup)
        monkeypatch.setattr(gate_module, "decide", slow)
        assert sup.evaluate(order()).reason_code is RC.GATE_UNAVAILABLE
        decisions, buckets, _ = counters.snapshot()
        assert decisions == {("block", RC.GATE_UNAVAILABLE, "main"): 1} and sum(buckets) == 1
        sup.flush_journal()
        kinds = [r["reason_code"] for r in sup.decisions(limit=10)]
        assert sorted(kinds) == ["ALL_CHECKS_PASSED", "GATE_UNAVAILABLE"]  # the journal keeps both


def test_under_commit_durability_an_approval_not_committed_in_time_counts_once(clock):
    """A probe: the approval and the JOURNAL_UNAVAILABLE that replaced it both counted."""
    with RiskSupervisor(make_config(journal={"durability": "commit"}), clock=clock, poll_upstreams=False) as sup:
        counters = sup._runtime.counters
        assert counters is not None
        feed(sup)
        sup.journal.flush_now = lambda: None  # the journal's flush comes late (a stalled disk)
        assert sup.evaluate(order(), timeout=0.2).reason_code is RC.JOURNAL_UNAVAILABLE
        assert sum(counters.snapshot()[0].values()) == 1
