"""The journal's writer process: the same rows as the thread writer, failures
that come back as the errors the journal knows, and a dead writer replaced
without losing a record."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.journal.sqlite_file import DECISION_COLUMNS, REPLAY_COLUMNS, JournalWriter
from supervisor.journal.store import JournalReader, Query
from supervisor.journal.writer_process import ProcessWriter
from tests.helpers import make_config, order
from tests.helpers import signal as risk_signal


def decision(seq: int, order_id: str, ts_us: int = 1_764_000_000_000_000) -> tuple[object, ...]:
    values: dict[str, object] = dict.fromkeys((*DECISION_COLUMNS, *REPLAY_COLUMNS))
    values.update(ts_us=ts_us + seq, order_id=order_id, account="main", decision="allow", reason_code="X")
    return ("run", seq, *values.values())


def event(seq: int, kind: str) -> tuple[object, ...]:
    return ("run", seq, 1_764_000_000_000_000 + seq, kind, "test", None, "{}")


def stored(path: Path, table: str = "decisions") -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT * FROM {table} ORDER BY seq").fetchall()  # noqa: S608 - our table names
    finally:
        db.close()


@pytest.fixture
def writer(tmp_path):
    w = ProcessWriter(tmp_path / "j.sqlite")
    yield w
    w.close()


def test_the_process_stores_exactly_what_the_thread_writer_stores(tmp_path, writer):
    rows = [decision(i, f"o{i}") for i in range(1, 1203)]  # two full statements and the rest
    events = [event(i, "k") for i in range(1, 4)]
    writer.write(rows, events)
    writer.write(rows[:10], [])  # written twice: stored once
    alone = JournalWriter(tmp_path / "alone.sqlite")
    alone.write(rows, events)
    alone.close()
    assert stored(tmp_path / "j.sqlite") == stored(tmp_path / "alone.sqlite")
    assert stored(tmp_path / "j.sqlite", "events") == stored(tmp_path / "alone.sqlite", "events")
    assert writer.prune(1_764_000_000_000_000 + 101) == 100 + 3
    assert len(stored(tmp_path / "j.sqlite")) == 1202 - 100


def test_a_refused_row_comes_back_as_the_error_the_journal_knows(writer):
    with pytest.raises(sqlite3.ProgrammingError):
        writer.write([(*decision(1, "o1")[:-1], ["not", "bindable"])], [])
    writer.write([decision(2, "o2")], [])  # the writer lives on


def test_a_dead_or_missing_writer_is_an_operational_error(tmp_path, writer):
    writer._process.kill()
    writer._process.wait(5)
    with pytest.raises(sqlite3.OperationalError, match="gone"):
        writer.write([decision(1, "o1")], [])
    blocker = tmp_path / "file"
    blocker.write_text("a file where the journal's folder should be")
    with pytest.raises(OSError, match="File exists"):  # the child's error, as itself
        ProcessWriter(blocker / "j.sqlite")


def test_a_terminal_ctrl_c_or_a_group_sigterm_does_not_end_it_before_the_last_batch(writer):
    for sig in (signal.SIGINT, signal.SIGTERM):
        os.kill(writer._process.pid, sig)
    writer.write([decision(1, "o1")], [])
    assert writer._process.poll() is None


def test_a_journal_whose_writer_died_writes_the_batch_again_with_a_new_one(clock):
    cfg = make_config(journal={"writer": "process"})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        sup.report_ess_active(False)
        sup.report_risk_signal(risk_signal("INFO", clock.now()))
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
        sup.evaluate(order(order_id="first"))
        sup.flush_journal()
        journal = sup.actor_ref("journal")
        assert journal is not None
        actor = journal._actor_weakref()  # the running JournalActor (its writer is private)
        assert isinstance(actor._writer, ProcessWriter)
        first = actor._writer._process
        first.kill()
        first.wait(5)
        sup.evaluate(order(order_id="second"))
        with capture_logs() as logs:
            sup.flush_journal()  # fails: the batch stays queued
            sup.flush_journal()  # a new writer process writes it
        events = [e["event"] for e in logs]
        assert "journal_failed" in events and "journal_recovered" in events, events
        assert actor._writer._process is not first
        reader = JournalReader(sup.config.state.dir / "journal.sqlite")
        try:
            assert {r["order_id"] for r in reader.decisions(Query(limit=10))} == {"first", "second"}
        finally:
            reader.close()


def test_a_writer_that_stops_reading_is_given_up_within_the_timeout(writer, monkeypatch):
    """A stopped child (SIGSTOP, a hung disk) no longer reads: a batch larger than
    the pipe must not block the journal past its timeout."""
    from supervisor.journal import writer_process

    monkeypatch.setattr(writer_process, "_ANSWER_TIMEOUT_S", 0.3)
    os.kill(writer._process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(sqlite3.OperationalError, match=r"in time|no answer"):
            writer.write([], [event(i, "e" * 200) for i in range(5000)])  # ~1.5 MB: far over a pipe
        assert writer._process.wait(5) is not None  # killed: a successor starts clean
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(writer._process.pid, signal.SIGCONT)


def test_a_value_of_a_class_the_writer_cannot_know_is_stored_as_plain_text(clock):
    class Local(str):  # defined here: the writer process cannot import it
        pass

    with RiskSupervisor(make_config(journal={"writer": "process"}), clock=clock, poll_upstreams=False) as sup:
        sup.journal.event(clock.now(), Local("kind"), Local("source"), Local("main"), note=Local("x"))
        sup.report_ess_active(False)
        sup.report_risk_signal(risk_signal("INFO", clock.now()))
        sup.report_account_snapshot(AccountSnapshot("main", 10_000.0))
        assert sup.evaluate(order(order_id="after")).decision == "allow"
        sup.flush_journal()
        assert sup.journal.problem is None and len(sup.journal) == 0
        reader = JournalReader(sup.config.state.dir / "journal.sqlite")
        try:
            [ev] = [e for e in reader.events(limit=100) if e["kind"] == "kind"]
            assert (ev["source"], ev["account"]) == ("source", "main")
            assert [r["order_id"] for r in reader.decisions(Query(limit=10))] == ["after"]
        finally:
            reader.close()
