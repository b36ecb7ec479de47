"""JournalShipper: this instance's journal, copied into the shared store.

The decision path is unchanged: every decision is written to the local SQLite
journal as always (its commit durability, its policy). The shipper reads what
was written since its mark (by rowid, table by table, at most `batch` rows a
call), inserts it into the shared tables tagged with this instance, and moves
its mark in the same transaction: a row shipped twice is stored once (unique
on instance, run, seq). While the store is down the local journal is the
spool, bounded by its own retention: nothing is lost that the journal keeps,
and the shipper catches up when the store is back.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from supervisor.journal.sqlite_file import DECISION_COLUMNS, EVENT_COLUMNS, file_identity
from supervisor.logs import get_logger
from supervisor.shared.db import SharedStoreError
from supervisor.shared.store import SharedStore

__all__ = ["JournalShipper"]

log = get_logger("riskgate.shared")

_TABLES = (("decisions", DECISION_COLUMNS), ("events", EVENT_COLUMNS))


class JournalShipper:
    def __init__(self, path: Path, store: SharedStore, batch: int = 2000) -> None:
        self._path = path
        self._store = store
        self._batch = batch
        self._marks: dict[str, tuple[str, int]] = {}
        self._failing = False
        self.shipped = 0  # rows shipped since start
        self.behind = 0  # rows read but not yet shipped at the last call (0: caught up)

    def ship(self) -> int:
        """Ship what the local journal holds beyond the marks (up to `batch` rows per
        table); how many rows went. A store that fails is said once and retried next call."""
        identity = file_identity(self._path)
        if identity is None:
            return 0
        ident = f"{identity[0]}:{identity[1]}"
        try:
            db = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=1.0)
        except sqlite3.Error:
            return 0
        sent = 0
        self.behind = 0
        try:
            for table, columns in _TABLES:
                sent += self._ship_table(db, table, columns, ident)
        except SharedStoreError as exc:
            if not self._failing:
                log.warning("journal_not_shipped", error=str(exc), effect="kept in the local journal; shipped later")
                self._failing = True
            return sent
        except sqlite3.Error as exc:
            log.warning("journal_not_read_for_shipping", error=str(exc))
            return sent
        finally:
            db.close()
        if self._failing:
            log.info("journal_shipping_again")
            self._failing = False
        self.shipped += sent
        return sent

    def _ship_table(self, db: sqlite3.Connection, table: str, columns: tuple[str, ...], ident: str) -> int:
        mark = self._marks.get(table)
        if mark is None:
            mark = self._store.shipped_mark(table) or (ident, 0)
        last = mark[1] if mark[0] == ident else 0  # another file (replaced, quarantined): from its start
        names = ", ".join(("rowid", "run", "seq", *columns))
        try:
            rows = db.execute(
                f"SELECT {names} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",  # noqa: S608 - our names
                (last, self._batch),
            ).fetchall()
        except sqlite3.OperationalError:  # no such table yet
            return 0
        if not rows:
            self._marks[table] = (ident, last)
            return 0
        new_last = int(rows[-1][0])
        self._store.ship(table, columns, [row[1:] for row in rows], ident, new_last)
        self._marks[table] = (ident, new_last)
        if len(rows) >= self._batch:
            self.behind += len(rows)  # more to ship: the actor asks again at once
        return len(rows)
