"""The journal's SQLite file: every decision with its inputs, and the events that explain them.

`JournalWriter` (in sqlite_file.py, run by the journal actor's thread or by
its writer process) writes it; `JournalReader` opens the file read-only, so
`riskgate journal` works while `riskgate run` is writing (WAL). Times are
integer microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from supervisor.channels.journal_queue import DecisionRecord, EventRecord, InputRecord
from supervisor.clock import SystemClock
from supervisor.core.gate_state import UNITS_PER_USD
from supervisor.errors import RiskgateError
from supervisor.journal.inputs import encode, route
from supervisor.journal.sqlite_file import DECISION_COLUMNS, JournalWriter, file_identity

__all__ = [
    "DECISION_COLUMNS",
    "JOURNAL_NAME",
    "JournalReader",
    "JournalUnreadableError",
    "JournalWriter",
    "Query",
    "decision_filters",
    "decision_row",
    "event_row",
    "file_identity",
    "from_us",
    "input_row",
    "read_journal",
    "to_us",
]

JOURNAL_NAME = "journal.sqlite"
_T = TypeVar("_T")


class JournalUnreadableError(RiskgateError):
    """The journal's file exists but cannot be read (damaged, truncated, not a database)."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _not_in(runs: tuple[str, ...]) -> str:
    """ " AND run NOT IN (?, ...)" for `runs` (placeholders only: the names are bound), or ""."""
    return f" AND run NOT IN ({', '.join('?' * len(runs))})" if runs else ""


