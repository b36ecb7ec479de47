"""kill -9 of a process deciding orders under load: what was decided more than a
flush interval before the kill is in the journal, the file opens cleanly, and
a restarted process appends to it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from supervisor import AccountSnapshot, RiskSupervisor
from supervisor.ops.journal.store import JournalReader, Query
from tests.helpers import make_config, order
from tests.helpers import signal as risk_signal

ROOT = Path(__file__).resolve().parents[3]
FLUSH_S = 0.1
# A decision is on disk by the end of the flush after it: one interval, plus the
# time that flush itself takes on a loaded 2-core machine.
MARGIN_S = FLUSH_S + 0.3


def test_kill_9_under_load_keeps_every_decision_older_than_a_flush(tmp_path):
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("journal_driver.py")), str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    decided: list[tuple[str, float]] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # wait on the pipe, not on a clock
            oid, at = line.split()
            decided.append((oid, float(at)))
            if len(decided) >= 3000 and decided[-1][1] - decided[0][1] >= 1.0:
                break
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()  # CLOCK_MONOTONIC: the same clock in both processes
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
    due = [oid for oid, at in decided if at < killed_at - MARGIN_S]
    assert len(due) > 1000
    missing = [oid for oid in due if oid not in on_disk]
    assert missing == []
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
