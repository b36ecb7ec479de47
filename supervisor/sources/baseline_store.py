"""The baseline store: each account's equity at the start of each day and week.

Loss limits are measured from these, so losing them must never restart the
count. The state folder carries a marker of its own, written at the first
start; a missing, empty or unreadable store in a folder that has the marker
is a lost store (`StoreLost`), not a first start. What the tracker then does
(block opening orders as BASELINE_UNKNOWN until the period ends or an
operator sets the baseline) is its business; this module only keeps rows.

One row per (account, period, period_start): the history stays, so a wall
clock that jumps ahead and comes back finds the real period's baseline again.
A row with no equity records that the baseline of that period is unknown.
An operator's `riskgate baseline set` writes here from another process; the
tracker notices through SQLite's `data_version`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from supervisor.errors import RiskgateError

__all__ = [
    "LOCK_NAME",
    "MARKER_NAME",
    "STORE_NAME",
    "Baseline",
    "BaselineShare",
    "BaselineStore",
    "StateLock",
    "StoreError",
    "open_store",
    "operator_set",
    "read_baselines",
]

MARKER_NAME = "riskgate-state.json"
LOCK_NAME = "riskgate.lock"
STORE_NAME = "accounts.sqlite"
_KEEP_DAYS = 120  # history older than this is pruned at start

_SCHEMA = """
CREATE TABLE IF NOT EXISTS period_baselines (
    account TEXT NOT NULL, period TEXT NOT NULL, period_start TEXT NOT NULL,
    equity REAL,                     -- NULL: this period's baseline is unknown
    source TEXT NOT NULL, set_at TEXT NOT NULL,
    PRIMARY KEY (account, period, period_start));
CREATE TABLE IF NOT EXISTS last_equity (
    account TEXT PRIMARY KEY, equity REAL NOT NULL, at TEXT NOT NULL);
