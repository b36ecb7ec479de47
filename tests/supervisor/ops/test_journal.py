"""The decision journal: every decision on disk with its inputs, the events that
explain them, queries, and what happens when it cannot write."""

from __future__ import annotations

import io
import json
import sqlite3
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from actors.journal import JournalActor
from supervisor import AccountSnapshot, Position, RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.core.reasons import ReasonCode as RC
from supervisor.journal import query
from supervisor.journal.sqlite_file import ROWS_PER_INSERT as _ROWS
from supervisor.journal.store import JournalReader, Query, to_us
from supervisor.system import System
from tests.helpers import make_config, order, signal


def feed(sup: RiskSupervisor, equity: float = 10_000.0, positions=()) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", equity, tuple(positions)))


def journal_of(sup: RiskSupervisor) -> Path:
    return sup.config.state.dir / "journal.sqlite"


def rows(sup: RiskSupervisor, **filters) -> list[dict]:
    sup.flush_journal()
    reader = JournalReader(journal_of(sup))
    try:
        return reader.decisions(Query(limit=1000, **filters))
    finally:
        reader.close()


def events(sup: RiskSupervisor) -> list[dict]:
    sup.flush_journal()
    reader = JournalReader(journal_of(sup))
    try:
        return list(reversed(reader.events(limit=1000)))
    finally:
        reader.close()


