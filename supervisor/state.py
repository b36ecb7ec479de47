"""The gate's in-memory state, owned by `GateActor` and read by the checks.

Only the gate's thread mutates a `GateState`; the pure checks read it. Account
books keep derived totals (gross notional, open positions) so that an
evaluation never walks every account.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

from supervisor.messages import AccountState, EssState, RiskSignal

__all__ = ["AccountBook", "GateState", "Reservation"]

PositionKey = tuple[str, str]  # (symbol, exchange)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(slots=True)
class AccountBook:
    """One account's latest state plus the totals derived from it."""

    state: AccountState
    received: float
    positions: dict[PositionKey, float]
    gross_notional: float
    gross_by_exchange: dict[str, float]
    open_count: int
    usable: bool  # every number finite, marks > 0: otherwise the account fails closed

    @classmethod
    def from_state(cls, state: AccountState, received: float) -> AccountBook:
        positions: dict[PositionKey, float] = {}
        by_exchange: dict[str, float] = {}
        usable = all(_finite(v) for v in (state.equity, state.day_start_equity, state.week_start_equity)) and all(
            _finite(p.quantity) and _finite(p.mark_price) and p.mark_price > 0 for p in state.positions
        )
        for p in state.positions:
            key = (p.symbol, p.exchange)
            positions[key] = positions.get(key, 0.0) + p.quantity
            by_exchange[p.exchange] = by_exchange.get(p.exchange, 0.0) + abs(p.quantity) * p.mark_price
        positions = {k: q for k, q in positions.items() if q != 0.0}
        return cls(
            state=state,
            received=received,
            positions=positions,
            gross_notional=sum(by_exchange.values()),
            gross_by_exchange=by_exchange,
            open_count=len(positions),
            usable=usable,
        )


@dataclass(slots=True)
class Reservation:
    order_id: str
    account: str
    exchange: str
    key: PositionKey
    notional: float
    opens_new: bool
    expires: float


@dataclass(slots=True)
class GateState:
    ess: EssState | None = None
    ess_received: float = 0.0
    signal: RiskSignal | None = None
    signal_received: float = 0.0
    books: dict[str, AccountBook] = field(default_factory=dict)
    exchange_gross: dict[str, float] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)
    reserved_by_account: dict[str, float] = field(default_factory=dict)
    reserved_by_exchange: dict[str, float] = field(default_factory=dict)
    opening_keys: dict[str, dict[PositionKey, int]] = field(default_factory=dict)
    approvals: dict[str, deque[float]] = field(default_factory=dict)
    overrides: dict[str, float] = field(default_factory=dict)  # account -> expiry (monotonic)
    _expiry_heap: list[tuple[float, str]] = field(default_factory=list)

    def carry_over(self) -> GateState:
        """A fresh state for a restarted gate: in-flight reservations and order
        rate windows stay (dropping them could let orders past a cap); upstream
        and account state do not (they are re-fed, or the gate fails closed);
        overrides do not (they must be approved again)."""
        new = GateState()
        for r in self.reservations.values():
            new.reserve(Reservation(r.order_id, r.account, r.exchange, r.key, r.notional, r.opens_new, r.expires))
        new.approvals = {account: deque(q) for account, q in self.approvals.items()}
        return new

    # -- account books -------------------------------------------------
    def put_account(self, state: AccountState, received: float) -> None:
        old = self.books.get(state.account)
        if old is not None:
            for ex, gross in old.gross_by_exchange.items():
                self.exchange_gross[ex] = self.exchange_gross.get(ex, 0.0) - gross
        if old is not None and not state.refreshed:
            received = old.received
        book = AccountBook.from_state(state, received)
        for ex, gross in book.gross_by_exchange.items():
            self.exchange_gross[ex] = self.exchange_gross.get(ex, 0.0) + gross
        self.books[state.account] = book

    # -- reservations --------------------------------------------------
    def reserve(self, r: Reservation) -> None:
        self.release(r.order_id)
        self.reservations[r.order_id] = r
        self.reserved_by_account[r.account] = self.reserved_by_account.get(r.account, 0.0) + r.notional
        self.reserved_by_exchange[r.exchange] = self.reserved_by_exchange.get(r.exchange, 0.0) + r.notional
        if r.opens_new:
            keys = self.opening_keys.setdefault(r.account, {})
            keys[r.key] = keys.get(r.key, 0) + 1
        heapq.heappush(self._expiry_heap, (r.expires, r.order_id))

    def release(self, order_id: str, notional: float | None = None) -> Reservation | None:
        """Release a reservation, whole or (with `notional`) in part."""
        r = self.reservations.get(order_id)
        if r is None:
            return None
        amount = r.notional if notional is None else min(max(notional, 0.0), r.notional)
        self.reserved_by_account[r.account] = max(0.0, self.reserved_by_account.get(r.account, 0.0) - amount)
        self.reserved_by_exchange[r.exchange] = max(0.0, self.reserved_by_exchange.get(r.exchange, 0.0) - amount)
        if notional is not None and amount < r.notional:
            r.notional -= amount
            return r
        del self.reservations[order_id]
        if r.opens_new:
            keys = self.opening_keys.get(r.account, {})
            left = keys.get(r.key, 0) - 1
            if left > 0:
                keys[r.key] = left
            else:
                keys.pop(r.key, None)
        return r

    def expire_reservations(self, now: float) -> list[Reservation]:
        expired: list[Reservation] = []
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            expires, order_id = heapq.heappop(heap)
            r = self.reservations.get(order_id)
            if r is not None and r.expires == expires:
                self.release(order_id)
                expired.append(r)
        return expired

    # -- order rate ----------------------------------------------------
    def recent_approvals(self, account: str, now: float, window_s: float = 1.0) -> int:
        """Approvals of `account` in the window (now - window_s, now]. Read only.

        `record_approval` prunes as it appends, so only the few entries that
        aged out since the last approval are skipped here.
        """
        q = self.approvals.get(account)
        if not q:
            return 0
        cutoff = now - window_s
        n = len(q)
        stale = 0
        while stale < n and q[stale] <= cutoff:
            stale += 1
        return n - stale

    def record_approval(self, account: str, now: float, window_s: float = 1.0) -> None:
        q = self.approvals.get(account)
        if q is None:
            q = self.approvals[account] = deque()
        q.append(now)
        cutoff = now - window_s
        while q and q[0] <= cutoff:
            q.popleft()
