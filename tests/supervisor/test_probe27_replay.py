"""Probe 27: `riskgate replay` (supervisor/replay.py). With the live config as the candidate every
recorded decision must come out as recorded; a window must count only its own decisions; a damaged
row must be refused by name (ReplayError), never a traceback."""

from __future__ import annotations

import gc
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.clock import FakeClock
from supervisor.config import parse_config
from supervisor.journal.store import JOURNAL_NAME, to_us
from supervisor.replay import ReplayError, in_seq, replay_journal
from tests.helpers import config_dict, feed, order


def cfg_of(tmp_path: Path, leverage: float = 3.0, **sections: dict) -> object:
    data = config_dict(state={"dir": str(tmp_path / "state")}, **sections)
    data["profiles"]["normal"]["allowed_leverage"] = leverage
    return parse_config(data)


def two_orders_an_hour_apart(tmp_path: Path) -> tuple[object, FakeClock]:
    clock = FakeClock()
    cfg = cfg_of(tmp_path)
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.evaluate(order(order_id="early", leverage=3.0)).decision == "allow"
        clock.advance(3600.0)
        feed(sup)
        assert sup.evaluate(order(order_id="late", leverage=3.0)).decision == "allow"
        sup.flush_journal()
    return cfg, clock


def test_until_counts_only_the_decisions_before_it(tmp_path):
    """`--until` cutting a run: the decisions after it must not be counted (docs/replay.md:
    "--since and --until" select the decisions reported). Found: every decision of the run is counted."""
    cfg, clock = two_orders_an_hour_apart(tmp_path)
    journal = cfg.state.dir / JOURNAL_NAME
    strict = cfg_of(tmp_path, leverage=2.0)
    until = to_us(clock.now() - timedelta(minutes=30))  # between the two orders
    report = replay_journal(journal, strict, until_us=until)
    assert [c.order_id for c in report.examples] == ["early"]
    assert (report.total, report.changed) == (1, 1)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE decisions SET quantity = NULL WHERE order_id = 'late'",
        "UPDATE decisions SET quantity = 'abc' WHERE order_id = 'late'",
        "UPDATE decisions SET price = NULL WHERE order_id = 'late'",
        "UPDATE decisions SET adjusted_quantity = NULL WHERE order_id = 'late'",
        "UPDATE decisions SET decision = NULL WHERE order_id = 'late'",
        "UPDATE decisions SET account = NULL WHERE order_id = 'late'",
    ],
)
def test_a_damaged_decision_row_is_refused_by_name_not_a_traceback(tmp_path, sql):
    """Found: a NULL or mistyped quantity/price/adjusted_quantity/decision/account raises TypeError
    out of replay_journal (`riskgate replay` prints a traceback, exit 1) instead of ReplayError."""
    cfg, _ = two_orders_an_hour_apart(tmp_path)
    journal = cfg.state.dir / JOURNAL_NAME
    db = sqlite3.connect(journal)
    db.execute(sql)
    db.commit()
    db.close()
    with pytest.raises(ReplayError, match=r"decision .*cannot be read"):
        replay_journal(journal, cfg_of(tmp_path, leverage=2.0)).as_json()  # what `riskgate replay` prints


@pytest.mark.parametrize("policy", ["continue", "block"])
def test_a_full_journal_queue_does_not_make_the_live_config_change_its_own_decisions(tmp_path, policy):
    """An input the gate applied while the journal queue was full is not journaled (JournalQueue.input
    returns False, ignored by Gate._apply). Found: replaying under the live config then reports the
    next decision as changed (block DAILY_LOSS_LIMIT -> allow), silently. Expected: 0 changed, or the
    replay refusing/flagging a journal that lost inputs."""
    clock = FakeClock()
    cfg = cfg_of(tmp_path, journal={"writer": "thread", "flush_interval_s": 10.0, "max_queue": 100,
                                    "on_failure": policy})  # fmt: skip
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.evaluate(order(order_id="a")).decision == "allow"
        sup.flush_journal()
        q = sup.journal
        while len(q) < q.max_records:  # a burst of other records fills the queue
            q.event(clock.now(), "filler", "test")
        sup.report_account_snapshot(AccountSnapshot("main", 9_700.0))  # -3 % on the day: applied, not journaled
        sup.flush_journal()
        live = sup.evaluate(order(order_id="b"))
        sup.flush_journal()
    assert live.reason_code == "DAILY_LOSS_LIMIT"
    try:
        report = replay_journal(cfg.state.dir / JOURNAL_NAME, cfg)
    except ReplayError:
        return
    assert report.changed == 0, report.as_json()["transitions"]


