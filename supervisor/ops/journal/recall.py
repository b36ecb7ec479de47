"""What the gate must remember across a process restart, read back from the journal.

The gate remembers the orders it approved recently (an id replayed within
`gate.duplicate_window_s` is a duplicate; the same terms repeated too often
too) and what each approved order still in flight holds against the caps,
until its outcome or `gate.reservation_ttl_s`. That memory lived only in the
process: an id replayed after a restart was allowed again, and a restart
freed every cap. So before a new gate decides its first order, the approvals
of the last window are read back from the journal and booked again:

- each approved (allowed or scaled) order's id and terms, at its original
  time, for the duplicate and repeat checks;
- each one still within its TTL holds its whole notional (`adjusted_quantity
  x price`) until its outcome is reported or the TTL ends, counts as opening a
  position unless it was reduce-only, and a reduce-only one holds the
  quantity it closes. That is the safe side: the journal does not say how
  much of it was new exposure.

What the journal had not yet written when the old process died (its last
flush interval, unless `journal.durability = "commit"`) is not recalled.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from supervisor.clock import Clock
from supervisor.config import Config
from supervisor.core.gate_state import GateState, Reservation
from supervisor.core.messages import OrderRequest
from supervisor.ops.journal.store import JOURNAL_NAME, JournalReader, JournalUnreadableError, from_us, to_us

__all__ = ["Approval", "recall_state", "recent_approvals"]

MAX_RECALLED = 1_000_000  # approvals are rate-limited per account: far fewer in any real window


@dataclass(frozen=True, slots=True)
class Approval:
    """An approved order as the journal has it."""

    when: datetime
    order_id: str
    account: str
    exchange: str
    symbol: str
    side: str
    quantity: float
    price: float
    adjusted_quantity: float
    reduce_only: bool


def recent_approvals(path: Path, since: datetime, limit: int = MAX_RECALLED) -> list[Approval]:
    """Approved orders journaled since `since`, oldest first. An absent journal has
    none; one that cannot be read raises `JournalUnreadableError`."""
    try:
        reader = JournalReader(path)
    except FileNotFoundError:
        return []
    except (sqlite3.Error, OSError) as exc:
        raise JournalUnreadableError(f"the journal {path} cannot be read: {type(exc).__name__}: {exc}") from exc
    try:
        rows = reader.approvals_since(to_us(since), limit)
    except (sqlite3.Error, OSError) as exc:
        raise JournalUnreadableError(f"the journal {path} cannot be read: {type(exc).__name__}: {exc}") from exc
    finally:
        reader.close()
    out = []
    for row in rows:
        if not all(isinstance(row[k], str) and row[k] for k in ("order_id", "account", "exchange", "symbol", "side")):
            continue  # a decision made before an order could be read: nothing to remember
        if not all(isinstance(row[k], (int, float)) for k in ("quantity", "price", "adjusted_quantity")):
            continue
        out.append(
            Approval(
                when=from_us(row["ts_us"]),
                order_id=row["order_id"],
                account=row["account"],
                exchange=row["exchange"],
                symbol=row["symbol"],
                side=row["side"],
                quantity=float(row["quantity"]),
                price=float(row["price"]),
                adjusted_quantity=float(row["adjusted_quantity"]),
                reduce_only=bool(row["reduce_only"]),
            )
        )
    return out


def recall_state(config: Config, clock: Clock) -> tuple[GateState, int]:
    """A gate state holding the journal's recent approvals (see the module doc), and
    how many were recalled. Raises `JournalUnreadableError`."""
    gate = config.gate
    now_wall, now = clock.now(), clock.monotonic()
    window = max(gate.duplicate_window_s, gate.reservation_ttl_s)
    approvals = recent_approvals(config.state.dir / JOURNAL_NAME, now_wall - timedelta(seconds=window))
    st = GateState()
    for a in approvals:
        at = now - max(0.0, (now_wall - a.when).total_seconds())  # a wall clock set back: as of now
        order = OrderRequest(
            a.account, a.exchange, "", a.symbol, a.side, a.quantity, a.price, order_id=a.order_id,
            reduce_only=a.reduce_only,
        )  # fmt: skip
        if gate.duplicate_window_s > 0:
            st.record_decided(order, at, gate.duplicate_window_s)
        expires = at + gate.reservation_ttl_s
        if expires > now and not st.holds(a.account, a.order_id) and a.adjusted_quantity > 0:
            st.reserve(
                Reservation(
                    order_id=a.order_id,
                    account=a.account,
                    exchange=a.exchange,
                    key=(a.symbol, a.exchange),
                    notional=a.adjusted_quantity * a.price,
                    opens_new=not a.reduce_only,
                    expires=expires,
                    price=a.price,
                    reducing_qty=a.adjusted_quantity if a.reduce_only else 0.0,
                    quantity=a.adjusted_quantity,
                )
            )
    return st, len(approvals)
