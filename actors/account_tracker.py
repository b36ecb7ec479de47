"""AccountTrackerActor: per-account equity, positions and period baselines.

It turns account snapshots and fills into `AccountState` messages for the
gate. The equity at the start of the day and week is the last equity seen
before the period began (or the first seen in it), so a loss limit measures
from the period's start, not from the gate's start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import pykka

from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.logs import get_logger
from supervisor.messages import AccountSnapshot, AccountState, Fill, Position
from supervisor.periods import day_start, week_start

__all__ = ["AccountTrackerActor"]

log = get_logger("riskgate.accounts")


@dataclass(slots=True)
class _Baseline:
    period_start: datetime
    equity: float


class AccountTrackerActor(pykka.ThreadingActor):
    def __init__(self, config: Config, clock: Clock, gate: pykka.ActorRef) -> None:
        super().__init__()
        self._config = config
        self._clock = clock
        self._gate = gate
        self._latest: dict[str, AccountState] = {}
        self._day: dict[str, _Baseline] = {}
        self._week: dict[str, _Baseline] = {}

    def ping(self) -> str:
        return "pong"

    def on_receive(self, message: object) -> object:
        if isinstance(message, AccountSnapshot):
            return self._on_snapshot(message)
        if isinstance(message, Fill):
            return self._on_fill(message)
        log.warning("account_tracker_unknown_message", message_type=type(message).__name__)
        return None

    def _baseline(self, period: str, book: dict[str, _Baseline], account: str, start: datetime, equity: float) -> float:
        current = book.get(account)
        if current is None or current.period_start < start:
            last = self._latest.get(account)
            base = last.equity if (current is not None and last is not None) else equity
            book[account] = current = _Baseline(start, base)
            log.info("period_baseline_set", period=period, account=account, period_start=start.isoformat(), equity=base)
        return current.equity

    def _on_snapshot(self, snap: AccountSnapshot) -> AccountState:
        if snap.account not in self._config.accounts.accounts:
            log.warning("snapshot_for_unknown_account", account=snap.account)
        now = self._clock.now()
        day = self._baseline("day", self._day, snap.account, day_start(now, self._config.periods), snap.equity)
        week = self._baseline("week", self._week, snap.account, week_start(now, self._config.periods), snap.equity)
        state = AccountState(
            account=snap.account,
            equity=snap.equity,
            positions=tuple(p for p in snap.positions if p.quantity != 0.0),
            day_start_equity=day,
            week_start_equity=week,
        )
        self._latest[snap.account] = state
        self._gate.tell(state)
        return state

    def _on_fill(self, fill: Fill) -> AccountState | None:
        state = self._latest.get(fill.account)
        if state is not None:
            signed = fill.quantity if fill.side.lower() == "buy" else -fill.quantity
            positions: list[Position] = []
            found = False
            for p in state.positions:
                if p.symbol == fill.symbol and p.exchange == fill.exchange:
                    found = True
                    qty = p.quantity + signed
                    if abs(qty) <= 1e-9 * max(abs(p.quantity), abs(signed)):
                        qty = 0.0  # closed: no float residue left as a position
                    p = replace(p, quantity=qty, mark_price=fill.price)
                if p.quantity != 0.0:
                    positions.append(p)
            if not found:
                positions.append(Position(fill.symbol, fill.exchange, signed, fill.price))
            state = replace(state, positions=tuple(positions), refreshed=False)
            self._latest[fill.account] = state
            self._gate.tell(state)
        else:
            log.warning("fill_before_snapshot", account=fill.account, order_id=fill.order_id)
        # After the new positions, so the fill's notional is never counted by neither.
        self._gate.tell(fill)
        return state