@pytest.fixture
def sup(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as s:
        yield s


def test_every_kind_of_decision_is_journaled_with_its_inputs(sup, clock):
    feed(sup, positions=(Position("SOLUSDT", "binance", 2.0, 100.0),))
    allow = sup.evaluate(order(order_id="a1", stop_price=95.0))
    scaled = sup.evaluate(order(order_id="s1", quantity=5.0))  # single-trade risk: 1% of 10,000
    invalid = sup.evaluate(order(order_id="i1", quantity=-1))
    blocked = sup.evaluate(order(order_id="b1", strategy_id="experimental_hft"))
    by_id = {r["order_id"]: r for r in rows(sup)}
    assert set(by_id) == {"a1", "s1", "i1", "b1"}
    a = by_id["a1"]
    assert (a["decision"], a["reason_code"], a["account"], a["exchange"], a["strategy_id"]) == (
        "allow", "ALL_CHECKS_PASSED", "main", "binance", "trend_v2",
    )  # fmt: skip
    assert (a["symbol"], a["side"], a["quantity"], a["price"], a["stop_price"], a["leverage"]) == (
        "SOLUSDT", "buy", 1.0, 100.0, 95.0, 1.0,
    )  # fmt: skip
    assert (a["reduce_only"], a["adjusted_quantity"], a["scale_factor"], a["risk_level"]) == (0, 1.0, 1.0, "INFO")
    assert a["ts_us"] == to_us(allow.timestamp) and a["signal_ts_us"] == to_us(clock.now())
    assert (a["ess_active"], a["ess_age_s"], a["risk_v3_age_s"], a["account_age_s"]) == (0, 0.0, 0.0, 0.0)
    assert (a["equity"], a["day_pnl_pct"], a["week_pnl_pct"], a["reserved_usd"]) == (10_000.0, 0.0, 0.0, 0.0)
    assert by_id["s1"]["reserved_usd"] == 100.0  # a1's 100 USD was in flight when s1 was decided
    s = by_id["s1"]
    assert (s["decision"], s["reason_code"], s["adjusted_quantity"]) == (scaled.decision, "SINGLE_TRADE_RISK", 1.0)
    i = by_id["i1"]
    assert (i["decision"], i["reason_code"], i["account"], i["quantity"]) == ("block", "INVALID_ORDER", "main", None)
    assert i["reason"] == invalid.reason
    assert by_id["b1"]["reason_code"] == str(blocked.reason_code) == "STRATEGY_NOT_ALLOWED"


def test_a_query_by_each_filter_finds_the_decision(sup, clock):
    feed(sup)
    sup.evaluate(order(order_id="early"))
    clock.advance(60)
    feed(sup)
    sup.evaluate(order(order_id="late", strategy_id="experimental_hft"))
    sup.evaluate(order(order_id="other", account="ghost"))
    t = to_us(clock.now())
    assert [r["order_id"] for r in rows(sup, order_id="late")] == ["late"]
    assert [r["order_id"] for r in rows(sup, account="ghost")] == ["other"]
    assert [r["order_id"] for r in rows(sup, code="STRATEGY_NOT_ALLOWED")] == ["late"]
    assert [r["order_id"] for r in rows(sup, decision="allow")] == ["early"]
    assert [r["order_id"] for r in rows(sup, since_us=t)] == ["other", "late"]  # newest first
    assert [r["order_id"] for r in rows(sup, until_us=t)] == ["early"]


def test_explain_shows_the_inputs_the_deciding_check_and_the_events_before(sup, clock):
    feed(sup)
    sup.report_account_snapshot(AccountSnapshot("main", 9_700.0))  # -3%
    sup.report_account_snapshot(AccountSnapshot("bold", 5_000.0))  # an event of another account
    sup.evaluate(order(order_id="x"))
    sup.flush_journal()
    out = io.StringIO()
    assert query.explain(journal_of(sup), "x", "table", out) == 1
    text = out.getvalue()
    assert "order x: block DAILY_LOSS_LIMIT" in text and "decided by: 11. daily loss limit" in text
    assert "day_pnl_pct: -3\n" in text and "equity: 9700\n" in text and "symbol: SOLUSDT" in text
    assert "risk_level_changed (risk_v3)" in text
    assert ": None" not in text and "=None" not in text  # no value: not shown
    assert "_us:" not in text and ": False" not in text  # instants for machines left out; yes/no, not a repr
    assert " bold " not in text  # another account's events explain nothing here
    out = io.StringIO()
    query.explain(journal_of(sup), "x", "json", out)
    data = json.loads(out.getvalue())
    assert data["decided_by"].startswith("11.") and data["reason_code"] == "DAILY_LOSS_LIMIT"


def test_explain_keeps_the_events_that_explain_the_order_rounds_ages_and_shows_the_reference_price(sup, clock):
    feed(sup)
    clock.advance(0.39464057)  # Risk v3 and ESS ages off the millisecond
    sup.report_account_snapshot(AccountSnapshot("main", 9_700.0))  # -3 %
    now, note = clock.now(), sup.journal.event
    mine = {"account": "main", "order_id": "x", "notional": 100.0}
    note(now, "alert_delivered", "alerts", None, webhook="ops", key="halt", state="firing", attempts=1)
    note(now, "alert_firing", "alerts", None, key="source_stale:risk_v3", rule="source_stale")
    note(now, "gate_memory_recalled", "gate", None, decisions=3)
    note(now, "reservations_expired", "gate", None, count=1, reservations=[{**mine, "order_id": "other"}])
    note(now, "reservations_expired", "gate", None, count=1, reservations=[mine])
    for symbol in ("BTCUSDT", "SOLUSDT"):
        note(now, "price_mark", "prices", None, symbol=symbol, price=100.0)
        note(now, "price_spike_pause", "prices", None, symbol=symbol, before=100.0, after=120.0)
    sup.evaluate(order(order_id="x", reference_price=101.5))
    sup.flush_journal()
    out = io.StringIO()
    assert query.explain(journal_of(sup), "x", "table", out) == 1
    text = out.getvalue()
    assert "ess_age_s: 0.395\n" in text and "risk_v3_age_s: 0.395\n" in text and "account_age_s: 0\n" in text
    assert "day_pnl_pct: -3\n" in text
    assert "  price: 100\n  reference_price: 101.5\n" in text and "mono_us" not in text
    kinds = [line.split()[2] for line in text.splitlines() if line.startswith("  event ")]
    # The account's own and what concerns every order, its symbol or this very order; nothing else.
    assert kinds == [
        "ess_changed", "risk_level_changed", "baseline_started_mid_period", "baseline_started_mid_period",
        "loss_limit_tripped", "reservations_expired", "price_spike_pause",
    ], text  # fmt: skip
    assert "'order_id': 'x'" in text and "symbol=SOLUSDT" in text
    for unrelated in ("alert_", "config_loaded", "sha256", "gate_memory_recalled", "price_mark", "BTCUSDT", "other"):
        assert unrelated not in text, unrelated
    out = io.StringIO()
    query.explain(journal_of(sup), "x", "json", out)
    data = json.loads(out.getvalue())
    assert data["reference_price"] == 101.5 and "mono_us" not in data


def test_events_explain_decisions_and_the_fail_closed_moments(sup, clock):
    feed(sup)
    sup.evaluate(order())
    clock.advance(4.0)  # ESS older than max_age_s 3
    sup.evaluate(order())
    sup.report_ess_active(True, "drill")
    sup.evaluate(order())
    kinds = [(e["kind"], e["source"]) for e in events(sup)]
    assert kinds[0] == ("config_loaded", "riskgate")
    assert ("risk_level_changed", "risk_v3") in kinds and ("ess_changed", "ess") in kinds
    started = kinds.index(("gate_fail_closed", "ess"))
    ended = kinds.index(("gate_recovered", "ess"))  # the halt decision read a fresh ESS
    assert started < ended


def test_the_order_decision_line_is_logged_by_the_journal_not_the_gate(sup):
    feed(sup)
    with capture_logs() as logs:
        sup.evaluate(order(strategy_id="experimental_hft"))
        sup.flush_journal()
    lines = [e for e in logs if e["event"] == "order_decision"]
    assert len(lines) == 1 and lines[0]["reason_code"] == "STRATEGY_NOT_ALLOWED"


# -- when the journal cannot write ------------------------------------------------------


@dataclass(frozen=True)
class _Crash:
    pass


class CrashableJournal(JournalActor):
    def on_receive(self, message):
        if isinstance(message, _Crash):
            raise RuntimeError("journal crashed on purpose")
        return super().on_receive(message)


def _full_disk(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=1.0, check_same_thread=False)
    db.execute("PRAGMA max_page_count = 12")  # room for the schema and little else: SQLITE_FULL
    return db


def _read_only(path: Path) -> sqlite3.Connection:
    if not path.exists():
        sqlite3.connect(path).close()
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)


