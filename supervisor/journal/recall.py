"""What the gate must remember across a process restart, read back from the journal.

The gate remembers the orders it approved recently (an id replayed within
`gate.duplicate_window_s` is a duplicate; the same terms repeated too often
too) and what each approved order still in flight holds against the caps,
until its outcome or `gate.reservation_ttl_s`, or for as long as it rests at
the exchange. That memory lived only in the process: an id replayed after a
restart was allowed again, and a restart freed every cap. So before a new gate
decides its first order, it is read back from the journal and booked again:

- each approved (allowed or scaled) order's id and terms, at its original
  time, for the duplicate and repeat checks;
- each one still within its TTL, and each one reported resting at the
  exchange (an `order_resting` event with no `order_ended` after it, within
  `journal.retention_days`), holds its whole notional (`adjusted_quantity x
  price`) until its outcome is reported (or, not resting, the TTL ends),
  counts as opening a position unless it was reduce-only, and a reduce-only
  one holds the quantity it closes. That is the safe side: the journal does
  not say how much of it was new exposure or has filled since.

Every row is checked as input from outside (a damaged or edited file): a row
whose time, names or numbers are not plausible is skipped and counted, never
booked (a negative price would free the caps) and never a failed start.
What the journal had not yet written when the old process died (its last
flush interval, unless `journal.durability = "commit"`) is not recalled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.core.gate_state import GateState, Reservation
from supervisor.core.messages import OrderRequest
from supervisor.core.prices import SymbolPrice
from supervisor.journal.store import (
    JOURNAL_NAME,
    JournalReader,
    JournalUnreadableError,
    from_us,
    read_journal,
    to_us,
)

__all__ = ["Approval", "Recalled", "recall_state", "recent_approvals"]

MAX_RECALLED = 1_000_000  # approvals are rate-limited per account: far fewer in any real window


@dataclass(frozen=True, slots=True)
class Approval:
    """An approved order as the journal has it, checked."""

    when: datetime
    order: OrderRequest  # its terms (no strategy: the journal's row is enough for duplicates and caps)
    adjusted_quantity: float


@dataclass(frozen=True, slots=True)
class Recalled:
    approvals: int  # approvals of the window, booked for duplicates (and caps while in their TTL)
    resting: int  # orders resting at the exchange, booked until their outcome
    skipped: int  # rows that were not plausible
    at: tuple[float, datetime] | None = None  # as of (monotonic, wall): what a replay recalls again


def _name(value: Any) -> str | None:
    return value if type(value) is str and 0 < len(value) <= 128 else None


def _number(value: Any) -> float | None:
    if type(value) not in (int, float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def approval(row: dict[str, Any], accounts: Iterable[str], max_usd: float) -> Approval | None:
    """The row as an `Approval`, or None when any of it is not plausible."""
    ts = row.get("ts_us")
    names = [_name(row.get(k)) for k in ("order_id", "account", "exchange", "symbol", "side")]
    quantity, price, adjusted = (_number(row.get(k)) for k in ("quantity", "price", "adjusted_quantity"))
    if type(ts) is not int or not 0 <= ts < 2**62 or any(n is None for n in names):
        return None
    order_id, account, exchange, symbol, side = (n or "" for n in names)
    if account not in accounts or side not in ("buy", "sell") or row.get("reduce_only") not in (0, 1, None):
        return None
    if quantity is None or price is None or adjusted is None or not (quantity > 0 and price > 0 and adjusted >= 0):
        return None
    if adjusted > quantity * (1 + 1e-9) or not adjusted * price <= max_usd or not quantity * price <= max_usd:
        return None
    order = OrderRequest(
        account, exchange, "", symbol, side, quantity, price, order_id=order_id, reduce_only=bool(row["reduce_only"])
    )
    return Approval(from_us(ts), order, adjusted)


def recent_approvals(
    path: Path, since: datetime, limit: int = MAX_RECALLED, exclude_runs: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Approved orders' rows journaled since `since` (not of `exclude_runs`), oldest first (unchecked).
    An absent journal has none; one that cannot be read raises `JournalUnreadableError`."""
    return read_journal(path, lambda r: r.approvals_since(to_us(since), limit, exclude_runs), [])


def _resting(path: Path, since: datetime, exclude_runs: tuple[str, ...]) -> list[dict[str, Any]]:
    """The approval rows of orders still resting (their last event `order_resting`)."""

    def read(reader: JournalReader) -> list[dict[str, Any]]:
        resting: dict[tuple[str, str], None] = {}  # only those resting now: the ended leave at once
        for event in reader.resting_events_since(to_us(since), exclude_runs):
            try:
                order_id = json.loads(event["detail"]).get("order_id")
            except (TypeError, ValueError, AttributeError, RecursionError):
                continue
            if _name(order_id) is not None and _name(event["account"]) is not None:
                if event["kind"] == "order_resting":
                    resting[(event["account"], order_id)] = None
                else:
                    resting.pop((event["account"], order_id), None)
                if len(resting) > MAX_RECALLED:
                    raise JournalUnreadableError(f"more than {MAX_RECALLED:,} orders resting: not plausible")
        rows = [reader.approval_of(account, oid, exclude_runs) for account, oid in resting]
        return [row for row in rows if row is not None]

    return read_journal(path, read, [])


