"""kill -9 of a process deciding orders under load: the file opens cleanly, what is
on disk is every decision up to some point (no hole), a restarted process appends
to it; with `journal.durability = "commit"` every approval answered before the
kill is on disk.

With "batch" what is lost is what the journal had not written yet: about a flush
interval, more when the machine is loaded (a 2-core CI machine running the whole
suite), so that test holds only the no-hole property, not a time bound."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.journal.store import JournalReader, Query
from tests.helpers import make_config, order
from tests.helpers import signal as risk_signal

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("durability", ["batch", "commit"])
def test_kill_9_under_load_loses_nothing_answered_with_commit_and_leaves_no_hole(tmp_path, durability):
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("journal_driver.py")), str(state), durability],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    decided: list[tuple[str, str]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # wait on the pipe, not on a clock
            oid, _, decision = line.split()
            decided.append((oid, decision))
            if len(decided) >= 3000:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    path = state / "journal.sqlite"
    db = sqlite3.connect(path)  # opens cleanly, recovers its WAL
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    reader = JournalReader(path)
    try:
        on_disk = {r["order_id"] for r in reader.decisions(Query(limit=1_000_000))}
    finally:
        reader.close()
    answered = [oid for oid, _ in decided]
    kept = [oid in on_disk for oid in answered]
    assert kept == sorted(kept, reverse=True), "a hole: a later decision on disk, an earlier one not"
    if durability == "commit":
        approved = [oid for oid, d in decided if d != "block"]
        assert len(approved) > 500 and [oid for oid in approved if oid not in on_disk] == []
    # A restarted process appends to the same file.
    cfg = make_config(state={"dir": str(state)})
    with RiskSupervisor(cfg, poll_upstreams=False) as sup:
        sup.report_ess_active(False)
        sup.report_risk_signal(risk_signal("INFO", sup.clock.now()))
        sup.report_account_snapshot(AccountSnapshot("main", 1e9))
        sup.evaluate(order(order_id="after-restart", quantity=0.1))
        sup.flush_journal()
    reader = JournalReader(path)
    try:
        after = {r["order_id"] for r in reader.decisions(Query(limit=1_000_000))}
    finally:
        reader.close()
    assert "after-restart" in after and on_disk <= after
