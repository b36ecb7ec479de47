"""A decision's row is what a plain reading of its record gives, whatever the record holds: no
order, no book, no signal, names that are not ASCII or not UTF-8 (a lone surrogate), a str subclass,
and a signal or account state seen before (decision_row keeps those per object: a new object with
the same content, or another account's, is read again)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from supervisor.channels.journal_queue import DecisionRecord
from supervisor.core.evaluate import result_of
from supervisor.core.gate_state import UNITS_PER_USD, AccountBook
from supervisor.core.messages import AccountState, OrderRequest, RiskSignal
from supervisor.core.reasons import ReasonCode as RC
from supervisor.journal.store import _text, decision_row, to_us

WALL = datetime(2026, 12, 5, 9, 30, 1, 123456, tzinfo=UTC)


class Named(str):
    """A caller's own str type: stored as a plain str."""


def plain_row(run: str, record: DecisionRecord) -> tuple:
    """The row as read field by field, nothing kept between records."""
    r, o, sig, b = record.result, record.order, record.signal, record.book
    state = b.state if b is not None else None

    def pct(equity: float, start: float) -> float | None:
        return (equity - start) / start * 100.0 if start > 0 else None

    def of_order(value):
        return value if o is not None else None

    return (
        run, record.seq, to_us(r.timestamp), _text(r.order_id),
        _text(o.account if o is not None else record.account),
        _text(o.exchange) if o else None, _text(o.strategy_id) if o else None, _text(o.symbol) if o else None,
        of_order(o and o.side), of_order(o and o.quantity), of_order(o and o.price), of_order(o and o.stop_price),
        of_order(o and o.leverage), int(o.reduce_only) if o else None,
        r.decision, str(r.reason_code), _text(r.reason), r.adjusted_quantity, r.scale_factor, r.risk_level,
        to_us(sig.timestamp) if sig is not None and isinstance(sig.timestamp, datetime) else None,
        int(r.ess_active), r.state_age_s.get("ess"), r.state_age_s.get("risk_v3"), r.state_age_s.get("account"),
        state.equity if state else None,
        pct(state.equity, state.day_start_equity) if state else None,
        pct(state.equity, state.week_start_equity) if state else None,
        record.reserved_units / UNITS_PER_USD if record.reserved_units is not None else None,
        record.mono, o.reference_price if o else None,
    )  # fmt: skip


def book(account: str, equity: float, day: float, week: float) -> AccountBook:
    return AccountBook.from_state(AccountState(account, equity, (), day, week), 0.0)


def test_rows_are_the_plain_reading_of_every_kind_of_record():
    names = ["main", "caf\u00e9", "x\ud800y", Named("sub"), "\u0130stanbul"]
    orders = [None] + [OrderRequest(n, n, n, n, "sell", 0.5, 101.25, 2.0, True, 99.0, "o-\u00e9", 100.0) for n in names]
    sig = RiskSignal("WARNING", WALL - timedelta(seconds=3))
    signals = [None, sig, sig, RiskSignal("INFO", WALL), RiskSignal("INFO", WALL)]  # the same object, then new ones
    main = book("main", 9_900.0, 10_000.0, 0.0)
    books = [None, main, main, book("main", 9_900.0, 10_000.0, 0.0), book("main", 9_000.0, 10_000.0, 9_500.0)]
    books.append(book("other", 1.0, 2.0, 4.0))
    seq = itertools.count(1)
    rows = 0
    for o, s, b in itertools.product(orders, signals, books):
        ages = {"ess": 0.5, "risk_v3": None, "account": 1.25}
        result = result_of("allow", "r\ud800", RC.ALL_CHECKS_PASSED, 1.0, 0.5, "INFO", False, WALL, "o\u00e9", ages)
        record = DecisionRecord(next(seq), result, o, "acct\u00e9", s, b, 123_456, 42.5, 0.001)
        assert decision_row("run", record) == plain_row("run", record), (o, s, b)
        rows += 1
    assert rows == 6 * 5 * 6
    record = DecisionRecord(1, result, orders[4], None)
    assert type(decision_row("run", record)[4]) is str  # a str subclass is stored as a plain str