def to_us(when: datetime) -> int:
    return (when - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _pct(equity: float, start: float) -> float | None:
    return (equity - start) / start * 100.0 if start > 0 else None


def _text(value: str | None) -> str | None:
    """Text SQLite can store, as a plain `str`: a subclass (numpy's `str_`, a
    caller's own) is copied to one, since the writer process may not know its
    class; a lone surrogate (valid in a Python str, not in UTF-8) would fail
    the whole batch, so it is written escaped (`\\ud800`)."""
    if value is None:
        return None
    if type(value) is not str:
        value = str.__str__(value)  # TypeError for a non-str: the record is skipped, logged
    if value.isascii():  # O(1) in CPython
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


# The latest signal's time and the latest account state's figures, as rows hold them: they change a few
# times a second, decisions far more often (the journal's thread, per decision). Kept with the object they
# were read from (a strong reference: its identity cannot be taken by another object meanwhile).
_signal_us: list[tuple[object, int | None]] = [(None, None)]  # one entry
_state_figures: dict[str, tuple[object, tuple[float, float | None, float | None]]] = {}


def _signal_time(sig: Any) -> int | None:
    seen, us = _signal_us[0]
    if seen is not sig:
        us = to_us(sig.timestamp) if isinstance(sig.timestamp, datetime) else None
        _signal_us[0] = (sig, us)
    return us


def _figures(account: str, state: Any) -> tuple[float, float | None, float | None]:
    """(equity, day PnL %, week PnL %) of an account's state, read once per state object."""
    seen = _state_figures.get(account)
    if seen is not None and seen[0] is state:
        return seen[1]
    equity = state.equity
    figures = (equity, _pct(equity, state.day_start_equity), _pct(equity, state.week_start_equity))
    if len(_state_figures) >= 10_000:
        _state_figures.clear()  # bounded, whatever the accounts named (a cache: rebuilt as rows come)
    _state_figures[account] = (state, figures)
    return figures


_NO_ORDER = (None,) * 10
_NO_FIGURES = (None, None, None)


def decision_row(run: str, record: DecisionRecord) -> tuple[Any, ...]:
    """A decision's record as a row of the decisions table."""
    r, o, sig, b = record.result, record.order, record.signal, record.book
    reserved_units = record.reserved_units
    ages = r.state_age_s
    order: tuple[Any, ...]
    if o is not None:
        order = (
            _text(o.account), _text(o.exchange), _text(o.strategy_id), _text(o.symbol),
            o.side, o.quantity, o.price, o.stop_price, o.leverage, int(o.reduce_only),
        )  # fmt: skip
    else:
        order = (_text(record.account), *_NO_ORDER[1:])
    figures = _figures(b.state.account, b.state) if b is not None else _NO_FIGURES
    return (
        run,
        record.seq,
        to_us(r.timestamp),
        _text(r.order_id),
        *order,
        r.decision,
        str(r.reason_code),
        _text(r.reason),
        r.adjusted_quantity,
        r.scale_factor,
        r.risk_level,
        _signal_time(sig) if sig is not None else None,
        int(r.ess_active),
        ages.get("ess"),
        ages.get("risk_v3"),
        ages.get("account"),
        *figures,
        reserved_units / UNITS_PER_USD if reserved_units is not None else None,
        record.mono,
        o.reference_price if o is not None else None,
    )


def input_row(run: str, record: InputRecord) -> tuple[Any, ...]:
    """What the gate applied, as a row of the inputs table (supervisor.journal.inputs)."""
    message = record.message
    kind, body = encode(message)
    account, exchange = route(message)
    return (
        run, record.seq, to_us(record.when), float(record.mono), float(record.received), kind, body,
        _text(account), _text(exchange),
    )  # fmt: skip


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def event_row(run: str, record: EventRecord) -> tuple[Any, ...]:
    """An event's record as a row of the events table."""
    detail_json = json.dumps(_jsonable(record.detail), sort_keys=True)  # ASCII: non-ASCII is escaped
    when, kind, source, account = record.when, record.kind, record.source, record.account
    return (run, record.seq, to_us(when), _text(kind), _text(source), _text(account), detail_json)


@dataclass(frozen=True, slots=True)
class Query:
    since_us: int | None = None
    until_us: int | None = None
    account: str | None = None
    order_id: str | None = None
    code: str | None = None
    decision: str | tuple[str, ...] | None = None  # a tuple: any of them
    limit: int = 100


def decision_filters(q: Query, mark: str) -> tuple[list[str], list[Any]]:
    """The WHERE terms of a decisions query and their bound values, with `mark` as the
    placeholder ("?" for SQLite, "%s" for PostgreSQL); "any of" is spelled out term by term."""
    where: list[str] = []
    args: list[Any] = []
    for column, op, value in (
        ("ts_us", ">=", q.since_us),
        ("ts_us", "<", q.until_us),
        ("account", "=", q.account),
        ("order_id", "=", q.order_id),
        ("reason_code", "=", q.code),
        ("decision", "=", q.decision),
    ):
        if isinstance(value, tuple):
            where.append(f"{column} IN ({', '.join([mark] * len(value))})")
            args.extend(value)
        elif value is not None:
            where.append(f"{column} {op} {mark}")
            args.append(value)
    return where, args


def read_journal(path: Path, read: Callable[[JournalReader], _T], absent: _T) -> _T:
    """`read(reader)` on the journal at `path`, closed after: `absent` when there is no
    file; `JournalUnreadableError` when it cannot be read (damaged, not a database)."""
    try:
        reader = JournalReader(path)
    except FileNotFoundError:
        return absent
    except (sqlite3.Error, OSError) as exc:
        raise JournalUnreadableError(f"the journal {path} cannot be read: {type(exc).__name__}: {exc}") from exc
    try:
        return read(reader)
    except (sqlite3.Error, OSError) as exc:
        raise JournalUnreadableError(f"the journal {path} cannot be read: {type(exc).__name__}: {exc}") from exc
    finally:
        reader.close()


class JournalReader:
    """Read-only access (works while the journal is being written)."""

    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"no journal at {path}")
        self.path = path
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        self._db.close()

    def decisions(self, q: Query) -> list[dict[str, Any]]:
        """Matching decisions, newest first."""
        where, args = decision_filters(q, "?")
        # Column names and operators come from decision_filters; every value is bound.
        sql = "SELECT * FROM decisions" + (f" WHERE {' AND '.join(where)}" if where else "")  # noqa: S608 - see above
        sql += " ORDER BY ts_us DESC, seq DESC LIMIT ?"
        rows = self._db.execute(sql, (*args, q.limit)).fetchall()
        return [dict(row) for row in rows]

    def resting_events_since(self, since_us: int, exclude_runs: tuple[str, ...] = ()) -> Iterator[sqlite3.Row]:
        """`order_resting` and `order_ended` events at or after `since_us` (not of `exclude_runs`), oldest
        first, streamed."""
        return iter(
            self._db.execute(
                "SELECT ts_us, kind, account, detail FROM events WHERE kind IN ('order_resting', 'order_ended')"  # noqa: S608 - placeholders only
                " AND ts_us >= ?" + _not_in(exclude_runs) + " ORDER BY ts_us, seq",
                (since_us, *exclude_runs),
            )
        )

    def pauses_since(self, since_us: int, exclude_runs: tuple[str, ...] = ()) -> list[sqlite3.Row]:
        """`price_spike_pause` events at or after `since_us` (not of `exclude_runs`), oldest first (at most 10,000)."""
        return list(
            self._db.execute(
                "SELECT ts_us, detail FROM events WHERE kind = 'price_spike_pause' AND ts_us >= ?"  # noqa: S608 - placeholders only
                + _not_in(exclude_runs)
                + " ORDER BY ts_us, seq LIMIT 10000",
                (since_us, *exclude_runs),
            )
        )

    def marks_since(self, since_us: int, exclude_runs: tuple[str, ...] = ()) -> list[sqlite3.Row]:
        """The latest `price_mark` events at or after `since_us` (not of `exclude_runs`; at most 100,000)."""
        return list(
            self._db.execute(
                "SELECT ts_us, detail FROM events WHERE kind = 'price_mark' AND ts_us >= ?"  # noqa: S608 - placeholders only
                + _not_in(exclude_runs)
                + " ORDER BY ts_us DESC, seq DESC LIMIT 100000",
                (since_us, *exclude_runs),
            )
        )

    def approval_of(self, account: str, order_id: str, exclude_runs: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """The latest approved decision on this account's order id (not of `exclude_runs`), or None."""
        row = self._db.execute(
            "SELECT ts_us, order_id, account, exchange, symbol, side, quantity, price, adjusted_quantity, reduce_only"  # noqa: S608 - placeholders only
            " FROM decisions WHERE order_id = ? AND account = ? AND decision != 'block'"
            + _not_in(exclude_runs)
            + " ORDER BY ts_us DESC LIMIT 1",
            (order_id, account, *exclude_runs),
        ).fetchone()
        return dict(row) if row is not None else None

    def approvals_since(self, since_us: int, limit: int, exclude_runs: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Approved (allowed or scaled) decisions at or after `since_us` (not of `exclude_runs`), oldest first."""
        rows = self._db.execute(
            "SELECT ts_us, order_id, account, exchange, symbol, side, quantity, price, adjusted_quantity, reduce_only"  # noqa: S608 - placeholders only
            " FROM decisions WHERE ts_us >= ? AND decision != 'block'"
            + _not_in(exclude_runs)
            + " ORDER BY ts_us, seq LIMIT ?",
            (since_us, *exclude_runs, limit),
        ).fetchall()
        return [dict(row) for row in rows]

    def events(
        self,
        since_us: int | None = None,
        until_us: int | None = None,
        limit: int = 100,
        account: str | None = None,
    ) -> list[dict[str, Any]]:
        """Events in [since_us, until_us), newest first; with `account`, only its own and those of
        no account (a halt, a source): filtered before the limit."""
        span = (since_us if since_us is not None else 0, until_us if until_us is not None else 2**62)
        args: tuple[Any, ...] = span
        if account is None:
            sql = "SELECT * FROM events WHERE ts_us >= ? AND ts_us < ?"
        else:
            sql = "SELECT * FROM events WHERE ts_us >= ? AND ts_us < ? AND (account = ? OR account IS NULL)"
            args = (*span, account)
        rows = self._db.execute(sql + " ORDER BY ts_us DESC, seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [dict(row) for row in rows]

    def series(self, since_us: int, until_us: int, bucket_us: int, budget_s: float = 2.0) -> dict[str, Any]:
        """Decisions counted per bucket of `bucket_us` by decision (and blocks by reason code),
        and the halts begun or ended in [since_us, until_us): the dashboard's chart. A query
        that runs past `budget_s` is cut (sqlite3.OperationalError "interrupted")."""
        real = SystemClock()  # a budget in real time, whatever clock drives the gate
        ends = real.monotonic() + budget_s
        self._db.set_progress_handler(lambda: int(real.monotonic() > ends), 1_000)
        try:
            counts = self._db.execute(
                "SELECT (ts_us - ?) / ? AS b, decision, reason_code, COUNT(*) FROM decisions"
                " WHERE ts_us >= ? AND ts_us < ? GROUP BY b, decision, reason_code",
                (since_us, bucket_us, since_us, until_us),
            ).fetchall()
            marks = self._db.execute(
                "SELECT ts_us, kind, detail FROM events WHERE kind IN ('ess_changed', 'operator_halt',"
                " 'operator_resume') AND ts_us >= ? AND ts_us < ? ORDER BY ts_us, seq LIMIT 500",
                (since_us, until_us),
            ).fetchall()
        finally:
            self._db.set_progress_handler(None, 0)
        return {"counts": [tuple(row) for row in counts], "marks": [tuple(row) for row in marks]}

    def stats(self, since_us: int | None = None, until_us: int | None = None) -> list[dict[str, Any]]:
        """Decisions counted by account, decision and reason code."""
        rows = self._db.execute(
            "SELECT account, decision, reason_code, COUNT(*) AS n FROM decisions WHERE ts_us >= ? AND ts_us < ?"
            " GROUP BY account, decision, reason_code ORDER BY account, n DESC",
            (since_us if since_us is not None else 0, until_us if until_us is not None else 2**62),
        ).fetchall()
        return [dict(row) for row in rows]
