"""The gate's in-memory state, owned by the `Gate` and read by the checks.

Only a holder of the gate's lock mutates a `GateState` (supervisor.gate); the
pure checks read it. Account
books keep derived totals (gross notional, open positions) so that an
evaluation never walks every account.

Totals across accounts (an exchange's gross notional, reserved notional) are
exact integer sums of micro-USD: adding and later removing one account's
figure leaves every other account's exactly as it was, whatever the sizes. A
running float sum would not (add 1e22, remove it, and 40,000 USD is gone).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from supervisor.core.messages import AccountState, EssState, LeaseHeld, OrderRequest, RiskSignal
from supervisor.core.prices import PriceBook

__all__ = ["AccountBook", "GateState", "Reservation", "ReservationKey", "to_units"]

PositionKey = tuple[str, str]  # (symbol, exchange)
ReservationKey = tuple[str, str]  # (account, order_id): ids are per account
UNITS_PER_USD = 1_000_000
_MAX_LATCHES = 1024  # repeated terms remembered as lockouts at once
_MAX_MARKS = 10_000  # (symbol, exchange) references kept
_SHRINK_AFTER = 4096  # reservations expired at once beyond which the tables are built again


def to_units(usd: float) -> int:
    """USD as exact integer micro-USD (finite input only)."""
    return round(usd * UNITS_PER_USD)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(slots=True)
class AccountBook:
    """One account's latest state plus the totals derived from it."""

    state: AccountState
    received: float
    positions: dict[PositionKey, float]
    gross_notional: float
    gross_units_by_exchange: dict[str, int]
    open_count: int
    usable: bool  # every number finite, marks > 0: otherwise the account fails closed
    marks: dict[PositionKey, float] = field(default_factory=dict)  # the snapshot's mark per position (the collar)
    gross_units: int = 0  # the sum of gross_units_by_exchange (an account cap's positions)
    # Its valuation at the fresh marks, kept until prices change or one of them ages out:
    # (PriceBook.version it was made from, units, valid until (monotonic)).
    at_mark: tuple[int, int, float] = (-1, 0, -math.inf)

    @classmethod
    def from_state(cls, state: AccountState, received: float, previous: AccountBook | None = None) -> AccountBook:
        """A book for `state`. An unusable state keeps the previous book's
        exposure per exchange (its positions did not vanish because a snapshot
        was garbage), or none if there was no previous book."""
        usable = all(_finite(v) for v in (state.equity, state.day_start_equity, state.week_start_equity)) and all(
            _finite(p.quantity) and _finite(p.mark_price) and p.mark_price > 0 for p in state.positions
        )
        positions: dict[PositionKey, float] = {}
        marks: dict[PositionKey, float] = {}
        by_exchange: dict[str, float] = {}
        if usable:
            for p in state.positions:
                key = (p.symbol, p.exchange)
                positions[key] = positions.get(key, 0.0) + p.quantity
                marks[key] = p.mark_price
                by_exchange[p.exchange] = by_exchange.get(p.exchange, 0.0) + abs(p.quantity) * p.mark_price
            usable = all(math.isfinite(v * UNITS_PER_USD) for v in by_exchange.values())
        if usable:
            units = {ex: to_units(gross) for ex, gross in by_exchange.items()}
        else:
            positions, by_exchange = {}, {}
            units = dict(previous.gross_units_by_exchange) if previous is not None else {}
        positions = {k: q for k, q in positions.items() if q != 0.0}
        if usable and not state.refreshed:
            # Positions moved by a fill: a position the fill opened carries the fill's price as
            # its mark, a price the client reported, not one riskgate read. Not a reference.
            held = previous.marks if previous is not None else {}
            marks = {k: m for k, m in marks.items() if k in held}
        return cls(
            state=state,
            received=received,
            positions=positions,
            gross_notional=math.fsum(by_exchange.values()),
            gross_units_by_exchange=units,
            open_count=len(positions),
            usable=usable,
            marks=marks if usable else {},
            gross_units=sum(units.values()),
        )

    def contributions(self) -> tuple[tuple[PositionKey, float, int], ...]:
        """Per position of a usable book: (symbol, exchange), |quantity|, its notional at the
        snapshot's mark (micro-USD): what the exchange's valuation at the mark starts from."""
        if not self.usable:
            return ()
        out: dict[PositionKey, tuple[float, int]] = {}
        for p in self.state.positions:
            key = (p.symbol, p.exchange)
            qty, units = out.get(key, (0.0, 0))
            out[key] = (qty + abs(p.quantity), units + to_units(abs(p.quantity) * p.mark_price))
        return tuple((key, qty, units) for key, (qty, units) in out.items() if qty > 0)