def _journal_class(connect):
    class Failing(JournalActor):
        def __init__(self, config, clock, queue):
            super().__init__(config, clock, queue, connect=connect)

    return Failing


@pytest.mark.parametrize("how", ["disk_full", "read_only", "corrupt"])
@pytest.mark.parametrize("policy", ["block", "continue"])
def test_a_journal_that_cannot_write_applies_the_policy_and_recovery_is_logged_once(monkeypatch, tmp_path, how, policy):
    clock = FakeClock()
    cfg = make_config(state={"dir": str(tmp_path / "state")}, journal={"on_failure": policy})
    if how == "corrupt":
        cfg.state.dir.mkdir(parents=True)
        (cfg.state.dir / "journal.sqlite").write_bytes(b"not a database at all" * 50)
    else:
        monkeypatch.setattr(System, "journal_actor_class", _journal_class(
            _full_disk if how == "disk_full" else _read_only))  # fmt: skip
    with capture_logs() as logs, RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        for i in range(300):  # enough rows to fill 12 pages
            sup.evaluate(order(order_id=f"o{i}", quantity=0.1, account="ghost"))
        sup.flush_journal()
        r = sup.evaluate(order(order_id="after"))
        if policy == "block":
            assert r.reason_code is RC.JOURNAL_UNAVAILABLE and "journal cannot write" in r.reason
        else:
            assert r.decision == "allow"
        health = sup._runtime.journal
        assert health.problem is not None and len(health) > 0  # nothing dropped silently: still queued
        # Recovery: the operator frees the disk / moves the bad file away.
        monkeypatch.setattr(System, "journal_actor_class", JournalActor)
        sup.actor_ref("journal").stop()
        if how == "corrupt":
            (cfg.state.dir / "journal.sqlite").rename(cfg.state.dir / "journal.sqlite.bad")
        sup.check_actors()  # the journal restarts with a working store
        sup.flush_journal()
        assert health.problem is None and len(health) == 0
        assert sup.evaluate(order(order_id="recovered", quantity=0.1)).decision == "allow"
    failed = [e for e in logs if e["event"] == "journal_failed"]
    recovered = [e for e in logs if e["event"] == "journal_recovered"]
    assert len(failed) == 1 and failed[0]["log_level"] == "error" and len(recovered) == 1
    reader = JournalReader(cfg.state.dir / "journal.sqlite")
    try:
        written = {r["order_id"] for r in reader.decisions(Query(limit=10_000))}
    finally:
        reader.close()
    assert {f"o{i}" for i in range(300)} <= written and "after" in written  # the backlog was written


