"""The journal file's SQLite writing, in the standard library only.

`JournalWriter` creates the journal's tables and writes batches, one
transaction each. This module imports nothing of riskgate, so that it can
also run alone as the journal's writer process (`python -I -S sqlite_file.py
PATH`, started by supervisor.journal.writer_process): it then reads
requests from stdin and answers on stdout, each a pickled tuple framed by
`multiprocessing.connection`, until its stdin closes or it is told to close
(a request it cannot read is answered as a ValueError; the framing holds).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = [
    "DECISION_COLUMNS",
    "EVENT_COLUMNS",
    "INPUT_COLUMNS",
    "REPLAY_COLUMNS",
    "ROWS_PER_INSERT",
    "Connect",
    "JournalWriter",
    "file_identity",
    "serve",
]

ROWS_PER_INSERT = 500  # rows per INSERT statement (x 33 values: under SQLite's 32,766 variables)

DECISION_COLUMNS = (
    "ts_us", "order_id", "account", "exchange", "strategy_id", "symbol", "side", "quantity", "price",
    "stop_price", "leverage", "reduce_only", "decision", "reason_code", "reason", "adjusted_quantity",
    "scale_factor", "risk_level", "signal_ts_us", "ess_active", "ess_age_s", "risk_v3_age_s",
    "account_age_s", "equity", "day_pnl_pct", "week_pnl_pct", "reserved_usd",
)  # fmt: skip
EVENT_COLUMNS = ("ts_us", "kind", "source", "account", "detail")
# Kept in this file only (never shipped to a shared store): what a replay re-decides from.
# Monotonic times are stored as the exact float (REAL): a replay compares them as the gate did.
REPLAY_COLUMNS = ("mono_s", "reference_price")  # the gate's monotonic time; the caller's reference price
INPUT_COLUMNS = ("ts_us", "mono_s", "received_s", "kind", "body", "account", "exchange")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS decisions (
    run TEXT NOT NULL, seq INTEGER NOT NULL,
    {", ".join(DECISION_COLUMNS)}, {", ".join(REPLAY_COLUMNS)},
    UNIQUE (run, seq));
CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts_us);
CREATE INDEX IF NOT EXISTS decisions_account_ts ON decisions (account, ts_us);
CREATE INDEX IF NOT EXISTS decisions_order ON decisions (order_id);
CREATE INDEX IF NOT EXISTS decisions_code_ts ON decisions (reason_code, ts_us);
CREATE TABLE IF NOT EXISTS events (
    run TEXT NOT NULL, seq INTEGER NOT NULL,
    {", ".join(EVENT_COLUMNS)},
    UNIQUE (run, seq));
CREATE INDEX IF NOT EXISTS events_ts ON events (ts_us);
CREATE INDEX IF NOT EXISTS events_kind_ts ON events (kind, ts_us);
CREATE TABLE IF NOT EXISTS inputs (
    run TEXT NOT NULL, seq INTEGER NOT NULL,
    {", ".join(INPUT_COLUMNS)},
    UNIQUE (run, seq));
CREATE INDEX IF NOT EXISTS inputs_ts ON inputs (ts_us);
"""


Connect = Callable[[Path], sqlite3.Connection]


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=1.0, check_same_thread=False)