@dataclass(slots=True)
class Reservation:
    """What an approved order holds until it ends: the notional it adds (in
    exact micro-USD `units`), the quantity of an opposite position it closes
    (`reducing_qty`: no later order can count on closing that part too), and
    the fills reported so far."""

    order_id: str
    account: str
    exchange: str
    key: PositionKey
    notional: float
    opens_new: bool
    expires: float
    units: int = -1  # exact micro-USD; derived from notional when not given
    price: float = 0.0
    reducing_qty: float = 0.0
    quantity: float = 0.0  # approved
    filled_qty: float = 0.0
    resting: bool = False  # the exchange accepted it and it rests: no expiry until it ends

    def __post_init__(self) -> None:
        if self.units < 0:
            self.units = to_units(self.notional)


class VerdictCache:
    """What core.verdicts remembers: the upstream state (ESS, its time, the
    signal, its time, the journal's verdict, the config) that passed checks
    0-5, and per account the (book, config) whose state-only checks passed."""

    __slots__ = ("accounts", "market")

    def __init__(self) -> None:
        self.market: tuple[object, float, object, float, object, object] | None = None
        self.accounts: dict[str, tuple[object, object]] = {}


@dataclass(slots=True)
class GateState:
    ess: EssState | None = None
    ess_received: float = 0.0
    signal: RiskSignal | None = None
    signal_received: float = 0.0
    books: dict[str, AccountBook] = field(default_factory=dict)
    exchange_gross_units: dict[str, int] = field(default_factory=dict)
    reservations: dict[ReservationKey, Reservation] = field(default_factory=dict)
    reserved_units_by_account: dict[str, int] = field(default_factory=dict)
    reserved_units_by_exchange: dict[str, int] = field(default_factory=dict)
    opening_keys: dict[str, dict[PositionKey, int]] = field(default_factory=dict)
    approvals: dict[str, deque[float]] = field(default_factory=dict)
    messages: dict[str, deque[float]] = field(default_factory=dict)  # cancels and edits sent, per account
    overrides: dict[str, tuple[str, float]] = field(default_factory=dict)  # account -> (id, expiry, monotonic)
    _expiry_heap: list[tuple[float, ReservationKey]] = field(default_factory=list)
    _ids: dict[str, list[str]] = field(default_factory=dict)  # order_id -> accounts holding it
    # (account, (symbol, exchange)) -> quantity of the position that orders in flight close
    reducing_by_key: dict[tuple[str, PositionKey], float] = field(default_factory=dict)
    journal_blocking: str | None = None  # why the journal makes new orders block, or None
    # The collar's references, (symbol, exchange) -> ...: each account's latest snapshot mark
    # (account -> (price, monotonic when received)), and the last fill's (price, when), kept
    # only when it was within the collar of the marks: a client's word alone is no reference.
    marks: dict[PositionKey, dict[str, tuple[float, float]]] = field(default_factory=dict)
    last_price: dict[PositionKey, tuple[float, float]] = field(default_factory=dict)
    # The prices source's marks per symbol ([prices]): the collar's first reference when fresh.
    prices: PriceBook = field(default_factory=PriceBook)
    # Exposure at the mark (docs/prices.md), kept per (symbol, exchange) over every usable book so
    # that a price moves one sum, never every account: |quantity| held, its notional at the
    # snapshots' marks (micro-USD), each book's part; per exchange what fresh marks add above the
    # snapshots' valuation (micro-USD) and until when (monotonic: the first of those prices to age).
    mark_qty: dict[PositionKey, float] = field(default_factory=dict)
    mark_units: dict[PositionKey, int] = field(default_factory=dict)
    _parts: dict[str, tuple[tuple[PositionKey, float, int], ...]] = field(default_factory=dict)
    uplift: dict[str, tuple[int, float]] = field(default_factory=dict)
    _uplift_parts: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)  # exchange -> symbol -> ...
    # Reservations recalled from the journal at a start, valued at the order's own price (the
    # mark they were valued at is not recorded): valued again by the first fresh price.
    unpriced: set[ReservationKey] = field(default_factory=set)
    # The band of fresh marks per key, kept until its oldest mark ages out or a mark arrives:
    # (low, high, valid until (monotonic), the max age it was computed for).
    _bands: dict[PositionKey, tuple[float, float, float, float]] = field(default_factory=dict)
    # Orders decided recently (duplicates): (account, order id) -> when; repeats of one order's terms.
    decided: dict[tuple[str, str], float] = field(default_factory=dict)
    repeats: dict[tuple[str, str, str, float, float], deque[float]] = field(default_factory=dict)
    # Terms refused as repeats, and until when (monotonic): a lockout operators see.
    repeat_latches: dict[tuple[str, str, str, float, float], float] = field(default_factory=dict)
    _decided_order: deque[tuple[float, tuple[str, str]]] = field(default_factory=deque)
    # Which order-independent checks passed, for which state objects (kept by core.verdicts).
    verdicts: VerdictCache = field(default_factory=VerdictCache)
    # Several instances (store.backend = "postgresql", core.budget): when the shared halt
    # state was last confirmed (monotonic), the caps' leases held, per cap the units refused
    # for want of budget (cumulative), and the approvals since the lease keeper's last round
    # (account, order id, exchange, units reserved): its demand, and the ids the others learn.
    shared_confirmed: float = -math.inf
    # The operators' reduce-only halt's reason, while one holds (REDUCE_ONLY_MODE).
    reduce_only_mode: str | None = None
    leases: dict[tuple[str, str], LeaseHeld] = field(default_factory=dict)
    budget_refused: dict[tuple[str, str], int] = field(default_factory=dict)
    # Per position (core.budget.reduce_key): what orders wanted to close beyond this instance's
    # reduction lease (quantity units) and until when the keeper asks for it (monotonic).
    reduce_wanted: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)
    reduce_names: dict[tuple[str, str], tuple[str, PositionKey]] = field(default_factory=dict)  # key -> position
    decided_outbox: list[tuple[str, str, str, int]] = field(default_factory=list)

    # -- duplicates ----------------------------------------------------
    def record_decided(self, order: OrderRequest, now: float, window_s: float) -> None:
        """Remember a decided order (its id, and its terms for repeats) for `window_s`."""
        cutoff = now - window_s
        self.record_decided_elsewhere((order.account, order.order_id or ""), now, window_s)
        _append_pruned(self.repeats, _terms(order), now, cutoff)
        if len(self.repeats) > 4 * len(self._decided_order) + 1024:  # prune terms nobody repeats
            self.repeats = {k: q for k, q in self.repeats.items() if q and q[-1] > cutoff}

    def record_decided_elsewhere(self, key: tuple[str, str], now: float, window_s: float) -> None:
        """An (account, order id) decided, here or by another instance (several instances):
        remembered for `window_s` as a duplicate."""
        cutoff = now - window_s
        order_q = self._decided_order
        while order_q and order_q[0][0] <= cutoff:
            _, old = order_q.popleft()
            if self.decided.get(old, now) <= cutoff:
                del self.decided[old]
        self.decided[key] = now
        order_q.append((now, key))
        if len(order_q) == 1 and len(self.decided) == 1:  # the window emptied: its table starts small again
            self.decided = {key: now}

    def decided_within(self, account: str, order_id: str, now: float, window_s: float) -> bool:
        when = self.decided.get((account, order_id))
        return when is not None and when > now - window_s

    def latch_repeats(self, order: OrderRequest, now: float, window_s: float, limit: int) -> None:
        """A repeat of `order`'s terms was refused (DUPLICATE_ORDER): remember until when they stay
        refused (the moment fewer than `limit` are left in the window), for the lockouts operators
        see. Called on that refusal only; at most _MAX_LATCHES kept, the oldest dropped."""
        terms = _terms(order)
        if self.repeat_latches.get(terms, now) > now:
            return  # latched already: refusals change nothing until then (only approvals are counted)
        times = self.repeats.get(terms)
        if not times or limit <= 0:
            return
        inside = [t for t in times if t > now - window_s]
        if len(inside) < limit:
            return
        self.repeat_latches[terms] = inside[len(inside) - limit] + window_s
        if len(self.repeat_latches) > _MAX_LATCHES:
            self.repeat_latches.pop(next(iter(self.repeat_latches)))

    def latched(self, now: float) -> dict[tuple[str, str, str, float, float], float]:
        """The repeated terms still refused now, and until when (monotonic); the lapsed forgotten."""
        for terms in [k for k, until in self.repeat_latches.items() if until <= now]:
            del self.repeat_latches[terms]
        return dict(self.repeat_latches)

    def repeats_within(self, order: OrderRequest, now: float, window_s: float) -> int:
        return _count_after(self.repeats.get(_terms(order)), now - window_s)

    # -- account books -------------------------------------------------
    def put_account(self, state: AccountState, received: float, symbols: Container[str] | None = None) -> None:
        """The account's new state. Its snapshot's marks become collar references for the
        `symbols` given (the configured ones: no order names another), for all if None."""
        old = self.books.get(state.account)
        arrived = received  # now: a fill-moved state keeps its snapshot's age, not its time
        if old is not None and not state.refreshed:
            received = old.received
        book = AccountBook.from_state(state, received, old)  # first: nothing changes if it raises
        if old is not None:
            for ex, units in old.gross_units_by_exchange.items():
                self.exchange_gross_units[ex] -= units
        totals = self.exchange_gross_units
        for ex, units in book.gross_units_by_exchange.items():
            totals[ex] = totals.get(ex, 0) + units
        self.books[state.account] = book
        self._take_part(state.account, book.contributions(), arrived)
        if state.refreshed and state.problem is None and book.marks:
            # Only a usable snapshot's marks: an unusable one is re-sent with the last known positions
            # (a fill may have opened one at the client's price), which are no market price.
            marks, bands = self.marks, self._bands
            for key, mark in book.marks.items():
                if symbols is not None and key[0] not in symbols:
                    continue  # a symbol no order can name: a snapshot of dust must not crowd out real marks
                by_account = marks.get(key)
                if by_account is None:
                    by_account = marks[key] = {}
                by_account[state.account] = (mark, received)
                bands.pop(key, None)  # a new mark: the band is computed again when asked
            if len(marks) > _MAX_MARKS:  # symbols no account holds any more: the oldest go
                newest = sorted(marks, key=lambda k: max(at for _, at in marks[k].values()))
                self.marks = {k: marks[k] for k in newest[-(_MAX_MARKS // 2) :]}
                self.last_price = {k: v for k, v in self.last_price.items() if k in self.marks}
                self._bands = {}

    def _take_part(self, account: str, parts: tuple[tuple[PositionKey, float, int], ...], now: float) -> None:
        """The account's positions in the per-(symbol, exchange) sums, in place of its last."""
        before = self._parts.pop(account, ())
        qty, units = self.mark_qty, self.mark_units
        for key, q, u in before:
            left = qty.get(key, 0.0) - q
            if left > 1e-12:
                qty[key], units[key] = left, units[key] - u
            else:
                qty.pop(key, None)
                units.pop(key, None)
        for key, q, u in parts:
            qty[key] = qty.get(key, 0.0) + q
            units[key] = units.get(key, 0) + u
        if parts:
            self._parts[account] = parts
        if self.prices.symbols and (before or parts):
            self.revalue({key[1] for key, _, _ in (*before, *parts)}, now)

    def revalue(self, exchanges: Iterable[str], now: float) -> None:
        """What the prices source's fresh marks add, per exchange, to its positions' valuation at
        the snapshots' marks (per symbol never less: a symbol whose mark fell counts at the
        snapshots'), each symbol's part valid while its price is fresh. Runs when prices or
        positions change: one sum per (symbol, exchange), not per account."""
        wanted = set(exchanges)
        parts: dict[str, dict[str, tuple[int, float]]] = {ex: {} for ex in wanted}
        symbols = self.prices.symbols
        for key, q in self.mark_qty.items():
            if key[1] not in wanted:
                continue
            ref = symbols.get(key[0])
            if ref is None or now > ref.fresh_until:
                continue
            extra = to_units(q * ref.price) - self.mark_units[key]
            if extra > 0:
                parts[key[1]][key[0]] = (extra, ref.fresh_until)
        for ex, found in parts.items():
            if found:
                self._uplift_parts[ex] = found
                self.uplift[ex] = _uplift_total(found, now)
            else:
                self._uplift_parts.pop(ex, None)
                self.uplift.pop(ex, None)

    def revalue_all(self, now: float) -> None:
        """`revalue` for every exchange holding positions or valued above them (prices changed)."""
        if self.mark_qty or self.uplift:
            self.revalue({key[1] for key in self.mark_qty} | set(self.uplift), now)

    def exchange_units_at_mark(self, exchange: str, now: float) -> int:
        """The exchange's gross notional of positions (micro-USD), valued at the fresh marks where
        they are higher than the snapshots' (until the first of those prices ages out)."""
        base = self.exchange_gross_units.get(exchange, 0)
        up = self.uplift.get(exchange) if self.uplift else None
        if up is None:
            return base
        if now > up[1]:  # one symbol's price aged: the others' parts still count (kept again)
            up = self.uplift[exchange] = _uplift_total(self._uplift_parts.get(exchange, {}), now)
        return base + up[0]

    def book_units_at_mark(self, book: AccountBook, now: float) -> int:
        """One account's gross notional (micro-USD), each position at the higher of its snapshot's
        mark and the fresh mark of its symbol. A few lookups, for the account asked about only."""
        prices = self.prices
        if not prices.symbols:
            return book.gross_units
        version, units, until = book.at_mark
        if version == prices.version and now <= until:
            return units
        units, until = book.gross_units, math.inf
        for key, q, u in self._parts.get(book.state.account, ()):
            ref = prices.symbols.get(key[0])
            if ref is not None and now <= ref.fresh_until:
                at = to_units(q * ref.price)
                if at > u:
                    units += at - u
                    until = min(until, ref.fresh_until)
        book.at_mark = (prices.version, units, until)
        return units

    def mark_band(self, key: PositionKey, now: float, max_age_s: float) -> tuple[float, float] | None:
        """(lowest, highest) of the marks accounts' snapshots gave for `key` within
        `max_age_s`, else the last fill's price as both, else None. Accounts that
        disagree widen the band, and the collar then holds an order to the stricter
        side of it: one account's snapshot cannot move another's collar alone."""
        band = self._snapshot_band(key, now, max_age_s)
        if band is not None:
            return band
        filled = self.last_price.get(key)
        if filled is not None and now - filled[1] <= max_age_s:
            return filled[0], filled[0]
        return None

    def _snapshot_band(self, key: PositionKey, now: float, max_age_s: float) -> tuple[float, float] | None:
        """The band of the fresh snapshot marks for `key`. Computed over every account
        holding the symbol, then kept until its oldest mark ages out or a snapshot for
        `key` arrives (a mark that aged out never comes back without one): per decision
        it is one lookup, whatever the number of accounts."""
        cached = self._bands.get(key)
        if cached is not None and now < cached[2] and cached[3] == max_age_s:
            return cached[0], cached[1]
        by_account = self.marks.get(key)
        if not by_account:
            return None
        low = high = 0.0
        until = math.inf
        for price, at in by_account.values():
            if now - at <= max_age_s:
                if at + max_age_s < until:
                    until = at + max_age_s
                if high == 0.0:
                    low = high = price
                elif price < low:
                    low = price
                elif price > high:
                    high = price
        if high <= 0.0:
            return None
        self._bands[key] = (low, high, until, max_age_s)
        return low, high

    def record_fill_price(self, key: PositionKey, price: float, now: float, max_age_s: float, pct: float) -> bool:
        """Keep a fill's price as a reference if it is within `pct` percent of every
        fresh snapshot mark for `key` (never of another fill's); whether it was kept."""
        band = self._snapshot_band(key, now, max_age_s)
        if band is None or not band[1] * (1.0 - pct / 100.0) <= price <= band[0] * (1.0 + pct / 100.0):
            return False
        self.last_price[key] = (price, now)
        return True

    def exchange_units(self, exchange: str, now: float) -> tuple[int, int]:
        """(every account's positions on `exchange`, at the fresh marks where higher as of `now`;
        the notional reserved there by orders in flight), micro-USD."""
        return self.exchange_units_at_mark(exchange, now), self.reserved_units_by_exchange.get(exchange, 0)

    def exchange_in_use(self, exchange: str, now: float = -math.inf) -> float:
        """Gross notional of every account's positions on `exchange` (at the fresh marks where
        higher, as of `now`) plus the notional reserved there by orders in flight, in USD."""
        held, reserved = self.exchange_units(exchange, now)
        return (held + reserved) / UNITS_PER_USD

    def reserved_usd(self, account: str) -> float:
        return self.reserved_units_by_account.get(account, 0) / UNITS_PER_USD

    # -- reservations --------------------------------------------------
    def holds(self, account: str, order_id: str) -> bool:
        """Whether an order with this id of this account is still in flight."""
        return (account, order_id) in self.reservations

    def reserve(self, r: Reservation) -> None:
        """Hold `r`'s notional. A key that is already held is an error: one slot,
        one approval (the gate blocks a repeated id before it gets here)."""
        key = (r.account, r.order_id)
        if key in self.reservations:
            raise ValueError(f"order {r.order_id!r} of {r.account!r} already holds a reservation")
        self.reservations[key] = r
        self._ids.setdefault(r.order_id, []).append(r.account)
        self.reserved_units_by_account[r.account] = self.reserved_units_by_account.get(r.account, 0) + r.units
        self.reserved_units_by_exchange[r.exchange] = self.reserved_units_by_exchange.get(r.exchange, 0) + r.units
        if r.opens_new:
            keys = self.opening_keys.setdefault(r.account, {})
            keys[r.key] = keys.get(r.key, 0) + 1
        if r.reducing_qty > 0:
            self._add_reducing(r.account, r.key, r.reducing_qty)
        if not r.resting:
            heapq.heappush(self._expiry_heap, (r.expires, key))

    def _add_reducing(self, account: str, key: PositionKey, qty: float) -> None:
        slot = (account, key)
        left = self.reducing_by_key.get(slot, 0.0) + qty
        if left > 1e-12:
            self.reducing_by_key[slot] = left
        else:
            self.reducing_by_key.pop(slot, None)

    def reducing_in_flight(self, account: str, key: PositionKey) -> float:
        return self.reducing_by_key.get((account, key), 0.0) if self.reducing_by_key else 0.0

    def fill(self, account: str, order_id: str, quantity: float) -> Reservation | None:
        """A fill of `quantity`: it closes the reduced position first, then takes
        its share of the reserved notional (the position now holds it). A fill
        beyond what was approved uses the reservation up, no more: whatever a
        report says, this never raises."""
        r = self.reservations.get((account, order_id))
        if r is None or not 0.0 < quantity < math.inf:
            return r
        if r.quantity > 0:
            quantity = min(quantity, max(r.quantity - r.filled_qty, 0.0))
        closing = min(quantity, r.reducing_qty)
        opening = quantity - closing
        amount = _units_within(opening * r.price, r.units) if opening > 0 and r.units > 0 else 0
        r.filled_qty += quantity
        if closing > 0:
            r.reducing_qty -= closing
            self._add_reducing(account, r.key, -closing)
        if amount > 0:
            self._take_units(r, amount)
        return r

    def reprice_recalled(self, prices: PriceBook, now: float) -> None:
        """Recalled reservations valued at the fresh mark of their symbol when it is higher
        than the order's price (what the live gate booked them at), once."""
        for key in list(self.unpriced):
            r = self.reservations.get(key)
            ref = prices.symbols.get(r.key[0]) if r is not None else None
            if r is None:
                self.unpriced.discard(key)
                continue
            if ref is None or now > ref.fresh_until:
                continue  # not priced yet: at the next prices
            self.unpriced.discard(key)
            left = r.quantity - r.filled_qty - r.reducing_qty
            if ref.price <= r.price or left <= 0:
                continue
            extra = to_units(left * (ref.price - r.price))
            if extra > 0:
                self._take_units(r, -extra)
                r.price = ref.price

    def _take_units(self, r: Reservation, amount: int) -> None:
        r.units -= amount
        r.notional = r.units / UNITS_PER_USD
        self.reserved_units_by_account[r.account] -= amount
        self.reserved_units_by_exchange[r.exchange] -= amount

    def mark_resting(self, account: str, order_id: str) -> None:
        """The exchange accepted the order and it rests: it holds its
        reservation until its end is reported, however long that takes."""
        r = self.reservations.get((account, order_id))
        if r is not None:
            r.resting = True

    def ended(
        self, account: str, order_id: str, filled_quantity: float, now: float, ttl_s: float
    ) -> Reservation | None:
        """The order ended, having filled `filled_quantity` in all. What the
        reported fills explain is released; a filled part whose fill was not
        reported (yet) keeps its notional reserved for `ttl_s`, since no
        position holds it yet, and the part of it that reduced the position
        stays counted as reducing for as long: the book still shows the
        position it closed, and no later order may count on closing it again
        (a reduce-only halt, a loss limit: found by a probe)."""
        r = self.reservations.get((account, order_id))
        if r is None:
            return None
        if r.quantity > 0 and not filled_quantity <= r.quantity:  # NaN too: no more than was approved
            filled_quantity = r.quantity
        unreported = filled_quantity - r.filled_qty
        if not math.isfinite(unreported) or unreported <= 1e-12:
            return self.release(account, order_id)
        keep_reducing = min(r.reducing_qty, unreported)  # fills close the position first
        if r.units <= 0 and keep_reducing <= 0:
            return self.release(account, order_id)
        keep = _units_within(unreported * r.price, r.units) if r.units > 0 else 0
        self._take_units(r, r.units - keep)
        if r.reducing_qty > keep_reducing:
            self._add_reducing(account, r.key, -(r.reducing_qty - keep_reducing))
            r.reducing_qty = keep_reducing
        r.resting = False
        r.expires = now + ttl_s
        heapq.heappush(self._expiry_heap, (r.expires, (account, order_id)))
        return r

    def accounts_holding(self, order_id: str) -> list[str]:
        return list(self._ids.get(order_id, ()))

    def release(self, account: str, order_id: str) -> Reservation | None:
        """Release a reservation whole."""
        r = self.reservations.get((account, order_id))
        if r is None:
            return None
        self.reserved_units_by_account[r.account] -= r.units
        self.reserved_units_by_exchange[r.exchange] -= r.units
        if r.reducing_qty > 0:
            self._add_reducing(account, r.key, -r.reducing_qty)
        del self.reservations[(account, order_id)]
        holders = self._ids.get(order_id)
        if holders is not None:
            holders.remove(account)
            if not holders:
                del self._ids[order_id]
        if r.opens_new:
            keys = self.opening_keys.get(r.account, {})
            left = keys.get(r.key, 0) - 1
            if left > 0:
                keys[r.key] = left
            else:
                keys.pop(r.key, None)
        return r

    def expire_reservations(self, now: float) -> Sequence[Reservation]:
        heap = self._expiry_heap
        if not heap or heap[0][0] > now:
            return ()  # the common case, per decision: nothing due (and no list made for it)
        expired: list[Reservation] = []
        while heap and heap[0][0] <= now:
            expires, key = heapq.heappop(heap)
            r = self.reservations.get(key)
            if r is not None and r.expires == expires and not r.resting:
                self.release(*key)
                expired.append(r)
        if len(expired) >= _SHRINK_AFTER and len(self.reservations) < len(expired) // 4:
            # A mass expiry (outcomes stopped coming): the tables keep their size in Python until
            # built again, so they are (the memory a burst of approvals took comes back).
            self.reservations = dict(self.reservations)
            self._ids = dict(self._ids)
            self._expiry_heap = list(self._expiry_heap)
        return expired

    # -- order rate ----------------------------------------------------
    def recent_approvals(self, account: str, now: float, window_s: float = 1.0) -> int:
        """Approvals of `account` in the window (now - window_s, now]. Read only.

        `record_approval` prunes as it appends, so only the few entries that
        aged out since the last approval are skipped here.
        """
        return _count_after(self.approvals.get(account), now - window_s)

    def recent_messages(self, account: str, now: float, window_s: float = 1.0) -> int:
        """Cancels and edits `account` sent in the window (now - window_s, now]."""
        return _count_after(self.messages.get(account), now - window_s)

    def record_message(self, account: str, now: float, window_s: float = 1.0) -> None:
        _append_pruned(self.messages, account, now, now - window_s)

    def record_approval(self, account: str, now: float, window_s: float = 1.0) -> None:
        _append_pruned(self.approvals, account, now, now - window_s)


def _uplift_total(parts: dict[str, tuple[int, float]], now: float) -> tuple[int, float]:
    """The sum of the symbols' parts still fresh at `now`, valid until the first of them ages."""
    total, until = 0, math.inf
    for units, valid in parts.values():
        if now <= valid:
            total += units
            until = min(until, valid)
    return total, until


def _units_within(usd: float, held: int) -> int:
    """`usd` in micro-USD, at most `held` (an infinite or NaN amount is all of it)."""
    units = usd * UNITS_PER_USD
    return to_units(usd) if units < held else held


def _terms(order: OrderRequest) -> tuple[str, str, str, float, float]:
    """An order's terms, as its repeats are counted: account, symbol, side, quantity, price."""
    return (order.account, order.symbol, order.side, order.quantity, order.price)


def _count_after(times: deque[float] | None, cutoff: float) -> int:
    """Entries of a time-ordered window later than `cutoff`. Read only: the
    appends prune, so only the few that aged out since are skipped here."""
    if not times:
        return 0
    n = len(times)
    stale = 0
    while stale < n and times[stale] <= cutoff:
        stale += 1
    return n - stale


def _append_pruned(windows: dict[Any, deque[float]], key: Any, now: float, cutoff: float) -> None:
    """Add `now` to `key`'s window and drop what is no later than `cutoff`."""
    times = windows.get(key)
    if times is None:
        times = windows[key] = deque()
    times.append(now)
    while times and times[0] <= cutoff:
        times.popleft()
