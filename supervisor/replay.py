"""What-if replay: every recorded decision decided again under a candidate config.

The journal holds, beside each decision (with the gate's monotonic time and the caller's
reference price), every input the gate applied to its state, in the order it applied them
(supervisor.journal.inputs): readings, prices, snapshots, fills, outcomes, overrides, the
ESS board, the state a start recalled. A replay builds a real `Gate` under the candidate on a
clock set to each record's recorded times, applies the inputs and decides each order again,
so every check runs as it ran live; what the candidate approves or refuses changes what it
holds for the orders after (its caps, rates and duplicates are its own). With the candidate
equal to the live config every decision comes out as recorded (tests/supervisor/test_replay.py).

Not re-decided (kept as recorded, counted): decisions made before the gate or without it
(an order that could not be read, GATE_UNAVAILABLE, JOURNAL_UNAVAILABLE: what the process
and its journal did, not what a config decides), rows from before the journal recorded
inputs, and a run's decisions after records the journal lost (a RecordsLost mark: its queue
was full). A run is replayed from its start, whatever `since` says: its state is built from
there; its seed is recalled from the runs before it. A reload the live process took does not
change the candidate (counted). A run's accounts may be split by exchange over worker
processes (`replay_journal(workers=)`): exact, since an account trades on one exchange.
A row that cannot be read stops the replay naming it (ReplayError): never a guess.
"""

from __future__ import annotations

import gc
import logging
import math
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from supervisor.channels.ess_board import EssBoard, EssReading
from supervisor.channels.journal_queue import JournalQueue, RecordsLost, Seeded
from supervisor.clock import Timer
from supervisor.config import Config
from supervisor.core.messages import Decision, EvaluateOrder, RejectOrder, RiskGateResult
from supervisor.core.orders import account_of, validate_order
from supervisor.errors import RiskgateError
from supervisor.gate import Gate
from supervisor.journal.inputs import ConfigMark, decode
from supervisor.journal.recall import recall_state
from supervisor.journal.store import from_us
from supervisor.logs import configure_logging

__all__ = [
    "DECISION_ROWS",
    "INPUT_ROWS",
    "NOT_REDECIDED",
    "Change",
    "ReplayError",
    "ReplayReport",
    "Replayer",
    "in_seq",
    "order_of_row",
    "order_text",
    "read_input",
    "record_us",
    "replay_journal",
    "row_problem",
    "same_decision",
]

#: Why the decisions after a RecordsLost are kept as recorded (the journal's queue was full).
LOST = "after records the journal lost (its queue was full)"
#: Decisions a config does not decide: kept as recorded.
NOT_REDECIDED = frozenset({"GATE_UNAVAILABLE", "JOURNAL_UNAVAILABLE"})


class ReplayError(RiskgateError):
    """The journal cannot be replayed (unreadable, or an input row that cannot be read)."""


