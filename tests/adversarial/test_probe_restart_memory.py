"""Issue 22, also-close: what a restart forgot, and what a kill lost.

The recently-approved ids and the in-flight reservations lived only in the
process: an order id replayed after a restart was allowed again, and a restart
freed every cap. They are now recalled from the journal before the new gate
decides. And a killed process lost the decisions of its last flush interval:
`journal.durability = "commit"` answers an approval only once its record is
committed.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from actors.journal import JournalActor
from supervisor import AccountSnapshot, OrderOutcome, RiskSupervisor
from supervisor.config import ConfigError
from supervisor.core.reasons import ReasonCode as RC
from supervisor.journal.store import JOURNAL_NAME, JournalReader, Query
from supervisor.system import System
from tests.helpers import make_config, order, signal

RICH = 10_000_000.0


def config(tmp_path, **journal):
    return make_config(
        state={"dir": str(tmp_path / "state")},
        gate={"duplicate_window_s": 60.0, "max_repeats": 1000, "max_orders_per_s": 1000},
        journal={"writer": "thread", **journal},
    )


def feed(sup: RiskSupervisor) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    for name in sup.config.accounts.accounts:
        sup.report_account_snapshot(AccountSnapshot(name, RICH))


def test_an_id_approved_before_a_restart_is_still_a_duplicate_after_it(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.evaluate(order(order_id="x-1")).decision == "allow"
        sup.report_order_outcome(OrderOutcome("x-1", "filled", 1.0, account="main"))  # ended: not in flight
    clock.advance(10.0)
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.evaluate(order(order_id="x-1")).reason_code is RC.DUPLICATE_ORDER
        assert sup.evaluate(order(order_id="x-2")).decision == "allow"
    clock.advance(61.0)
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.evaluate(order(order_id="x-1")).decision == "allow"  # past the window


def test_orders_in_flight_before_a_restart_still_hold_the_cap_after_it(clock, tmp_path):
    # main's cap is 50,000 USD: two orders of 250 SOL at 100 fill it.
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert [sup.evaluate(order(order_id=f"c-{i}", quantity=250.0)).decision for i in (1, 2)] == ["allow"] * 2
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.health()["gate"]["reservations"] == 2
        assert sup.evaluate(order(order_id="c-3", quantity=250.0)).reason_code is RC.ACCOUNT_EXPOSURE_LIMIT
        sup.report_order_outcome(OrderOutcome("c-1", "cancelled", account="main"))  # its outcome after the restart
        assert sup.evaluate(order(order_id="c-4", quantity=250.0)).decision == "allow"
    clock.advance(31.0)  # past reservation_ttl_s: what was never reported is let go, as before the restart
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        assert sup.health()["gate"]["reservations"] == 0


def test_an_unreadable_journal_at_start_is_said_and_never_a_crash(clock, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / JOURNAL_NAME).write_bytes(b"not a database" * 100)
    with capture_logs() as logs, RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        sup.evaluate(order())
    assert any(e["event"] == "gate_memory_not_recalled" for e in logs)


# -- journal.durability = "commit" --------------------------------------------------------------


def on_disk(sup: RiskSupervisor) -> set[str]:
    reader = JournalReader(Path(sup.config.state.dir) / JOURNAL_NAME)
    try:
        return {r["order_id"] for r in reader.decisions(Query(limit=10_000))}
    finally:
        reader.close()


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_with_commit_durability_an_approval_is_answered_only_once_it_is_on_disk(clock, tmp_path, writer):
    cfg = config(tmp_path, durability="commit", writer=writer, flush_interval_s=10.0)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        for i in range(20):
            r = sup.evaluate(order(order_id=f"k-{i}"))
            assert r.decision == "allow", r.reason
            assert f"k-{i}" in on_disk(sup)  # no flush asked for: it is there because the answer waited


def test_with_commit_durability_concurrent_callers_share_commits(clock, tmp_path):
    cfg = config(tmp_path, durability="commit", flush_interval_s=10.0)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        sup._runtime.gate._state  # noqa: B018 - started
        results: dict[str, str] = {}

        def caller(n: int) -> None:
            for i in range(25):
                oid = f"t{n}-{i}"
                results[oid] = sup.evaluate(order(order_id=oid, quantity=0.1), timeout=10).decision

        threads = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        approved = {oid for oid, d in results.items() if d != "block"}
        assert len(results) == 100 and approved
        assert approved <= on_disk(sup)


class NeverFlushes(JournalActor):
    def flush(self) -> int:
        return 0


def test_with_commit_durability_an_approval_never_committed_is_a_block(clock, tmp_path, monkeypatch):
    monkeypatch.setattr(System, "journal_actor_class", NeverFlushes)
    cfg = config(tmp_path, durability="commit", flush_interval_s=10.0)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        r = sup.evaluate(order(order_id="n-1"), timeout=0.3)
        assert (r.decision, r.reason_code) == ("block", RC.JOURNAL_UNAVAILABLE) and "commit" in r.reason
        blocked = sup.evaluate(order(order_id="n-2", strategy_id="experimental_hft"), timeout=0.3)
        assert blocked.reason_code is RC.STRATEGY_NOT_ALLOWED  # a block never waits for the journal


@pytest.mark.parametrize("journal", [{"enabled": False}, {"on_failure": "continue"}])
def test_commit_durability_needs_a_journal_that_blocks_on_failure(tmp_path, journal):
    with pytest.raises(ConfigError, match=r"journal\.durability: commit needs"):
        config(tmp_path, durability="commit", **journal)


# -- a second probe: resting orders, and rows the recall must not trust -------------------------


def test_an_order_resting_at_the_exchange_still_holds_the_cap_after_a_restart(clock, tmp_path):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.evaluate(order(order_id="r-1", quantity=400.0)).decision == "allow"  # 40,000 of 50,000
        sup.report_order_outcome(OrderOutcome("r-1", "open", account="main"))  # rests: held until it ends
    clock.advance(120.0)  # past the TTL and the duplicate window
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        r = sup.evaluate(order(order_id="r-2", quantity=400.0))
        assert r.reason_code is RC.ACCOUNT_EXPOSURE_LIMIT and r.adjusted_quantity == pytest.approx(100.0), r.reason
        sup.report_order_outcome(OrderOutcome("r-1", "cancelled", account="main"))
        sup.report_order_outcome(OrderOutcome("r-2", "cancelled", account="main"))
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.evaluate(order(order_id="r-3", quantity=400.0)).decision == "allow"  # it ended: let go


def tamper(tmp_path, sql: str) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "state" / JOURNAL_NAME)
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE decisions SET price = -1e9 WHERE decision = 'allow'",
        "UPDATE decisions SET adjusted_quantity = -400 WHERE decision = 'allow'",
        "UPDATE decisions SET ts_us = 'zzz' WHERE decision = 'allow'",
        "UPDATE decisions SET ts_us = 9223372036854775807 WHERE decision = 'allow'",
        "UPDATE decisions SET adjusted_quantity = 1e308, price = 1e308 WHERE decision = 'allow'",
        "UPDATE decisions SET account = 'ghost' WHERE decision = 'allow'",
        "UPDATE decisions SET side = x'00' WHERE decision = 'allow'",
    ],
)
def test_a_tampered_journal_row_is_skipped_never_booked_and_never_a_failed_start(clock, tmp_path, sql):
    with RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.evaluate(order(order_id="t-1", quantity=400.0)).decision == "allow"
    tamper(tmp_path, sql)
    with capture_logs() as logs, RiskSupervisor(config(tmp_path), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.health()["gate"]["reservations"] == 0  # the row was not trusted
        r = sup.evaluate(order(order_id="t-2", quantity=900.0))  # 90,000 on a 50,000 cap
        assert r.reason_code is RC.ACCOUNT_EXPOSURE_LIMIT and r.adjusted_quantity <= 500.0, r.reason
    recalled = [e for e in logs if e["event"] == "gate_memory_recalled"]
    assert recalled and recalled[0]["skipped"] >= 1