class JournalWriter:
    """Opens (or creates) the journal and writes batches, one transaction each."""

    def __init__(self, path: Path, connect: Connect = _connect) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = connect(path)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit survives a process crash
            check = self._db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
            self._db.executescript(_SCHEMA)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(decisions)")}
            for column in REPLAY_COLUMNS:  # a journal from before replay: the columns are added, empty
                if column not in have:
                    self._db.execute(f"ALTER TABLE decisions ADD COLUMN {column}")  # our names only
        except BaseException:
            self._db.close()
            raise
        self.identity = file_identity(path)
        # Placeholders only: the column counts are ours, the values are bound.
        decision_marks = ", ".join("?" * (len(DECISION_COLUMNS) + len(REPLAY_COLUMNS) + 2))
        event_marks = ", ".join("?" * (len(EVENT_COLUMNS) + 2))
        input_marks = ", ".join("?" * (len(INPUT_COLUMNS) + 2))
        names = ", ".join(("run", "seq", *DECISION_COLUMNS, *REPLAY_COLUMNS))
        self._insert_decision = f"INSERT OR IGNORE INTO decisions ({names}) VALUES ({decision_marks})"  # noqa: S608 - ours
        self._insert_event = f"INSERT OR IGNORE INTO events VALUES ({event_marks})"  # noqa: S608 - placeholders only
        self._insert_input = f"INSERT OR IGNORE INTO inputs VALUES ({input_marks})"  # noqa: S608 - placeholders only
        # The same, ROWS_PER_INSERT rows per statement: SQLite then inserts them with the GIL
        # released once, not once per row (each time a thread must win it back).
        self._insert_decisions = self._insert_decision + f", ({decision_marks})" * (ROWS_PER_INSERT - 1)
        self._insert_events = self._insert_event + f", ({event_marks})" * (ROWS_PER_INSERT - 1)
        self._insert_inputs = self._insert_input + f", ({input_marks})" * (ROWS_PER_INSERT - 1)

    def still_at_its_path(self) -> bool:
        """False when the file was deleted or replaced under us: what we wrote
        next would go to an inode no one can read again."""
        return file_identity(self.path) == self.identity

    def write(
        self,
        decisions: Sequence[tuple[Any, ...]],
        events: Sequence[tuple[Any, ...]],
        inputs: Sequence[tuple[Any, ...]] = (),
    ) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._insert(self._insert_decision, self._insert_decisions, decisions)
            self._insert(self._insert_event, self._insert_events, events)
            if inputs:
                self._insert(self._insert_input, self._insert_inputs, inputs)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _insert(self, one: str, many: str, rows: Sequence[tuple[Any, ...]]) -> None:
        full = len(rows) - len(rows) % ROWS_PER_INSERT
        db = self._db
        for start in range(0, full, ROWS_PER_INSERT):
            db.execute(many, [value for row in rows[start : start + ROWS_PER_INSERT] for value in row])
        if full < len(rows):
            db.executemany(one, rows[full:])

    def prune(self, before_us: int, limit: int = 1000) -> int:
        """Delete up to `limit` rows of each table older than `before_us`; how many went."""
        gone = 0
        for table in ("decisions", "events", "inputs"):
            cur = self._db.execute(
                f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE ts_us < ? LIMIT ?)",  # noqa: S608 - table names are ours
                (before_us, limit),
            )
            gone += cur.rowcount
        return gone

    def close(self) -> None:
        self._db.close()


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, or None when there is none."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def serve(path: str, requests: Connection, answers: Connection) -> None:
    """The writer process: one JournalWriter, one request at a time.

    A request is `(op, args)` with op "open", "write", "prune" or "close";
    the answer is `("ok", value)` or `("err", (kind, class name, message))`."""
    writer: JournalWriter | None = None
    while True:
        try:
            op, args = requests.recv()
        except (EOFError, OSError):  # the parent is gone
            break
        except Exception as exc:  # noqa: BLE001 - a request it cannot read (the framing holds): say so
            answers.send(("err", ("builtins", "ValueError", f"unreadable request: {type(exc).__name__}: {exc}")))
            continue
        try:
            if op == "open":
                writer = JournalWriter(Path(path))
                result: Any = writer.identity
            elif writer is None:
                raise sqlite3.OperationalError("journal writer process: not open")
            elif op == "write":
                writer.write(*args)
                result = None
            elif op == "prune":
                result = writer.prune(*args)
            elif op == "close":
                writer.close()
                writer = None
                answers.send(("ok", None))
                break
            else:
                raise ValueError(f"unknown request {op!r}")
            answers.send(("ok", result))
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the journal's thread
            kind = "sqlite3" if isinstance(exc, sqlite3.Error) else "builtins"
            try:
                answers.send(("err", (kind, type(exc).__name__, str(exc))))
            except OSError:
                break
    if writer is not None:
        writer.close()


def _main() -> None:
    # The parent ends this process by closing its stdin (or asking "close"): a
    # Ctrl-C or a SIGTERM sent to the whole group must not kill it before the
    # parent's last batch is written.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    requests = Connection(os.dup(0), writable=False)
    answers = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # a stray print must not corrupt the answers
    serve(sys.argv[1], requests, answers)


if __name__ == "__main__":
    _main()