def test_a_full_queue_blocks_under_the_block_policy_and_drops_are_counted(monkeypatch, tmp_path):
    clock = FakeClock()
    cfg = make_config(state={"dir": str(tmp_path / "state")}, journal={"max_queue": 100})
    monkeypatch.setattr(System, "journal_actor_class", _journal_class(_read_only))
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        for i in range(150):
            sup.evaluate(order(order_id=f"o{i}", account="ghost"))
        journal = sup._runtime.journal
        assert len(journal) == 100 and journal.dropped > 0
        assert sup.evaluate(order()).reason_code is RC.JOURNAL_UNAVAILABLE


def test_the_journal_killed_loses_no_decision(monkeypatch, clock):
    monkeypatch.setattr(System, "journal_actor_class", CrashableJournal)
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        for i in range(50):
            sup.evaluate(order(order_id=f"k{i}", quantity=0.1, account="ghost"))
        journal = sup.actor_ref("journal")
        journal.tell(_Crash())  # dies before it wrote them
        from tests.supervisor.runtime.test_supervision import wait_dead

        wait_dead(journal)
        sup.check_actors()
        assert sup.actor_ref("journal") is not journal
        assert {f"k{i}" for i in range(50)} <= {r["order_id"] for r in rows(sup)}


def test_retention_deletes_old_rows_in_batches(tmp_path):
    clock = FakeClock()
    cfg = make_config(state={"dir": str(tmp_path / "state")}, journal={"retention_days": 1})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        sup.evaluate(order(order_id="old"))
        sup.flush_journal()
    clock.advance(timedelta(days=2).total_seconds())
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        sup.evaluate(order(order_id="new"))
        assert {r["order_id"] for r in rows(sup)} == {"new"}


@pytest.mark.parametrize("how", ["deleted", "moved"])
def test_a_journal_file_deleted_or_moved_while_running_is_replaced_loudly(sup, how):
    feed(sup)
    sup.evaluate(order(order_id="before"))
    sup.flush_journal()
    path = journal_of(sup)
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            part.unlink() if how == "deleted" else part.rename(Path(str(part) + ".moved"))
    with capture_logs() as logs:
        sup.evaluate(order(order_id="after"))
        sup.flush_journal()
    assert [e["event"] for e in logs if e["event"] == "journal_file_lost"] == ["journal_file_lost"]
    assert [r["order_id"] for r in rows(sup)] == ["after"]  # in the new file at the path, not lost


def test_a_row_the_database_refuses_costs_only_itself(sup):
    feed(sup)
    sup.evaluate(order(order_id="before"))
    # An event whose account SQLite cannot bind (a bug upstream of the journal): the whole
    # batch fails on it; the journal then writes row by row and drops only this one.
    sup.journal.event(sup.clock.now(), "poison", "test", ["not", "text"])  # type: ignore[arg-type]
    sup.evaluate(order(order_id="after"))
    with capture_logs() as logs:
        sup.flush_journal()
    assert {r["order_id"] for r in rows(sup)} >= {"before", "after"}
    assert [e["event"] for e in logs if e["event"] == "journal_record_unwritable"] == ["journal_record_unwritable"]
    assert sup.journal.problem is None and sup.journal.blocking is None
    assert sup.evaluate(order(order_id="later")).decision == "allow"


def test_batches_of_every_size_are_written_whole_and_in_order(tmp_path):
    """Rows go _ROWS to a statement and the rest one by one: batches of 0, 1,
    _ROWS - 1, _ROWS, _ROWS + 1 and 2 * _ROWS + 2 decisions are each written
    once, none lost at a statement's edge."""
    clock = FakeClock()
    cfg = make_config(state={"dir": str(tmp_path / "state")}, gate={"max_orders_per_s": 10**6, "max_repeats": 10**6})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, equity=10_000_000.0)
        sent: list[str] = []
        for size in (0, 1, _ROWS - 1, _ROWS, _ROWS + 1, 2 * _ROWS + 2):
            for i in range(size):
                sent.append(f"b{size}-{i}")
                sup.evaluate(order(order_id=sent[-1], quantity=0.1))
            sup.flush_journal()
        sup.flush_journal()
        db = sqlite3.connect(journal_of(sup))
        try:
            got = [oid for (oid,) in db.execute("SELECT order_id FROM decisions ORDER BY seq")]
        finally:
            db.close()
        assert got == sent