class _SetClock:
    """The recorded times, set before each record (timers never fire in a replay). The wall
    time is kept as the record's microseconds and made a datetime only when asked."""

    __slots__ = ("_wall", "_wall_us", "mono", "us")

    def __init__(self) -> None:
        self.mono = 0.0
        self.us = 0
        self._wall_us = 0
        self._wall = datetime(1970, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        if self._wall_us != self.us:
            self._wall_us = self.us
            self._wall = from_us(self.us)
        return self._wall

    def call_every(self, interval_s: float, fn: Callable[[], None], name: str = "timer") -> Timer:
        raise RiskgateError("a replay runs no timers")


class _Discard(JournalQueue):
    """A replayed gate's journal: what it would record is not kept (the live one has it)."""

    keeps_records = False

    def __init__(self) -> None:
        super().__init__(max_records=1, block_when_failing=False)

    def decision(self, *_args: Any, **_kw: Any) -> int:
        return 0

    def event(self, *_args: Any, **_kw: Any) -> bool:
        return True

    def input(self, *_args: Any, **_kw: Any) -> bool:
        return True


class Replayer:
    """One run's gate under `config`, fed its recorded inputs and orders in their order."""

    def __init__(self, config: Config, journal: Path, later_runs: tuple[str, ...] = ()) -> None:
        """`later_runs`: this run and those after it, whose rows its start could not have read."""
        self.config = config
        self.journal = journal
        self.later_runs = later_runs
        self.clock = _SetClock()
        self.board = EssBoard()
        self.gate = Gate(config, self.clock, self.board, _Discard())
        self.gate.open("replay")
        self.reloads = 0  # reloads the live run took (the candidate stays in force)

    def apply(self, ts_us: int, mono: float, message: object, received: float) -> None:
        """`message` applied at a record's times (its `ts_us` read by `record_us`)."""
        clock = self.clock
        clock.us, clock.mono = ts_us, mono
        if isinstance(message, EssReading):
            self.board.restore(message)
        elif isinstance(message, Seeded):
            state, _ = recall_state(self.config, clock, self.journal, self.later_runs)
            self.gate.seed(state)
        elif isinstance(message, ConfigMark):
            self.reloads += 1
        else:
            self.gate.apply_now(message, received)

    def decide(self, ts_us: int, mono: float, order: dict[str, Any]) -> RiskGateResult:
        """`order`'s fields (a recorded row's: `order_of_row`) decided again at the recorded times."""
        clock = self.clock
        clock.us, clock.mono = ts_us, mono
        config = self.config
        valid = validate_order(order, config)
        msg: EvaluateOrder | RejectOrder
        if isinstance(valid, str):
            msg = RejectOrder(valid, str(order.get("order_id") or ""), account_of(order))
        else:
            msg = EvaluateOrder(valid, config=config)
        return self.gate.decide_now(msg)


@dataclass(frozen=True, slots=True)
class Change:
    """One decision the candidate decides otherwise."""

    when: datetime
    order_id: str
    account: str
    order: str  # "buy 0.05 BTCUSDT @65000"
    notional_usd: float
    live: tuple[Decision, str, float]  # decision, code, quantity sent
    candidate: tuple[Decision, str, float]
    reason: str  # the candidate's
    seq: int = 0  # its record's place in the run's journal


@dataclass
class ReplayReport:
    total: int = 0  # decisions in the range
    redecided: int = 0
    changed: int = 0
    kept: dict[str, int] = field(default_factory=dict)  # not re-decided, by why
    runs: int = 0
    reloads: int = 0
    first: datetime | None = None
    last: datetime | None = None
    transitions: dict[tuple[str, str, str, str], list[float]] = field(default_factory=dict)  # -> [count, usd]
    accounts: dict[str, list[float]] = field(default_factory=dict)  # -> [decisions, changed, usd changed]
    examples: list[Change] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        moves = sorted(self.transitions.items(), key=lambda kv: (-kv[1][0], kv[0]))
        affected = sorted(((a, v) for a, v in self.accounts.items() if v[1]), key=lambda kv: (-kv[1][1], kv[0]))
        return {
            "total": self.total,
            "changed": self.changed,
            "redecided": self.redecided,
            "not_redecided": dict(sorted(self.kept.items())),
            "runs": self.runs,
            "live_reloads": self.reloads,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "transitions": [
                {"from": [k[0], k[1]], "to": [k[2], k[3]], "count": int(v[0]), "notional_usd": round(v[1], 2)}
                for k, v in moves
            ],
            "accounts": [
                {"account": a, "decisions": int(v[0]), "changed": int(v[1]), "notional_usd": round(v[2], 2)}
                for a, v in affected
            ],
            "examples": [change_json(c) for c in self.examples],
        }


def change_json(c: Change) -> dict[str, Any]:
    return {
        "time": c.when.isoformat(),
        "order_id": c.order_id,
        "account": c.account,
        "order": c.order,
        "notional_usd": round(c.notional_usd, 2),
        "from": list(c.live),
        "to": list(c.candidate),
        "reason": c.reason,
    }


#: A run's decision and input rows as a replay reads them (the shadow too), by the columns `order_of_row`,
#: `row_problem` and `read_input` name; callers add their conditions and "ORDER BY seq". No time filter:
#: a row whose time is damaged is refused, never passed over (`_replay_run` stops at until).
DECISION_ROWS = (
    "SELECT seq, ts_us, mono_s, order_id, account, exchange, strategy_id, symbol, side, quantity, price,"
    " stop_price, leverage, reduce_only, reference_price, decision, reason_code, adjusted_quantity"
    " FROM decisions WHERE run = ?"
)
INPUT_ROWS = "SELECT seq, ts_us, mono_s, received_s, kind, body FROM inputs WHERE run = ?"
_PART_INPUTS = "(account IS NULL OR account IN ({accounts})) OR exchange IN ({exchanges})"


def _runs(db: sqlite3.Connection, since_us: int, until_us: int) -> list[str]:
    """Runs with a decision in [since_us, until_us), oldest first."""
    rows = db.execute(
        "SELECT run, MIN(ts_us) AS first FROM decisions GROUP BY run HAVING MAX(ts_us) >= ? AND MIN(ts_us) < ?"
        " ORDER BY first",
        (since_us, until_us),
    ).fetchall()
    return [str(r[0]) for r in rows]


@dataclass(frozen=True, slots=True)
class _Part:
    """The accounts one worker decides (those of some exchanges); `others`: also orders naming
    no configured account (the first worker: they block UNKNOWN_ACCOUNT on the market's state
    alone). A worker applies every input but the fills, outcomes, messages and overrides of
    other exchanges' accounts (inputs.route)."""

    accounts: tuple[str, ...]
    exchanges: tuple[str, ...]
    everyone: tuple[str, ...]  # every configured account (what `others` is not)
    others: bool


def in_seq(
    inputs: Iterable[tuple[Any, ...]], decisions: Iterable[tuple[Any, ...]]
) -> Iterator[tuple[bool, tuple[Any, ...]]]:
    """(is_input, row) of two seq-ordered row streams, in seq order: the order the gate applied
    and decided them."""
    rest = iter(inputs)
    nxt = next(rest, None)
    for row in decisions:
        seq = row[0]
        while nxt is not None and nxt[0] <= seq:  # a tie (an edited journal): the input first, as applied
            yield True, nxt
            nxt = next(rest, None)
        yield False, row
    while nxt is not None:
        yield True, nxt
        nxt = next(rest, None)


def _merged(db: sqlite3.Connection, run: str, part: _Part | None = None) -> Iterator[tuple[bool, tuple[Any, ...]]]:
    """(is_input, row) of the run (of `part`'s accounts) in seq order."""
    if part is None:
        return in_seq(
            db.execute(INPUT_ROWS + " ORDER BY seq", (run,)), db.execute(DECISION_ROWS + " ORDER BY seq", (run,))
        )
    # Placeholders only below: the names are bound.
    marks = ", ".join("?" * len(part.accounts))
    mine = f"account IN ({marks})"
    others: tuple[str, ...] = ()
    if part.others:
        mine += f" OR account IS NULL OR account NOT IN ({', '.join('?' * len(part.everyone))})"
        others = part.everyone
    decisions = db.execute(f"{DECISION_ROWS} AND ({mine}) ORDER BY seq", (run, *part.accounts, *others))
    # An order of no configured account (the first part's) blocks before any account's state is read.
    read = _PART_INPUTS.format(accounts=marks, exchanges=", ".join("?" * len(part.exchanges)))
    inputs = db.execute(f"{INPUT_ROWS} AND ({read}) ORDER BY seq", (run, *part.accounts, *part.exchanges))
    return in_seq(inputs, decisions)


_ORDER_COLUMNS = (
    "order_id", "account", "exchange", "strategy_id", "symbol", "side", "quantity", "price", "stop_price",
    "leverage", "reduce_only", "reference_price",
)  # fmt: skip


def order_of_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """The order of a decision row (columns 3-14 of the replay's query), as the fields an order
    is read from: read again by `validate_order` under the candidate, like any order from outside."""
    # A NULL column is a field left out: validation reads None as absent (built in C: per decision).
    order = dict(zip(_ORDER_COLUMNS, row[3:15], strict=True))
    if order["reduce_only"] is not None:
        order["reduce_only"] = bool(order["reduce_only"])
    return order


def replay_journal(
    journal: Path,
    candidate: Config,
    since_us: int = 0,
    until_us: int = 2**62,
    account: str | None = None,
    examples: int = 10,
    on_change: Callable[[Change], None] | None = None,
    workers: int = 1,
) -> ReplayReport:
    """Re-decide every decision of `journal` in [since_us, until_us) (of `account`, if given)
    under `candidate`. Raises `ReplayError` when the journal cannot be read or replayed.

    `workers` > 1: a run's orders are decided in up to that many processes, each taking the
    accounts of some exchanges and applying every input. That is exact: an account's orders are
    decided only on its own exchange, so every cap, rate and duplicate memory lives in one worker.
    A run with an outcome naming no account (released by whichever single account holds its id)
    is decided in one process (the holders would be split)."""
    if not journal.exists():
        raise ReplayError(f"no journal at {journal}")
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise ReplayError(f"the journal {journal} cannot be read: {exc}") from exc
    report = ReplayReport()
    try:
        have = {row[1] for row in db.execute("PRAGMA table_info(decisions)")}
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "mono_s" not in have or "inputs" not in tables:
            raise ReplayError(f"the journal {journal} was written before riskgate recorded inputs: nothing to replay")
        starts = {str(r): int(f) for r, f in db.execute("SELECT run, MIN(rowid) FROM inputs GROUP BY run")}
        for run in _runs(db, since_us, until_us):
            report.runs += 1
            begun = starts.get(run, 0)
            later = tuple(r for r, first in starts.items() if first >= begun) if run in starts else (run,)
            parts = _parts(db, run, until_us, candidate, workers) if on_change is None else []
            if len(parts) < 2:
                part = ReplayReport()
                with _few_collections():
                    _replay_run(
                        db, run, later, journal, candidate, since_us, until_us, account, examples, on_change, part
                    )
                _merge(report, [part], examples)
                continue
            with ProcessPoolExecutor(len(parts)) as pool:
                futures = [
                    pool.submit(_replay_part, journal, run, later, candidate, since_us, until_us, account, examples, p)
                    for p in parts
                ]
                _merge(report, [f.result() for f in futures], examples)
    except sqlite3.Error as exc:
        raise ReplayError(f"the journal {journal} cannot be read: {type(exc).__name__}: {exc}") from exc
    finally:
        db.close()
    return report


def _parts(db: sqlite3.Connection, run: str, until_us: int, candidate: Config, workers: int) -> list[_Part]:
    """The run's accounts split by exchange into up to `workers` parts of about equal decisions;
    none (one process) when that cannot be exact or would not help."""
    if workers < 2:
        return []
    unnamed = db.execute(
        "SELECT 1 FROM inputs WHERE run = ? AND kind = 'outcome' AND body LIKE '%,null]' LIMIT 1", (run,)
    ).fetchone()
    if unnamed is not None:
        return []
    configured = candidate.accounts.accounts
    weight: dict[str, int] = {}
    for name, n in db.execute(
        "SELECT account, COUNT(*) FROM decisions WHERE run = ? AND ts_us < ? GROUP BY account", (run, until_us)
    ):
        if name in configured:
            exchange = configured[name].exchange
            weight[exchange] = weight.get(exchange, 0) + int(n)
    if len(weight) < 2:
        return []
    bins: list[tuple[int, list[str]]] = [(0, []) for _ in range(min(workers, len(weight)))]
    for exchange in sorted(weight, key=lambda e: -weight[e]):  # the heaviest first, each to the lightest bin
        i = min(range(len(bins)), key=lambda k: bins[k][0])
        bins[i] = (bins[i][0] + weight[exchange], [*bins[i][1], exchange])
    everyone = tuple(configured)
    return [
        _Part(
            tuple(a for a, cfg in configured.items() if cfg.exchange in exchanges), tuple(exchanges), everyone, i == 0
        )
        for i, (_, exchanges) in enumerate(bins)
    ]


def _replay_part(
    journal: Path,
    run: str,
    later: tuple[str, ...],
    candidate: Config,
    since_us: int,
    until_us: int,
    account: str | None,
    examples: int,
    part: _Part,
) -> ReplayReport:
    """One worker process's share of a run (`_parts`)."""
    configure_logging("console", level=logging.CRITICAL, stream=sys.stderr)  # the replayed gate's lines: noise
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5.0)
    try:
        report = ReplayReport()
        with _few_collections():
            _replay_run(db, run, later, journal, candidate, since_us, until_us, account, examples, None, report, part)
        return report
    finally:
        db.close()