"""


class StoreError(RiskgateError):
    """The state folder or the store cannot be used at all (named cause)."""


@dataclass(frozen=True, slots=True)
class Baseline:
    period_start: datetime
    equity: float | None  # None: unknown for this period
    source: str  # last_equity | first_equity | operator:NAME | store_lost | clock_went_back | migrated


class BaselineShare(Protocol):
    """Baselines shared by several instances (store.backend = "postgresql": supervisor.shared.baselines).
    Rows are (account, period, baseline); period is day, week, peak, day_trip or week_trip. Each
    call may raise (the store unreachable): the caller keeps its own rows and fails closed."""

    def merge(self, rows: Sequence[tuple[str, str, Baseline]], at: datetime) -> list[tuple[str, str, Baseline]]:
        """Offer rows; the rows that hold for them (another instance's may win)."""
        ...

    def changes(self, since: datetime) -> list[tuple[str, str, Baseline]]:
        """Rows written since the last call (the first: every row of a period begun at `since` or later)."""
        ...

    def last_equities(self) -> dict[str, tuple[float, datetime]]: ...
    def save_last_equities(self, items: dict[str, tuple[float, datetime]]) -> None: ...
    def close(self) -> None: ...


class BaselineStore:
    """Period baselines and last equity, in one SQLite file. Used from one thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=5.0, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            check = self._db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
            self._db.executescript(_SCHEMA)
            self._migrate()
        except BaseException:
            self._db.close()
            raise
        self._version = self._data_version()

    def _migrate(self) -> None:
        # The first schema kept one row per (account, period): the current baseline only.
        old = self._db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='baselines'").fetchone()
        if old is not None:
            self._db.execute(
                "INSERT OR IGNORE INTO period_baselines "
                "SELECT account, period, period_start, equity, 'migrated', period_start FROM baselines"
            )
            self._db.execute("DROP TABLE baselines")

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def changed_elsewhere(self) -> bool:
        """True once after another connection (an operator) committed a change."""
        version = self._data_version()
        changed = version != self._version
        self._version = version
        return changed

    def latest(self) -> dict[tuple[str, str], Baseline]:
        """The most recent baseline of each (account, period)."""
        return _latest(self._db)

    def get(self, account: str, period: str, period_start: datetime) -> Baseline | None:
        row = self._db.execute(
            "SELECT equity, source FROM period_baselines WHERE account=? AND period=? AND period_start=?",
            (account, period, period_start.isoformat()),
        ).fetchone()
        return None if row is None else Baseline(period_start, row[0], row[1])

    def put(self, account: str, period: str, baseline: Baseline, at: datetime) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO period_baselines VALUES (?, ?, ?, ?, ?, ?)",
            (account, period, baseline.period_start.isoformat(), baseline.equity, baseline.source, at.isoformat()),
        )
        self._version = self._data_version()

    def forget_after(self, account: str, period: str, period_start: datetime) -> int:
        """Drop baselines of periods that begin after `period_start` (taken while
        the wall clock ran ahead). Returns how many."""
        cur = self._db.execute(
            "DELETE FROM period_baselines WHERE account=? AND period=? AND period_start > ?",
            (account, period, period_start.isoformat()),
        )
        self._version = self._data_version()
        return cur.rowcount

    def prune(self, now: datetime) -> None:
        cutoff = (now - timedelta(days=_KEEP_DAYS)).isoformat()
        self._db.execute("DELETE FROM period_baselines WHERE period_start < ?", (cutoff,))

    def last_equity(self) -> dict[str, float]:
        return dict(self._db.execute("SELECT account, equity FROM last_equity").fetchall())

    def last_equity_times(self) -> dict[str, tuple[float, datetime]]:
        rows = self._db.execute("SELECT account, equity, at FROM last_equity").fetchall()
        return {a: (e, _time(at)) for a, e, at in rows}

    def save_last_equity(self, account: str, equity: float, at: datetime) -> None:
        self._db.execute("INSERT OR REPLACE INTO last_equity VALUES (?, ?, ?)", (account, equity, at.isoformat()))
        self._version = self._data_version()

    def close(self) -> None:
        self._db.close()


_LATEST = (
    "SELECT account, period, period_start, equity, source FROM period_baselines p "
    "WHERE period_start = (SELECT MAX(period_start) FROM period_baselines q "
    "WHERE q.account = p.account AND q.period = p.period)"
)


def _latest(db: sqlite3.Connection) -> dict[tuple[str, str], Baseline]:
    rows = db.execute(_LATEST).fetchall()
    return {(a, p): Baseline(_time(start), equity, source) for a, p, start, equity, source in rows}


def _time(text: str) -> datetime:
    ts = datetime.fromisoformat(text)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts


def _write_marker(folder: Path, now: datetime) -> None:
    marker = folder / MARKER_NAME
    tmp = folder / (MARKER_NAME + ".tmp")
    body = json.dumps({"created": now.isoformat(), "note": "riskgate state folder; do not delete"})
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(body + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, marker)


def _quarantine(path: Path, now: datetime) -> Path:
    """Move an unreadable store (and its WAL files) aside, for a post-mortem."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.lost-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            os.replace(part, Path(str(target) + suffix))
    return target


def open_store(folder: Path, now: datetime) -> tuple[BaselineStore, str | None]:
    """Open (or create) the store in `folder`. Returns it and, when the store of
    an initialised folder was missing, empty or unreadable, why (the store
    returned is then a fresh one). Raises `StoreError` naming the cause when the
    folder or a fresh store cannot be used at all."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"state folder {folder}: {type(exc).__name__}: {exc.strerror or exc}") from exc
    path = folder / STORE_NAME
    initialised = (folder / MARKER_NAME).exists()
    lost: str | None = None
    if initialised and not path.exists():
        lost = f"{path} is missing"
    elif initialised and path.stat().st_size == 0:
        lost = f"{path} is empty (0 bytes)"
        _quarantine(path, now)
    store: BaselineStore | None = None
    if lost is None:
        try:
            store = BaselineStore(path)
        except sqlite3.Error as exc:
            lost = f"{path} is unreadable: {type(exc).__name__}: {exc}"
            try:
                moved = _quarantine(path, now)
            except OSError as move_exc:
                raise StoreError(f"{lost}; and it cannot be moved aside: {move_exc.strerror}") from exc
            lost += f" (moved to {moved.name})"
    if store is None:
        try:
            store = BaselineStore(path)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot create a store: {type(exc).__name__}: {exc}") from exc
    if not initialised:
        try:
            _write_marker(folder, now)
        except OSError as exc:
            store.close()
            raise StoreError(f"state folder {folder}: cannot write {MARKER_NAME}: {exc.strerror or exc}") from exc
    store.prune(now)
    return store, lost


def operator_set(
    folder: Path, account: str, equities: dict[str, float], starts: dict[str, datetime], by: str, now: datetime
) -> None:
    """Write baselines an operator decided (`riskgate baseline set`), for the
    periods in `equities`, each for the period beginning at `starts[period]`.
    The running tracker takes them up at its next tick. Raises `StoreError`."""
    if not (folder / MARKER_NAME).exists():
        raise StoreError(f"{folder} is not an initialised riskgate state folder (no {MARKER_NAME}); nothing to set")
    try:
        store = BaselineStore(folder / STORE_NAME)
    except sqlite3.Error as exc:
        raise StoreError(f"{folder / STORE_NAME}: {type(exc).__name__}: {exc}") from exc
    try:
        for period, equity in equities.items():
            store.put(account, period, Baseline(starts[period], equity, f"operator:{by}"), now)
    finally:
        store.close()


def read_baselines(folder: Path) -> dict[tuple[str, str], Baseline]:
    """The latest baseline of each (account, period), read-only (`riskgate baseline show`)."""
    path = folder / STORE_NAME
    if not path.exists():
        raise StoreError(f"{path} does not exist")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {type(exc).__name__}: {exc}") from exc
    try:
        return _latest(db)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {type(exc).__name__}: {exc}") from exc
    finally:
        db.close()


class StateLock:
    """One riskgate per state folder: two would both write its baselines and its
    journal. An exclusive, non-blocking `flock` on `{state.dir}/riskgate.lock`,
    held while the supervisor runs (the kernel drops it if the process dies)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"state folder {self.path.parent}: {type(exc).__name__}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise StoreError(
                f"state folder {self.path.parent} is in use by another riskgate (pid {holder}): two would write "
                "the same baselines and journal; give each its own [state] dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None