def test_a_refused_row_inside_a_full_statement_costs_only_itself(sup):
    feed(sup, equity=10_000_000.0)
    ids = [f"o{i}" for i in range(_ROWS + 6)]
    for i, oid in enumerate(ids):
        if i == 10:  # inside the first full statement
            sup.journal.event(sup.clock.now(), "poison", "test", ["not", "text"])  # type: ignore[arg-type]
        sup.evaluate(order(order_id=oid, quantity=0.1))
    sup.flush_journal()
    assert {r["order_id"] for r in rows(sup)} >= set(ids)


def test_an_expired_reservation_is_logged_by_the_journal_not_on_the_decision_path(sup, clock):
    feed(sup)
    assert sup.evaluate(order(order_id="lapses")).decision == "allow"
    clock.advance(sup.config.gate.reservation_ttl_s + 1)
    feed(sup)
    with capture_logs() as at_decision:
        assert sup.evaluate(order(order_id="next")).decision == "allow"  # expires "lapses" on the way
    assert not [e for e in at_decision if "expired" in e["event"]]
    sup._runtime.gate_stats(reset=False)  # the gate hands over what expired (also every 0.1 s of decisions)
    with capture_logs() as by_journal:
        sup.flush_journal()
    assert [(e["count"], e["first"]) for e in by_journal if e["event"] == "reservations_expired"] == [
        (1, ["main/lapses"])
    ]
    [journaled] = [e for e in events(sup) if e["kind"] == "reservations_expired"]
    assert journaled["account"] is None and journaled["source"] == "gate"
    detail = journaled["detail"] if isinstance(journaled["detail"], dict) else json.loads(journaled["detail"])
    assert detail == {"count": 1, "reservations": [{"account": "main", "order_id": "lapses", "notional": 100.0}]}


def test_a_stalled_journal_and_its_successor_never_remove_records_nobody_wrote(tmp_path, clock):
    """Supervision starts a second journal on the same queue when the first stops
    answering; when the first wakes, it removes only what it wrote (by seq)."""
    from supervisor.channels.journal_queue import JournalQueue

    cfg = make_config(state={"dir": str(tmp_path / "state")}, journal={"writer": "thread"})
    q = JournalQueue(1000, block_when_failing=True)
    for i in range(10):
        q.event(clock.now(), "early", "test", None, i=i)
    first, second = JournalActor(cfg, clock, q), JournalActor(cfg, clock, q)
    first.open_resources()
    second.open_resources()
    try:
        stale = q.peek(100)  # the first takes a batch, then stalls
        assert second.flush() == 10  # its successor writes and removes the same ten
        for i in range(5):
            q.event(clock.now(), "late", "test", None, i=i)
        assert first._removed(stale) == 0  # the first wakes: nothing of the five is removed
        assert len(q) == 5
        assert second.flush() == 5
    finally:
        first.release_resources()
        second.release_resources()
    reader = JournalReader(tmp_path / "state" / "journal.sqlite")
    try:
        kinds = [e["kind"] for e in reader.events(limit=100)]
    finally:
        reader.close()
    assert sorted(kinds) == ["early"] * 10 + ["late"] * 5


class _DyingWriter:
    """Refuses the row of seq 2 as a row problem, then dies (every write fails)."""

    def __init__(self) -> None:
        self.dead = False

    def still_at_its_path(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def write(self, decisions, events, inputs=()):
        rows = [*decisions, *events, *inputs]
        if self.dead:
            raise sqlite3.OperationalError("journal writer process is gone")
        if any(row[1] == 2 for row in rows):
            if len(rows) == 1:
                self.dead = True
            raise sqlite3.ProgrammingError("Error binding parameter")


def test_a_writer_that_dies_while_rows_are_retried_alone_drops_no_good_row(tmp_path, clock):
    from supervisor.channels.journal_queue import JournalQueue

    cfg = make_config(state={"dir": str(tmp_path / "state")}, journal={"writer": "thread"})
    q = JournalQueue(1000, block_when_failing=True)
    for i in range(5):
        q.event(clock.now(), "e", "test", None, i=i)
    journal = JournalActor(cfg, clock, q)
    journal._writer = _DyingWriter()  # type: ignore[assignment]
    journal.flush()
    assert q.dropped == 0 and len(q) == 5  # the bad row was seen, but the writer died: all kept
    assert q.problem is not None