def recall_state(
    config: Config, clock: Clock, path: Path | None = None, exclude_runs: tuple[str, ...] = ()
) -> tuple[GateState, Recalled]:
    """A gate state holding the journal's recent approvals and resting orders (see the
    module doc), and what was recalled. Raises `JournalUnreadableError`. `path`: another
    journal than config.state.dir's; `exclude_runs`: rows of these runs are not read (a replay
    recalls what its run recalled: the rows of the runs before it, whatever their times)."""
    gate = config.gate
    now_wall, now = clock.now(), clock.monotonic()
    path = path if path is not None else config.state.dir / JOURNAL_NAME
    accounts, max_usd = config.accounts.accounts, config.accounts.max_plausible_usd
    window = max(gate.duplicate_window_s, gate.reservation_ttl_s)
    recent = recent_approvals(path, now_wall - timedelta(seconds=window), exclude_runs=exclude_runs)
    resting = _resting(path, now_wall - timedelta(days=config.journal.retention_days), exclude_runs)
    st = GateState()

    def at(a: Approval) -> float:
        return now - max(0.0, (now_wall - a.when).total_seconds())  # a wall clock set back: as of now

    def book(a: Approval, expires: float, rests: bool) -> None:
        o = a.order
        if st.holds(o.account, o.order_id or "") or a.adjusted_quantity <= 0:
            return
        st.reserve(
            Reservation(
                order_id=o.order_id or "",
                account=o.account,
                exchange=o.exchange,
                key=(o.symbol, o.exchange),
                notional=a.adjusted_quantity * o.price,
                opens_new=not o.reduce_only,
                expires=expires,
                price=o.price,
                reducing_qty=a.adjusted_quantity if o.reduce_only else 0.0,
                quantity=a.adjusted_quantity,
                resting=rests,
            )
        )
        if not o.reduce_only:
            st.unpriced.add((o.account, o.order_id or ""))  # valued again by the first fresh price

    def checked(rows: list[dict[str, Any]]) -> list[Approval]:
        return [a for a in (approval(row, accounts, max_usd) for row in rows) if a is not None]

    resting_ok = checked(resting)
    for a in resting_ok:
        book(a, now + gate.reservation_ttl_s, rests=True)
    recent_ok = checked(recent)
    for a in recent_ok:
        if gate.duplicate_window_s > 0:
            st.record_decided(a.order, at(a), gate.duplicate_window_s)
        expires = at(a) + gate.reservation_ttl_s
        if expires > now:
            book(a, expires, rests=False)
    skipped = len(resting) + len(recent) - len(resting_ok) - len(recent_ok)
    if config.prices.enabled:
        _recall_marks(st, path, config, now, now_wall, exclude_runs)
        _recall_pauses(st, path, config, now, now_wall, exclude_runs)
    return st, Recalled(len(recent_ok), len(resting_ok), skipped, (now, now_wall))


_MARKS_LOOKBACK = timedelta(days=1)


def _recall_marks(
    st: GateState, path: Path, config: Config, now: float, now_wall: datetime, exclude_runs: tuple[str, ...]
) -> None:
    """The last mark journaled of each symbol (within a day), as the last price seen: the first
    price after a restart is measured from it, as a move across an outage is. Unpriced until
    then (PRICE_REFERENCE_STALE): a recalled mark is no reference."""
    none: list[Any] = []
    rows = read_journal(path, lambda r: r.marks_since(to_us(now_wall - _MARKS_LOOKBACK), exclude_runs), none)
    for row in rows:  # newest first: the first of each symbol wins
        try:
            detail = json.loads(row["detail"])
            symbol, price = detail.get("symbol"), float(detail.get("price"))
        except (TypeError, ValueError, AttributeError, RecursionError):
            continue
        if symbol not in config.symbols or symbol in st.prices.symbols or not math.isfinite(price) or price <= 0:
            continue
        seen = from_us(row["ts_us"])
        at = now - max(0.0, (now_wall - seen).total_seconds())
        held = st.prices.symbols[symbol] = SymbolPrice(price, -math.inf, price, price, seen)
        for marks in (held.lows, held.highs, held.marks):
            marks.append((at, price))


def _recall_pauses(
    st: GateState, path: Path, config: Config, now: float, now_wall: datetime, exclude_runs: tuple[str, ...]
) -> None:
    """Price spike pauses journaled and not over yet hold after a restart too (the window of
    marks that showed the spike is gone with the process: without this a restart would lift
    the pause). The symbol is unpriced until its first price (PRICE_REFERENCE_STALE)."""
    since = now_wall - timedelta(seconds=config.prices.spike_pause_s + 1.0)
    none: list[Any] = []
    rows = read_journal(path, lambda r: r.pauses_since(to_us(since), exclude_runs), none)
    for row in rows:
        try:
            detail = json.loads(row["detail"])
            symbol, why = detail.get("symbol"), detail.get("reason")
            until = datetime.fromisoformat(str(detail.get("until")))
            after = float(detail.get("after"))
        except (TypeError, ValueError, AttributeError, RecursionError):
            continue
        if symbol not in config.symbols or not isinstance(why, str) or until.tzinfo is None:
            continue
        left = (until - now_wall).total_seconds()
        if not 0 < left <= config.prices.spike_pause_s + 1.0 or not math.isfinite(after) or after <= 0:
            continue
        held = st.prices.symbols.get(symbol)
        if held is None:
            held = st.prices.symbols[symbol] = SymbolPrice(after, -math.inf, after, after, from_us(row["ts_us"]))
        held.paused_until, held.pause_why = max(held.paused_until, now + left), why[:500]
        held.paused_at = held.paused_until - config.prices.spike_pause_s