@pytest.mark.parametrize("back_s", [0.0, 30.0])
def test_a_restart_whose_wall_clock_is_not_past_the_last_run_replays_the_same(tmp_path, back_s):
    """A restart recalls the journal's recent approvals with no upper time bound; the replay recalls
    them only strictly before the seed's wall time (recall_state as_of=True, ts_us < until). Found: a
    host clock stepped back (NTP) or a restart in the same microsecond: the live DUPLICATE_ORDER is
    replayed as allow under the live config."""
    cfg = cfg_of(tmp_path, gate={"duplicate_window_s": 300.0, "max_repeats": 1000})
    clock = FakeClock()
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup)
        clock.advance(1.0)
        assert sup.evaluate(order(order_id="x-1")).decision == "allow"
    stepped = FakeClock(start=clock.now() - timedelta(seconds=back_s), monotonic=5.0)  # a new boot, clock set back
    with RiskSupervisor(cfg, clock=stepped, poll_upstreams=False) as sup:
        feed(sup)
        assert sup.evaluate(order(order_id="x-1")).reason_code == "DUPLICATE_ORDER"
        sup.flush_journal()
    report = replay_journal(cfg.state.dir / JOURNAL_NAME, cfg)
    assert report.runs == 2
    assert report.changed == 0, report.as_json()["transitions"]


# -- a second probe (seventh session): the replay's faster row reading -------------------------------


def _damaged(tmp_path: Path, sql: str) -> tuple[Any, Path]:
    cfg, _ = two_orders_an_hour_apart(tmp_path)
    journal = cfg.state.dir / JOURNAL_NAME  # type: ignore[attr-defined]
    db = sqlite3.connect(journal)
    db.execute(sql)
    db.commit()
    db.close()
    return cfg, journal


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE decisions SET ts_us = 4611686018427387000 WHERE order_id = 'late'",  # < 2**62, past year 9999
        "UPDATE decisions SET ts_us = 300000000000000000 WHERE order_id = 'early'",
        "UPDATE inputs SET ts_us = 4611686018427387000 WHERE rowid = (SELECT MAX(rowid) FROM inputs)",
        "UPDATE inputs SET ts_us = 4611686018427387000 WHERE rowid = (SELECT MIN(rowid) FROM inputs)",
    ],
)
def test_a_row_time_past_any_wall_time_is_refused_by_name_never_counted_as_a_change(tmp_path, sql):
    """The datetime is made only when the gate asks: a time past year 9999 overflowed inside the
    replayed gate, which answered GATE_UNAVAILABLE, and the live config "changed" its own decision."""
    cfg, journal = _damaged(tmp_path, sql)
    before = gc.get_threshold(), gc.get_freeze_count()
    with pytest.raises(ReplayError, match="its time cannot be read"):
        replay_journal(journal, cfg)  # type: ignore[arg-type]
    assert (gc.get_threshold(), gc.get_freeze_count()) == before  # the collector as it was


def test_an_input_and_a_decision_with_one_seq_are_merged_input_first():
    """One seq counter numbers both tables, so a tie is an edited journal; the input goes first,
    as heapq.merge put it and as the gate would have applied it before deciding."""
    inputs = [(1, "i"), (3, "i"), (5, "i")]
    decisions = [(2, "d"), (3, "d"), (6, "d")]
    assert [(flag, row[0]) for flag, row in in_seq(inputs, decisions)] == [
        (True, 1), (False, 2), (True, 3), (False, 3), (True, 5), (False, 6),
    ]  # fmt: skip


def test_a_caller_that_froze_objects_keeps_them_frozen_after_a_replay(tmp_path):
    cfg, _ = two_orders_an_hour_apart(tmp_path)
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        report = replay_journal(cfg.state.dir / JOURNAL_NAME, cfg)  # type: ignore[attr-defined, arg-type]
        assert (report.total, report.changed) == (2, 0)
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()