def _merge(into: ReplayReport, parts: list[ReplayReport], examples: int) -> None:
    """The parts of one run added to the report (a reload each part saw counted once)."""
    for part in parts:
        into.total += part.total
        into.redecided += part.redecided
        into.changed += part.changed
        for why, n in part.kept.items():
            into.kept[why] = into.kept.get(why, 0) + n
        for moves, figures in part.transitions.items():
            move = into.transitions.setdefault(moves, [0, 0.0])
            move[0] += figures[0]
            move[1] += figures[1]
        for name, figures in part.accounts.items():
            acct = into.accounts.setdefault(name, [0, 0, 0.0])
            for k in range(3):
                acct[k] += figures[k]
        if part.first is not None and (into.first is None or part.first < into.first):
            into.first = part.first
        if part.last is not None and (into.last is None or part.last > into.last):
            into.last = part.last
    into.reloads += max((p.reloads for p in parts), default=0)
    found = sorted((e for p in parts for e in p.examples), key=lambda c: c.seq)  # this run's, in its order
    into.examples = [*into.examples, *found][:examples]


@contextmanager
def _few_collections() -> Iterator[None]:
    """The cyclic collector held back while a run is replayed: a replay allocates briskly and keeps
    little (its state is bounded), so what exists before it is frozen (never scanned again) and the
    young are collected 20x less often; about 8 % of a long replay's time (bench section 13). A
    caller that froze objects itself keeps them frozen (nothing is frozen or unfrozen then)."""
    before = gc.get_threshold()
    freezing = gc.get_freeze_count() == 0
    if freezing:
        gc.freeze()
    gc.set_threshold(max(before[0], 20_000), before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freezing:
            gc.unfreeze()


def _replay_run(
    db: sqlite3.Connection,
    run: str,
    later: tuple[str, ...],
    journal: Path,
    candidate: Config,
    since_us: int,
    until_us: int,
    account: str | None,
    examples: int,
    on_change: Callable[[Change], None] | None,
    report: ReplayReport,
    part: _Part | None = None,
) -> None:
    replayer = Replayer(candidate, journal, later)
    kept = report.kept
    lost = False
    last_us: int | None = None
    for is_input, row in _merged(db, run, part):
        ts_us = record_us(run, is_input, row)
        if ts_us >= until_us:
            break  # the rest of the run is past the range
        if is_input:
            message = read_input(run, row)
            if isinstance(message, RecordsLost):
                lost = True  # the live state had inputs or approvals the journal lacks: not rebuilt from here
                continue
            replayer.apply(ts_us, row[2], message, row[3])
            continue
        counted = row[1] >= since_us and (account is None or row[4] == account)
        code = row[16]
        damaged = row_problem(row)
        if damaged is not None:
            raise ReplayError(f"run {run}, decision {row[0]}: {damaged}")
        if lost or row[2] is None or row[7] is None or code in NOT_REDECIDED:
            if counted:
                report.total += 1
                why = (LOST if lost else code if code in NOT_REDECIDED else "no order" if row[7] is None
                       else "not recorded for replay")  # fmt: skip
                kept[why] = kept.get(why, 0) + 1
            continue  # what the live gate did not decide, or booked nothing for, or after a loss
        result = replayer.decide(ts_us, row[2], order_of_row(row))
        if not counted:
            continue
        report.total += 1
        report.redecided += 1
        if report.first is None:
            report.first = from_us(ts_us)
        last_us = ts_us
        _tally(report, row, result, examples, on_change)
    if last_us is not None:
        report.last = from_us(last_us)
    report.reloads += replayer.reloads


#: Year 9000 in µs: a row's time beyond it is no wall time a journal wrote (a datetime ends in 9999, and
#: the gate adds days and weeks to its clock: past this the replayed gate itself would overflow).
_MAX_US = 221_845_392_000_000_000


def record_us(run: str, is_input: bool, row: tuple[Any, ...]) -> int:
    """A decision or input row's wall time in µs; `ReplayError` naming it when its times cannot be read."""
    ts_us = row[1]
    if type(ts_us) is not int or not 0 <= ts_us < _MAX_US or not (row[2] is None or type(row[2]) is float):
        what = "input" if is_input else "decision"
        raise ReplayError(f"run {run}, {what} {row[0]}: its time cannot be read (ts_us {ts_us!r}, mono_s {row[2]!r})")
    return int(ts_us)


def read_input(run: str, row: tuple[Any, ...]) -> object:
    """An input row's message (supervisor.journal.inputs); `ReplayError` naming it when unreadable."""
    if row[2] is None or type(row[3]) is not float:
        raise ReplayError(f"run {run}, input {row[0]}: its monotonic times cannot be read")
    try:
        return decode(row[4], row[5], row[3])
    except ValueError as exc:
        raise ReplayError(f"run {run}, input {row[0]}: {exc}") from exc


def same_decision(row: tuple[Any, ...], result: RiskGateResult) -> bool:
    """Whether `result` is the decision row's: decision, code and quantity sent (to rounding)."""
    live_qty: float = row[17]
    return bool(
        result.decision == row[15]
        and result.reason_code == row[16]  # a StrEnum: equal to its text
        and abs(result.adjusted_quantity - live_qty) <= 1e-9 * max(1.0, abs(live_qty))
    )


def order_text(row: tuple[Any, ...]) -> str:
    """A decision row's order for people: "buy 0.05 BTCUSDT @65000"."""
    return f"{row[8]} {row[9]:g} {row[7]} @{row[10]:g}"


def row_problem(row: tuple[Any, ...]) -> str | None:
    """Why a decision row cannot be tallied (a damaged or edited journal), or None."""
    if row[15] not in ("allow", "block", "scale_down") or type(row[16]) is not str:
        return f"its decision {row[15]!r} / {row[16]!r} cannot be read"
    if row[7] is None:  # no order: kept as recorded, its numbers are not read
        return None
    if type(row[4]) is not str:
        return f"its account {row[4]!r} cannot be read"
    quantity, price, sent = row[9], row[10], row[17]
    floats = type(quantity) is float and type(price) is float and type(sent) is float  # as written: per decision
    if floats and math.isfinite(quantity) and math.isfinite(price) and math.isfinite(sent):
        return None
    for name, value in (("quantity", row[9]), ("price", row[10]), ("adjusted_quantity", row[17])):
        if type(value) not in (int, float) or not math.isfinite(value):
            return f"its {name} {value!r} cannot be read"
    return None


def _tally(
    report: ReplayReport,
    row: tuple[Any, ...],
    result: RiskGateResult,
    examples: int,
    on_change: Callable[[Change], None] | None,
) -> None:
    acct = report.accounts.get(row[4])
    if acct is None:
        acct = report.accounts[row[4]] = [0, 0, 0.0]
    acct[0] += 1
    if same_decision(row, result):
        return
    live_decision, live_code, live_qty = row[15], row[16], row[17]
    code = str(result.reason_code)
    usd = row[9] * row[10]
    report.changed += 1
    acct[1] += 1
    acct[2] += usd
    move = report.transitions.setdefault((live_decision, live_code, result.decision, code), [0, 0.0])
    move[0] += 1
    move[1] += usd
    if len(report.examples) < examples or on_change is not None:
        change = Change(
            from_us(row[1]), row[3] or "", row[4], order_text(row), usd,
            (live_decision, live_code, live_qty), (result.decision, code, result.adjusted_quantity), result.reason,
            row[0],
        )  # fmt: skip
        if len(report.examples) < examples:
            report.examples.append(change)
        if on_change is not None:
            on_change(change)
