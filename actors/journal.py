"""JournalActor: drains the journal queue into `{state.dir}/journal.sqlite`.

On every `Flush` (each `journal.flush_interval_s`, from supervision's ticks)
it takes what the gate and the other actors queued, turns it into rows, and
writes them in one transaction (group commit). Records leave the queue only
once committed, so a journal that dies mid-batch loses nothing.

It also emits the `order_decision` log line for every block and scale-down,
which used to be formatted on the gate's own thread, and counts every decision
for the metrics (supervisor.channels.gate_counters), which used to be counted
on the decision path.

When it cannot write (disk full, a read-only folder, a corrupt file) it says so
once (`journal_failed`, error), keeps the records queued, retries on every
flush, and says so once again when it writes (`journal_recovered`). Meanwhile
`journal.on_failure` decides: "block" makes new orders block as
JOURNAL_UNAVAILABLE, "continue" lets them through (the failure is in the log
and the health events).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from actors.base import SupervisedActor
from actors.messages import Flush
from supervisor.channels.journal_queue import DecisionRecord, EventRecord, InputRecord, JournalQueue, Record
from supervisor.clock import Clock, SystemClock
from supervisor.config import Config
from supervisor.journal.sqlite_file import Connect, JournalWriter
from supervisor.journal.store import JOURNAL_NAME, decision_row, event_row, input_row, to_us
from supervisor.journal.writer_process import ProcessWriter
from supervisor.logs import get_logger

__all__ = ["JournalActor"]

log = get_logger("riskgate.journal")
_real = SystemClock()  # a flush's time budget is real time, whatever clock drives the ticks

_BATCH = 5_000  # records per transaction
# At most this long per flush, so pings and a stop are answered: checked between
# batches (one write may take up to the writer process's 60 s timeout; a journal
# that misses its heartbeat meanwhile gets a successor, and records leave the
# queue by seq, so the two never remove what the other has not written).
_BUDGET_S = 0.5
_PRUNE_EVERY_S = 600.0
# Errors about a row's values, not the file: the row is dropped, the journal goes on.
_ROW_PROBLEMS = (
    sqlite3.InterfaceError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,
    UnicodeError,
    OverflowError,
    TypeError,
    ValueError,
)
# Events the gate journals that are also log lines (written here, off the decision path).
_LOGGED_EVENTS = {"gate_fail_closed": "warning", "gate_recovered": "info"}


class JournalActor(SupervisedActor):
    def __init__(self, config: Config, clock: Clock, queue: JournalQueue, connect: Connect | None = None) -> None:
        super().__init__()
        self._config = config
        self._clock = clock
        self._queue = queue
        self._connect = connect
        self._path = config.state.dir / JOURNAL_NAME
        self._writer: JournalWriter | ProcessWriter | None = None
        self._logged_through = 0  # the last seq whose log line was written
        self._next_prune = 0.0

    # -- life cycle ----------------------------------------------------------------
    def open_resources(self) -> None:
        if self._config.journal.enabled:
            self._open()

    def release_resources(self) -> None:
        if self._writer is not None:
            try:
                self.flush()  # what is queued at a stop is written before the file closes
            finally:
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Flush):
            return self.flush()
        log.warning("journal_unknown_message", message_type=type(message).__name__)
        return None

    def _open(self) -> bool:
        try:
            if self._connect is None and self._config.journal.writer == "process":
                self._writer = ProcessWriter(self._path)
            else:
                self._writer = JournalWriter(self._path, *([self._connect] if self._connect else []))
        except (sqlite3.Error, OSError) as exc:
            self._failed(f"cannot open {self._path}: {type(exc).__name__}: {exc}")
            return False
        return True

    # -- writing -------------------------------------------------------------------
    def flush(self) -> int:
        """Write what is queued; returns how many records were written."""
        q = self._queue
        q.flushing()  # before the first peek: what is queued after it asks for another flush
        written = 0
        ends = _real.monotonic() + _BUDGET_S
        while len(q) and _real.monotonic() < ends:
            batch = q.peek(_BATCH)
            self._log_decisions(batch)
            if q.counters is not None:  # the metrics count each decision here, off the decision path
                q.counters.count_records([r for r in batch if type(r) is DecisionRecord])
            if not self._config.journal.enabled:
                self._removed(batch)
                continue
            if self._writer is not None and not self._writer.still_at_its_path():
                # Deleted or moved while open: start a new file at the path, loudly.
                log.error("journal_file_lost", path=str(self._path), effect="a new journal starts at the path")
                self._reopen()
                if self._open():
                    q.event(self._clock.now(), "journal_file_lost", "journal", path=str(self._path))
            if self._writer is None and not self._open():
                return written
            decisions, events, inputs = _rows(q.run, batch, self._skip)
            try:
                assert self._writer is not None  # noqa: S101 - opened just above; narrows the type
                self._writer.write(decisions, events, inputs)
            except _ROW_PROBLEMS:  # a row the database refuses (a bug): only that row is dropped
                if not self._write_one_by_one(decisions, events, inputs):
                    self._failed(f"cannot write {self._path}: a row alone failed for a reason not its own")
                    self._reopen()
                    return written
            except (sqlite3.Error, OSError) as exc:
                self._failed(f"cannot write {self._path}: {type(exc).__name__}: {exc}")
                self._reopen()
                return written
            gone = self._removed(batch)
            q.written += gone
            written += gone
        if q.problem is not None and written:
            log.warning("journal_recovered", path=str(self._path), problem=q.problem, dropped=q.dropped)
            q.event(self._clock.now(), "journal_recovered", "journal", problem=q.problem, dropped=q.dropped)
            q.set_problem(None)
        elif q.blocking is not None and q.problem is None:
            q.set_problem(None)  # a full queue drained: clear the policy's verdict
        if len(q) and q.waiting() and q.problem is None:
            self.actor_ref.tell(Flush())  # out of budget with callers waiting: on at once
        self._prune()
        return written

    def _write_one_by_one(self, *tables: list[tuple[Any, ...]]) -> bool:
        """After a batch failed on a row: every row alone, so one bad row costs
        itself (dropped, logged), never the records behind it. False as soon as
        a write fails for another reason (the file or the writer, not the row:
        nothing is dropped, the batch is written again later; the rows written
        here are then stored once)."""
        assert self._writer is not None  # noqa: S101 - the caller wrote with it
        bad: list[tuple[tuple[Any, ...], Exception]] = []
        # In seq order across the tables (decisions, events, inputs: the writer's arguments): a
        # reader following the journal (the shadow) never sees a decision before an input it read.
        rows = sorted(((row[1], table, row) for table, found in enumerate(tables) for row in found),
                      key=lambda r: r[0])  # fmt: skip
        for _, table, row in rows:
            try:
                self._writer.write(*([row] if t == table else [] for t in range(3)))
            except _ROW_PROBLEMS as exc:
                bad.append((row, exc))
            except (sqlite3.Error, OSError):
                return False
        for row, error in bad:
            self._skip(row[1], error)  # a row's second column is its record's seq
        return True

    def _failed(self, problem: str) -> None:
        q = self._queue
        if q.problem is None:
            log.error(
                "journal_failed",
                problem=problem,
                policy=self._config.journal.on_failure,
                queued=len(q),
                effect="new orders block as JOURNAL_UNAVAILABLE"
                if self._config.journal.on_failure == "block"
                else "orders continue unrecorded until it writes again",
            )
        q.set_problem(problem)

    def _reopen(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(sqlite3.Error):  # it is being replaced because it failed
                self._writer.close()
            self._writer = None

    def _skip(self, seq: int, exc: Exception) -> None:
        # A record that cannot become a row is a bug; it must not stop every later one.
        self._queue.dropped = self._queue.dropped + 1
        log.error("journal_record_unwritable", seq=seq, error=f"{type(exc).__name__}: {exc}")

    def _removed(self, batch: list[Record]) -> int:
        # By seq, not by count: a journal that stalled past its heartbeat has a
        # successor on the same queue, and what that one wrote and removed meanwhile
        # must not make this one remove records nobody wrote.
        if not batch:
            return 0
        gone = self._queue.remove_through(batch[-1].seq)
        self._queue.mark_committed(batch[-1].seq)  # callers waiting for these may answer now
        return gone

    def _log_decisions(self, batch: list[Record]) -> None:
        """The `order_decision` line for every block, scale-down and override,
        and the gate's fail-closed transitions, once each (a batch that failed
        to write is peeked again)."""
        fresh = [record for record in batch if record.seq > self._logged_through]
        if batch:
            self._logged_through = max(self._logged_through, batch[-1].seq)
        for record in fresh:
            if isinstance(record, EventRecord):
                if record.kind == "reservations_expired":
                    detail = record.detail
                    log.info(
                        "reservations_expired",
                        count=detail.get("count"),
                        first=[f"{r['account']}/{r['order_id']}" for r in detail.get("reservations", ())[:5]],
                        effect="no outcome arrived within gate.reservation_ttl_s: their notional is no longer held",
                    )
                elif record.kind in _LOGGED_EVENTS:
                    getattr(log, _LOGGED_EVENTS[record.kind])(
                        record.kind, source=record.source, account=record.account, **record.detail
                    )
                continue
            if isinstance(record, InputRecord):
                continue  # state the gate applied: for replay, never a log line
            result, order = record.result, record.order
            if result.decision != "allow" or str(result.reason_code) == "OVERRIDE_APPLIED":
                log.info(
                    "order_decision",
                    decision=result.decision,
                    reason_code=str(result.reason_code),
                    reason=result.reason,
                    order_id=result.order_id,
                    account=order.account if order is not None else record.account,
                    adjusted_quantity=result.adjusted_quantity,
                )

    def _prune(self) -> None:
        now = _real.monotonic()
        if self._writer is None or now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY_S
        cutoff = to_us(self._clock.now() - timedelta(days=self._config.journal.retention_days))
        try:
            gone = self._writer.prune(cutoff)
        except sqlite3.Error as exc:
            log.warning("journal_prune_failed", error=f"{type(exc).__name__}: {exc}")
            return
        if gone:
            log.info("journal_pruned", rows=gone, retention_days=self._config.journal.retention_days)
            self._next_prune = now  # more may be left: go on at the next flush, in small batches


def _rows(
    run: str, batch: list[Record], skip: Callable[[int, Exception], None]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    decisions: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    inputs: list[tuple[Any, ...]] = []
    for record in batch:
        try:
            if isinstance(record, DecisionRecord):
                decisions.append(decision_row(run, record))
            elif isinstance(record, InputRecord):
                inputs.append(input_row(run, record))
            else:
                events.append(event_row(run, record))
        except Exception as exc:  # noqa: BLE001 - see _skip
            skip(record.seq, exc)
    return decisions, events, inputs
